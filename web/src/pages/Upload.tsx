import { useState } from "preact/hooks";
import { explain, uploads } from "../client";
import { Stage } from "../gen/mnemo/v1/documents_pb";
import { useLibrary } from "../hooks";
import { ProgressRow } from "./Progress";

type Sending = { key: string; filename: string; error?: string };

/** Upload many files at once (a file input or drag and drop); each gets
 * its own live progress from the event stream. */
export function Upload() {
  const lib = useLibrary();
  const [sending, setSending] = useState<Sending[]>([]);
  const [mine, setMine] = useState<string[]>([]);
  const [notice, setNotice] = useState("");
  const [over, setOver] = useState(false);

  async function send(file: File) {
    const key = `${file.name}/${file.size}/${Date.now()}/${Math.random()}`;
    setSending((s) => [...s, { key, filename: file.name }]);
    try {
      const content = new Uint8Array(await file.arrayBuffer());
      const r = await uploads.uploadFile({
        metadata: { filename: file.name, contentType: file.type },
        content,
      });
      lib.uploaded({
        id: r.documentId,
        filename: file.name,
        topic: "",
        stage: Stage.UPLOADED,
        run: 1,
        fraction: 0,
        pagesDone: 0,
        pagesTotal: 0,
        chunksEmbedded: 0,
        chunksTotal: 0,
        reason: "",
        uploadedAt: new Date(),
        sequence: 0n,
      });
      if (r.deduplicated) setNotice(`${file.name}: uploaded before; showing that document.`);
      setMine((m) => [r.documentId, ...m.filter((id) => id !== r.documentId)]);
      setSending((s) => s.filter((x) => x.key !== key));
    } catch (e) {
      setSending((s) => s.map((x) => (x.key === key ? { ...x, error: explain(e) } : x)));
    }
  }

  function take(files: FileList | null) {
    if (files) Array.from(files).forEach((f) => void send(f));
  }

  return (
    <section aria-labelledby="upload-title">
      <h1 id="upload-title">Upload study material</h1>
      <div
        class={`drop ${over ? "over" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          take(e.dataTransfer?.files ?? null);
        }}
      >
        <p>Drop PDFs, text or Markdown files here, or</p>
        <label class="button">
          Upload
          <input
            type="file"
            multiple
            accept=".pdf,.txt,.md,application/pdf,text/plain,text/markdown"
            onChange={(e) => {
              take(e.currentTarget.files);
              e.currentTarget.value = "";
            }}
          />
        </label>
      </div>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <p class="connection" aria-live="polite">
        {lib.connection === "reconnecting" ? `Reconnecting to the progress stream… ${lib.problem}` : ""}
      </p>
      <ul class="uploads" aria-label="Uploads">
        {sending.map((s) => (
          <li class={`upload ${s.error ? "stage-failed" : ""}`} key={s.key}>
            <div class="upload-head">
              <span class="filename">{s.filename}</span>
              <span class="stage" data-testid="stage">
                {s.error ? "refused" : "sending"}
              </span>
            </div>
            {s.error ? (
              <div class="reason" role="alert">
                {s.error}
              </div>
            ) : (
              <progress aria-label={`${s.filename}: sending`} />
            )}
          </li>
        ))}
        {mine.map((id) => {
          const doc = lib.docs.get(id);
          return doc ? <ProgressRow key={id} doc={doc} onError={setNotice} /> : null;
        })}
      </ul>
    </section>
  );
}
