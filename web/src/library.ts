// The learner's documents as the app knows them: the read model's list
// (DocumentService.List), then every change as it happens from the event
// stream (ProgressService.Watch over all documents, `follow`). After a
// network drop or a server restart the stream is resumed from the last
// sequence seen: nothing is missed, nothing repeated, and a bar never goes
// backwards (within a run the server's fraction only grows).
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { documents, explain, isRefusedToken, progress } from "./client";
import { Stage, type Document } from "./gen/mnemo/v1/documents_pb";
import type { ProgressUpdate } from "./gen/mnemo/v1/progress_pb";

export type Doc = {
  id: string;
  filename: string;
  topic: string;
  stage: Stage;
  run: number;
  fraction: number;
  pagesDone: number;
  pagesTotal: number;
  chunksEmbedded: number;
  chunksTotal: number;
  reason: string;
  uploadedAt?: Date;
  /** The stream sequence of the last event folded in. */
  sequence: bigint;
};

export type Connection = "connecting" | "live" | "reconnecting";

export const STAGE_WORDS: Record<Stage, string> = {
  [Stage.UNSPECIFIED]: "unknown",
  [Stage.UPLOADED]: "uploaded",
  [Stage.EXTRACTING]: "extracting",
  [Stage.CHUNKING]: "chunking",
  [Stage.EMBEDDING]: "embedding",
  [Stage.INDEXED]: "indexed",
  [Stage.FAILED]: "failed",
  [Stage.CANCELLED]: "cancelled",
};

export function isTerminal(stage: Stage): boolean {
  return stage === Stage.INDEXED || stage === Stage.FAILED || stage === Stage.CANCELLED;
}

function fromDocument(d: Document): Doc {
  return {
    id: d.documentId,
    filename: d.filename,
    topic: d.topic,
    stage: d.stage,
    run: d.run,
    fraction: d.stage === Stage.INDEXED ? 1 : 0,
    pagesDone: d.stage === Stage.INDEXED ? d.pagesTotal : 0,
    pagesTotal: d.pagesTotal,
    chunksEmbedded: 0,
    chunksTotal: 0,
    reason: d.reason,
    uploadedAt: d.uploadedAt ? timestampDate(d.uploadedAt) : undefined,
    sequence: d.sequence,
  };
}

class Library {
  docs = new Map<string, Doc>();
  connection: Connection = "connecting";
  problem = "";
  private listeners = new Set<() => void>();
  private started = false;
  private resumeFrom = 0n;

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Grows with every change (a dependency for effects). */
  version = 0;

  private changed() {
    this.version += 1;
    this.listeners.forEach((f) => f());
  }

  /** Loads the list, then follows every change until the page closes. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.run();
  }

  private async run() {
    let delay = 250;
    for (;;) {
      try {
        if (this.resumeFrom === 0n) {
          const list = await documents.list({ limit: 1000 });
          for (const d of list.documents) this.merge(fromDocument(d));
          this.resumeFrom = list.sequence;
          this.changed();
        }
        const stream = progress.watch({
          scope: { case: "all", value: {} },
          fromSequence: this.resumeFrom,
          follow: true,
        });
        this.connection = "live";
        this.problem = "";
        this.changed();
        for await (const u of stream) {
          this.resumeFrom = u.sequence;
          this.apply(u);
          delay = 250;
        }
      } catch (e) {
        this.problem = explain(e);
        // A refused token is not retried: the app asks for a new one and
        // starts again with it.
        if (isRefusedToken(e)) {
          this.started = false;
          this.changed();
          return;
        }
      }
      // The stream ended (server stopping, network gone): resume from the
      // last sequence seen, waiting longer each time up to 5 s.
      this.connection = "reconnecting";
      this.changed();
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** A document as uploaded, before its first update arrives. */
  uploaded(d: Doc): void {
    this.merge(d);
    this.changed();
  }

  private merge(d: Doc) {
    const known = this.docs.get(d.id);
    if (!known || known.sequence < d.sequence) this.docs.set(d.id, d);
  }

  private apply(u: ProgressUpdate) {
    const known = this.docs.get(u.documentId);
    if (known && known.sequence >= u.sequence) return;
    const sameRun = known !== undefined && known.run === u.run;
    this.docs.set(u.documentId, {
      id: u.documentId,
      filename: u.filename || known?.filename || "",
      topic: known?.topic ?? "",
      stage: u.stage,
      run: u.run,
      fraction: sameRun ? Math.max(known.fraction, u.fraction) : u.fraction,
      pagesDone: Number(u.pagesDone),
      pagesTotal: Number(u.pagesTotal),
      chunksEmbedded: Number(u.chunksEmbedded),
      chunksTotal: Number(u.chunksTotal),
      reason: u.stage === Stage.FAILED || u.stage === Stage.CANCELLED ? u.message : "",
      uploadedAt: known?.uploadedAt ?? new Date(),
      sequence: u.sequence,
    });
    this.changed();
  }
}

export const library = new Library();
