import { useState } from "preact/hooks";
import { qa } from "../client";
import type { AskSource } from "../gen/mnemo/v1/qa_pb";
import { follow, viewAt } from "../router";
import { ErrorLine, pagesOf, useCall } from "../ui";

/** The answer's text with each [n] linked to its source's page. */
function Answer({ text, sources }: { text: string; sources: AskSource[] }) {
  const parts = text.split(/(\[\d+\])/);
  return (
    <p class="answer" aria-live="polite">
      {parts.map((p) => {
        const n = Number(/^\[(\d+)\]$/.exec(p)?.[1]);
        const source = sources.find((s) => s.n === n);
        if (!source) return p;
        const to = viewAt(source.documentId, source.pageStart || 1);
        return (
          <a href={to} onClick={(e) => follow(e, to)} class="citation" title={`${source.title}, ${pagesOf(source.pageStart, source.pageEnd)}`}>
            [{n}]
          </a>
        );
      })}
    </p>
  );
}

/** A question about the learner's material: the answer streams in, with
 * numbered citations of the pages it comes from. */
export function Ask() {
  const [question, setQuestion] = useState("");
  const [answer, setAnswer] = useState("");
  const [sources, setSources] = useState<AskSource[]>([]);
  const [note, setNote] = useState("");
  const { busy, error, run: call } = useCall();

  function run(e: Event) {
    e.preventDefault();
    if (!question.trim()) return;
    setAnswer("");
    setSources([]);
    setNote("");
    void call(async () => {
      let text = "";
      for await (const r of qa.ask({ question, k: 5 })) {
        switch (r.part.case) {
          case "sources":
            setSources(r.part.value.sources);
            break;
          case "delta":
            text = r.part.value.restart ? r.part.value.text : text + r.part.value.text;
            setAnswer(text);
            break;
          case "done":
            setAnswer(r.part.value.answer);
            setNote(
              r.part.value.producedBy === "llm"
                ? `Answered by ${r.part.value.model}.`
                : `Extractive answer (sentences from your material)${r.part.value.fallbackReason ? `: ${r.part.value.fallbackReason}` : "."}`,
            );
            break;
        }
      }
    });
  }

  return (
    <section aria-labelledby="ask-title">
      <h1 id="ask-title">Ask</h1>
      <form class="ask" onSubmit={run}>
        <label>
          Question
          <textarea rows={2} value={question} onInput={(e) => setQuestion(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Ask
        </button>
      </form>
      <ErrorLine error={error} />
      {answer && <Answer text={answer} sources={sources} />}
      {note && <p class="counts">{note}</p>}
      {sources.length > 0 && (
        <ol class="sources" aria-label="Sources">
          {sources.map((s) => (
            <li id={`source-${s.n}`} value={s.n} key={s.chunkId}>
              <cite>
                <a href={viewAt(s.documentId, s.pageStart || 1)} onClick={(e) => follow(e, viewAt(s.documentId, s.pageStart || 1))}>
                  {s.title}
                  {pagesOf(s.pageStart, s.pageEnd) && `, ${pagesOf(s.pageStart, s.pageEnd)}`}
                </a>
              </cite>
              <p class="snippet">{s.snippet.replace(/[«»]/g, "")}</p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
