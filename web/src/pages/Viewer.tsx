import * as pdfjs from "pdfjs-dist";
import workerUrl from "pdfjs-dist/build/pdf.worker.min.mjs?url";
import { useEffect, useRef, useState } from "preact/hooks";
import { documents } from "../client";
import { ErrorLine, useCall } from "../ui";

pdfjs.GlobalWorkerOptions.workerSrc = workerUrl;

type Loaded = { filename: string; pdf?: pdfjs.PDFDocumentProxy; text?: string };

/** The stored file, fetched in pieces (DocumentService.Download). */
async function fetchDocument(documentId: string): Promise<{ filename: string; type: string; bytes: Uint8Array }> {
  const parts: Uint8Array[] = [];
  let filename = "";
  let type = "";
  for await (const m of documents.download({ documentId })) {
    if (m.filename) [filename, type] = [m.filename, m.contentType];
    parts.push(m.chunk);
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { filename, type, bytes };
}

/** A document at a page: PDFs drawn by pdf.js, text shown as text. */
export function Viewer() {
  const params = new URLSearchParams(location.search);
  const documentId = params.get("doc") ?? "";
  const [page, setPage] = useState(Math.max(1, Number(params.get("page")) || 1));
  const [doc, setDoc] = useState<Loaded | null>(null);
  const { error, run } = useCall();
  const canvas = useRef<HTMLCanvasElement>(null);

  useEffect(() => {
    void run(async () => {
      const got = await fetchDocument(documentId);
      if (got.type === "application/pdf") {
        // No WebAssembly: the page's CSP allows no compiling; pdf.js's
        // JavaScript decoders do the same work.
        const pdf = await pdfjs.getDocument({ data: got.bytes, useWasm: false }).promise;
        setDoc({ filename: got.filename, pdf });
      } else {
        setDoc({ filename: got.filename, text: new TextDecoder().decode(got.bytes) });
      }
    });
  }, [documentId]);

  useEffect(() => {
    const pdf = doc?.pdf;
    if (!pdf || !canvas.current) return;
    const target = canvas.current;
    let task: { cancel: () => void } | undefined;
    void run(async () => {
      const p = await pdf.getPage(Math.min(page, pdf.numPages));
      const viewport = p.getViewport({ scale: Math.min(2, (target.parentElement?.clientWidth ?? 800) / p.getViewport({ scale: 1 }).width) });
      target.width = viewport.width;
      target.height = viewport.height;
      const render = p.render({ canvas: target, viewport });
      task = render;
      await render.promise;
      target.dataset.renderedPage = String(page);
    });
    return () => task?.cancel();
  }, [doc, page]);

  const pages = doc?.pdf?.numPages ?? 0;
  return (
    <section aria-labelledby="viewer-title">
      <h1 id="viewer-title">{doc?.filename || "Document"}</h1>
      <ErrorLine error={error} />
      {!doc && !error && <p role="status">Loading the document…</p>}
      {doc?.pdf && (
        <>
          <div class="actions pager">
            <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)}>
              Previous page
            </button>
            <span role="status">
              Page {page} of {pages}
            </span>
            <button type="button" disabled={page >= pages} onClick={() => setPage(page + 1)}>
              Next page
            </button>
          </div>
          <div class="page">
            <canvas ref={canvas} role="img" aria-label={`Page ${page} of ${doc.filename}`} />
          </div>
        </>
      )}
      {doc?.text !== undefined && <pre class="text">{doc.text}</pre>}
    </section>
  );
}
