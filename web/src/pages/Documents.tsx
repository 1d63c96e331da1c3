import { useState } from "preact/hooks";
import { useLibrary } from "../hooks";
import { STAGE_WORDS, type Doc } from "../library";

type Column = "filename" | "topic" | "stage" | "pages" | "chunks" | "uploaded";

const COLUMNS: [Column, string][] = [
  ["filename", "File"],
  ["topic", "Topic"],
  ["stage", "Stage"],
  ["pages", "Pages"],
  ["chunks", "Chunks"],
  ["uploaded", "Uploaded"],
];

function sortKey(d: Doc, c: Column): string | number {
  switch (c) {
    case "filename":
      return d.filename.toLowerCase();
    case "topic":
      return d.topic.toLowerCase();
    case "stage":
      return STAGE_WORDS[d.stage];
    case "pages":
      return d.pagesTotal;
    case "chunks":
      return d.chunksTotal;
    case "uploaded":
      return d.uploadedAt?.getTime() ?? 0;
  }
}

/** Every document of the learner, live: filter by name or topic and by
 * stage, sort by any column. */
export function Documents() {
  const lib = useLibrary();
  const [filter, setFilter] = useState("");
  const [stage, setStage] = useState("");
  const [sort, setSort] = useState<{ by: Column; up: boolean }>({ by: "uploaded", up: false });
  const needle = filter.trim().toLowerCase();
  const rows = [...lib.docs.values()]
    .filter((d) => !needle || d.filename.toLowerCase().includes(needle) || d.topic.toLowerCase().includes(needle))
    .filter((d) => !stage || STAGE_WORDS[d.stage] === stage)
    .sort((a, b) => {
      const [x, y] = [sortKey(a, sort.by), sortKey(b, sort.by)];
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sort.up ? order : -order;
    });
  return (
    <section aria-labelledby="documents-title">
      <h1 id="documents-title">Documents</h1>
      <div class="filters">
        <label>
          Filter
          <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </label>
        <label>
          Stage
          <select value={stage} onChange={(e) => setStage(e.currentTarget.value)}>
            <option value="">any</option>
            {Object.values(STAGE_WORDS)
              .filter((w) => w !== "unknown")
              .map((w) => (
                <option value={w}>{w}</option>
              ))}
          </select>
        </label>
      </div>
      <div class="table-scroll">
        <table>
          <thead>
            <tr>
              {COLUMNS.map(([c, title]) => (
                <th scope="col" aria-sort={sort.by === c ? (sort.up ? "ascending" : "descending") : undefined}>
                  <button type="button" onClick={() => setSort({ by: c, up: sort.by === c ? !sort.up : true })}>
                    {title}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id} data-document-id={d.id}>
                <td>{d.filename}</td>
                <td>{d.topic}</td>
                <td class={`stage-${STAGE_WORDS[d.stage]}`} title={d.reason || undefined}>
                  {STAGE_WORDS[d.stage]}
                </td>
                <td>{d.pagesTotal || ""}</td>
                <td>{d.chunksTotal || ""}</td>
                <td>{d.uploadedAt?.toLocaleString() ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && <p>No documents{needle || stage ? " match" : " yet: upload some"}.</p>}
      </div>
    </section>
  );
}
