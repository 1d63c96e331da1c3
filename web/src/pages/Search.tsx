import { useState } from "preact/hooks";
import { search } from "../client";
import type { SearchHit } from "../gen/mnemo/v1/search_pb";
import { follow, viewAt } from "../router";
import { ErrorLine, pagesOf, useCall } from "../ui";

/** A snippet with the server's « » marks around the query's words. */
function Snippet({ text }: { text: string }) {
  const parts = text.split(/«|»/);
  return (
    <p class="snippet">
      {parts.map((p, i) => (i % 2 === 1 ? <mark>{p}</mark> : p))}
    </p>
  );
}

/** Hybrid search over the learner's indexed documents. */
export function Search() {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const { busy, error, run: call } = useCall();

  function run(e: Event) {
    e.preventDefault();
    if (!query.trim()) return;
    void call(async () => setHits((await search.search({ query, k: 10 })).hits));
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
      <ErrorLine error={error} />
      {hits && hits.length === 0 && <p>Nothing found.</p>}
      {hits && hits.length > 0 && (
        <ol class="hits" aria-label="Results">
          {hits.map((h) => (
            <li key={h.chunkId} class="hit">
              <Snippet text={h.snippet} />
              <cite>
                <a href={viewAt(h.documentId, h.pageStart || 1)} onClick={(e) => follow(e, viewAt(h.documentId, h.pageStart || 1))}>
                  {h.title}
                  {pagesOf(h.pageStart, h.pageEnd) && `, ${pagesOf(h.pageStart, h.pageEnd)}`}
                </a>
              </cite>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
