// The web app in a real browser (Debian's chromium driven by
// playwright-core), against a real server: tests/e2e/web.rs starts it in a
// namespace of its own and runs this script, which prints one JSON line
// per step on stdout. It asks for a server restart with {"event":"restart"}
// and waits for a "restarted" line on stdin.
//
// Arguments: BASE_URL TOKEN_FILE GOOD_PDF BROKEN_PDF QUERY SHOTS_DIR
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import path from "node:path";
import { chromium } from "playwright-core";

const [base, tokenFile, goodPdf, brokenPdf, query, shots] = process.argv.slice(2);
const token = readFileSync(tokenFile, "utf8").trim();
const axeSource = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const say = (event, fields = {}) => console.log(JSON.stringify({ event, ...fields }));
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const LONG = 180_000;

function fail(message) {
  say("failed", { message });
  throw new Error(message);
}

/** Runs axe-core on the page; fails on any violation. */
async function accessible(page, name) {
  await page.addScriptTag({ path: axeSource });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  });
  if (violations.length) fail(`${name}: axe-core found ${violations.join("; ")}`);
  say("accessible", { page: name });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.MNEMO_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  // axe-core is injected as a script: the app's CSP would refuse it.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));

  // Sign in by link: the token leaves the address bar.
  await page.goto(`${base}/#token=${encodeURIComponent(token)}`);
  await page.getByRole("navigation", { name: "Main" }).waitFor();
  if (page.url().includes("token")) fail(`the token is still in the address: ${page.url()}`);
  say("signed_in", { url: page.url() });
  await accessible(page, "upload");

  // Upload a real PDF and a broken one at once.
  await page.getByLabel("Upload", { exact: true }).setInputFiles([goodPdf, brokenPdf]);
  const good = page.locator("li.upload", { hasText: path.basename(goodPdf) });
  const broken = page.locator("li.upload", { hasText: path.basename(brokenPdf) });
  // Progress values of the good document's bar, as the page shows them.
  await good.locator("progress").first().waitFor();
  await page.evaluate((name) => {
    window.__fractions = [];
    window.__reconnected = false;
    setInterval(() => {
      if (document.querySelector(".connection")?.textContent.startsWith("Reconnecting")) window.__reconnected = true;
      for (const li of document.querySelectorAll("li.upload")) {
        const bar = li.querySelector("progress");
        if (li.querySelector(".filename")?.textContent === name && bar?.hasAttribute("value")) {
          window.__fractions.push(Number(bar.value));
        }
      }
    }, 20);
  }, path.basename(goodPdf));

  // Restart the server once the document is in the pipeline.
  await good.getByTestId("stage").filter({ hasText: /uploaded|extracting|chunking|embedding|indexed/ }).waitFor();
  const stageNow = await good.getByTestId("stage").textContent();
  say("restart", { stage: stageNow });
  // "kept": a harness that cannot restart the server (a measuring run).
  const answer = (await lines.next()).value;
  if (answer !== "restarted" && answer !== "kept") fail(`expected "restarted", got ${answer}`);
  await good.getByTestId("stage").filter({ hasText: "indexed" }).waitFor({ timeout: LONG });
  // The restart ended the progress stream: the app said so and resumed.
  if (answer === "restarted") {
    await page.waitForFunction(() => window.__reconnected, null, { timeout: LONG });
    await page.waitForFunction(() => document.querySelector(".connection")?.textContent === "");
  }
  const fractions = await page.evaluate(() => window.__fractions);
  const backwards = fractions.findIndex((f, i) => i > 0 && f < fractions[i - 1]);
  if (backwards >= 0) fail(`progress went backwards at sample ${backwards}: ${fractions.slice(Math.max(0, backwards - 3), backwards + 2)}`);
  say("indexed", { file: path.basename(goodPdf), samples: fractions.length, stage_at_restart: stageNow });

  await broken.getByTestId("stage").filter({ hasText: /failed|refused/ }).waitFor({ timeout: LONG });
  const reason = (await broken.locator(".reason").textContent())?.trim() ?? "";
  if (!reason) fail("the broken PDF shows no reason");
  say("failed_with_reason", { file: path.basename(brokenPdf), reason });
  await shot(page, "upload");

  // Documents: both, with their stage words; filtering narrows the table.
  await page.getByRole("link", { name: "Documents" }).click();
  const rows = page.locator("tbody tr");
  await rows.nth(1).waitFor();
  const table = await page.locator("tbody").textContent();
  if (!table.includes("indexed") || !table.includes("failed")) fail(`documents table: ${table}`);
  await page.getByLabel("Filter").fill(path.basename(goodPdf).slice(0, 12));
  if ((await rows.count()) !== 1) fail("the filter did not narrow the table to one document");
  say("documents", { rows: 2 });
  await accessible(page, "documents");
  await shot(page, "documents");

  // Search: hits with marked snippets and a citation (file, pages).
  await page.getByRole("link", { name: "Search" }).click();
  await page.getByRole("searchbox", { name: "Search" }).fill(query);
  const asked = Date.now();
  await page.getByRole("button", { name: "Search" }).click();
  const first = page.locator("ol.hits li").first();
  await first.waitFor();
  const searchMs = Date.now() - asked;
  const cite = await first.locator("cite").textContent();
  if (!cite.includes(path.basename(goodPdf)) || !/p\.|pp\./.test(cite)) fail(`first hit's citation: ${cite}`);
  if ((await first.locator("mark").count()) === 0) fail("no query word marked in the first snippet");
  say("searched", { cite, ms: searchMs });
  await accessible(page, "search");
  await shot(page, "search");

  // The citation opens the stored PDF at its page, drawn by pdf.js.
  const cited = Number(/p+\. (\d+)/.exec(cite)[1]);
  await first.locator("cite a").click();
  await page.locator(`canvas[data-rendered-page="${cited}"]`).waitFor({ timeout: LONG });
  const pager = await page.locator(".pager [role=status]").textContent();
  if (!new RegExp(`^Page ${cited} of \\d+$`).test(pager)) fail(`viewer: ${pager}`);
  await accessible(page, "viewer");
  await shot(page, "viewer");
  await page.getByRole("button", { name: "Next page" }).click();
  await page.locator(`canvas[data-rendered-page="${cited + 1}"]`).waitFor();
  say("viewed", { page: cited, pager });

  // Ask: the answer streams in with numbered citations of pages.
  await page.getByRole("link", { name: "Ask" }).click();
  await page.getByLabel("Question").fill("What helps shift workers with work-family conflict?");
  await page.getByRole("button", { name: "Ask" }).click();
  await page.locator(".answer a.citation").first().waitFor({ timeout: LONG });
  const source = await page.getByRole("list", { name: "Sources" }).locator("cite").first().textContent();
  if (!source.includes(path.basename(goodPdf))) fail(`first source: ${source}`);
  say("asked", { source });
  await accessible(page, "ask");
  await shot(page, "ask");

  // Cards from the indexed document, then a review of three with the keys.
  await page.getByRole("link", { name: "Cards" }).click();
  await page.getByRole("button", { name: "Generate cards" }).click();
  await page.getByRole("status").filter({ hasText: /new card/ }).waitFor({ timeout: LONG });
  const cards = page.getByRole("list", { name: "Your cards" }).locator("li");
  await cards.nth(2).waitFor();
  say("cards", { count: await cards.count() });
  await accessible(page, "cards");
  await shot(page, "cards");
  await page.getByRole("link", { name: "Review" }).click();
  for (let i = 0; i < 3; i++) {
    await page.locator(".review .front").waitFor();
    await page.keyboard.press("Space");
    await page.locator(".review .back").waitFor();
    // Each rating button says when it would bring the card back.
    await page.locator(".ratings .interval").nth(3).waitFor();
    if (i === 0) {
      await accessible(page, "review");
      await shot(page, "review");
    }
    await page.keyboard.press("3");
    await page.getByRole("list", { name: "Reviewed" }).locator("li").nth(i).waitFor();
  }
  const reviewed = await page.getByRole("list", { name: "Reviewed" }).locator("li").allTextContents();
  if (!reviewed.every((r) => /Good, back in \d+ (min|h|d)/.test(r))) fail(`reviews: ${reviewed}`);
  say("reviewed", { reviews: reviewed.length, first: reviewed[0] });

  // Dashboard: the counters and the per-stage plot.
  await page.getByRole("link", { name: "Dashboard" }).click();
  await page.locator('[data-counter="indexed"]').filter({ hasText: /^[1-9]/ }).waitFor();
  await page.locator('[data-counter="failed"]').filter({ hasText: /^[1-9]/ }).waitFor();
  await page.getByRole("img", { name: /Seconds per stage/ }).waitFor();
  say("dashboard");
  await accessible(page, "dashboard");
  await shot(page, "dashboard");

  // Study: the three reviews counted, per day and in the forecast.
  await page.getByRole("link", { name: "Study" }).click();
  await page.locator('[data-counter="reviews"]').filter({ hasText: /^3$/ }).waitFor();
  await page.getByRole("img", { name: /Reviews per day.*\b3\b/ }).waitFor();
  await page.getByRole("img", { name: /Cards due per day/ }).waitFor();
  say("study");
  await accessible(page, "study");
  await shot(page, "study");

  // History: the learner's events, and as of yesterday none of today's.
  await page.getByRole("link", { name: "History" }).click();
  const timeline = page.getByRole("list", { name: "Timeline" });
  await timeline.locator("li", { hasText: "CardReviewed" }).nth(2).waitFor();
  const now = await timeline.locator("li").count();
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  await page.getByLabel("As of").fill(yesterday);
  await page.getByRole("button", { name: "Replay" }).click();
  await page.getByRole("status").filter({ hasText: `up to ${yesterday}` }).waitFor();
  const then = await timeline.locator("li").count();
  if (then !== 0) fail(`as of ${yesterday}: ${then} events (all of them are from today)`);
  say("history", { events: now });
  await accessible(page, "history");
  await shot(page, "history");

  // Budget: an event appended → the page updated. The harness uploads
  // documents one by one and sends each id with the instant its upload
  // returned (its DocumentUploaded appended); the page notes when each
  // row appears.
  await page.getByRole("link", { name: "Documents" }).click();
  await page.evaluate(() => {
    window.__seen = {};
    const note = () => {
      for (const tr of document.querySelectorAll("tbody tr[data-document-id]")) {
        if (!(tr.dataset.documentId in window.__seen)) window.__seen[tr.dataset.documentId] = Date.now();
      }
    };
    new MutationObserver(note).observe(document.body, { subtree: true, childList: true });
  });
  say("measure_updates");
  const called = {};
  const returned = {};
  for (;;) {
    const line = (await lines.next()).value;
    if (line === "uploaded-all") break;
    const [id, start, end] = line.split(" ");
    [called[id], returned[id]] = [Number(start), Number(end)];
  }
  const ids = Object.keys(returned);
  await page.waitForFunction((ids) => ids.every((id) => id in window.__seen), ids, { timeout: LONG });
  const seen = await page.evaluate(() => window.__seen);
  const quantile = (xs, q) => xs[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)];
  // From the call's return (the event is appended a little before: a
  // lower bound), and from its start (an upper bound).
  const lags = ids.map((id) => seen[id] - returned[id]).sort((a, b) => a - b);
  const upper = ids.map((id) => seen[id] - called[id]).sort((a, b) => a - b);
  say("updates", {
    n: lags.length,
    p50_ms: quantile(lags, 0.5),
    p95_ms: quantile(lags, 0.95),
    max_ms: lags[lags.length - 1],
    p95_from_call_ms: quantile(upper, 0.95),
  });

  // Budget: the JavaScript the first page loads, gzipped.
  const html = await (await fetch(`${base}/`)).text();
  let initialGz = 0;
  for (const [, src] of html.matchAll(/<script[^>]+src="([^"]+)"/g)) {
    const js = Buffer.from(await (await fetch(`${base}${src}`)).arrayBuffer());
    initialGz += gzipSync(js, { level: 9 }).length;
  }
  say("initial_js", { gzip_bytes: initialGz });

  // A phone's width: nothing wider than the screen.
  await page.setViewportSize({ width: 375, height: 740 });
  for (const [name, link] of [
    ["documents", "Documents"],
    ["upload", "Upload"],
    ["search", "Search"],
    ["ask", "Ask"],
    ["cards", "Cards"],
    ["dashboard", "Dashboard"],
    ["study", "Study"],
    ["history", "History"],
  ]) {
    await page.getByRole("link", { name: link }).click();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 375) fail(`${name} at 375 px is ${wide} px wide`);
    await shot(page, `${name}-375`);
  }
  say("narrow", { width: 375 });

  // A refused token: back to the sign-in box with the reason.
  const other = await browser.newContext();
  const stranger = await other.newPage();
  await stranger.goto(`${base}/#token=not.a-valid.token`);
  await stranger.getByRole("alert").filter({ hasText: /sign in again/ }).waitFor();
  say("refused_token");
  await other.close();
  say("done");
} catch (e) {
  await Promise.all(browser.contexts().flatMap((c) => c.pages()).map((p) => p.locator("main").innerText().then((t) => console.error(`the page said: ${t}`)).catch(() => {})));
  throw e;
} finally {
  await browser.close();
  stdin.close();
}
