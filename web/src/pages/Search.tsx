import { useState } from "preact/hooks";
import { explain, search } from "../client";
import type { SearchHit } from "../gen/mnemo/v1/search_pb";

/** A snippet with the server's « » marks around the query's words. */
function Snippet({ text }: { text: string }) {
  const parts = text.split(/«|»/);
  return (
    <p class="snippet">
      {parts.map((p, i) => (i % 2 === 1 ? <mark>{p}</mark> : p))}
    </p>
  );
}

function pages(h: SearchHit): string {
  if (h.pageStart === 0) return "";
  return h.pageEnd > h.pageStart ? `pp. ${h.pageStart}–${h.pageEnd}` : `p. ${h.pageStart}`;
}

/** Hybrid search over the learner's indexed documents. */
export function Search() {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function run(e: Event) {
    e.preventDefault();
    if (!query.trim()) return;
    setBusy(true);
    setError("");
    try {
      const r = await search.search({ query, k: 10 });
      setHits(r.hits);
    } catch (err) {
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="search-title">
      <h1 id="search-title">Search</h1>
      <form role="search" onSubmit={run}>
        <input
          type="search"
          aria-label="Search"
          placeholder="What are you looking for?"
          value={query}
          onInput={(e) => setQuery(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>
          Search
        </button>
      </form>
      {error && (
        <p class="reason" role="alert">
          {error}
        </p>
      )}
      {hits && hits.length === 0 && <p>Nothing found.</p>}
      {hits && hits.length > 0 && (
        <ol class="hits" aria-label="Results">
          {hits.map((h) => (
            <li key={h.chunkId} class="hit">
              <Snippet text={h.snippet} />
              <cite>
                {h.title}
                {pages(h) && `, ${pages(h)}`}
              </cite>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
