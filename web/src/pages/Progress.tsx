import { documents, explain } from "../client";
import { Stage } from "../gen/mnemo/v1/documents_pb";
import { isTerminal, STAGE_WORDS, type Doc } from "../library";

/** One document's live progress: stage word, bar, counts, the reason when
 * it failed, and what can be done about it. */
export function ProgressRow({ doc, onError }: { doc: Doc; onError: (m: string) => void }) {
  const word = STAGE_WORDS[doc.stage];
  const counts = [
    doc.pagesTotal > 0 ? `pages ${doc.pagesDone}/${doc.pagesTotal}` : "",
    doc.chunksTotal > 0 ? `chunks embedded ${doc.chunksEmbedded}/${doc.chunksTotal}` : "",
  ]
    .filter(Boolean)
    .join(" · ");
  const act = (what: Promise<unknown>) => what.catch((e) => onError(explain(e)));
  return (
    <li class={`upload stage-${word}`} data-document-id={doc.id}>
      <div class="upload-head">
        <span class="filename">{doc.filename}</span>
        <span class="stage" data-testid="stage">
          {word}
        </span>
      </div>
      <progress
        max={1}
        value={doc.stage === Stage.INDEXED ? 1 : doc.fraction}
        aria-label={`${doc.filename}: ${word}`}
      />
      {counts && <div class="counts">{counts}</div>}
      {doc.reason && (
        <div class="reason" role="status">
          {doc.reason}
        </div>
      )}
      <div class="actions">
        {!isTerminal(doc.stage) && (
          <button type="button" onClick={() => act(documents.cancel({ documentId: doc.id, reason: "cancelled in the web app" }))}>
            Cancel
          </button>
        )}
        {isTerminal(doc.stage) && doc.stage !== Stage.INDEXED && (
          <button type="button" onClick={() => act(documents.reprocess({ documentId: doc.id, reason: "retried in the web app" }))}>
            Retry
          </button>
        )}
        {doc.stage === Stage.INDEXED && (
          <button type="button" onClick={() => act(documents.reprocess({ documentId: doc.id, reason: "reprocessed in the web app" }))}>
            Reprocess
          </button>
        )}
      </div>
    </li>
  );
}
