// mnemo from TypeScript (Node): upload a file, watch it become searchable,
// search it.
//
//   npm ci && npm run generate
//   npx tsx quickstart.ts --server 127.0.0.1:50051 --token-file TOKEN FILE "QUERY"
//
// Prints one JSON object per line (the upload, each progress update, each
// hit) and exits 0 when the file was indexed, 1 when it failed (the
// failure's stage and code say where and why), 2 on a refused call.
//
// The clients are generated from the repository's protos/ (protoc-gen-es,
// `npm run generate`); the wire is Connect's gRPC transport over HTTP/2.
// The test suite runs this file against a real server
// (tests/e2e/examples.rs); docs/api.md explains each step.

import { readFileSync, openSync, readSync, closeSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { create, type DescEnum } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  DocumentService,
  FailureCodeSchema,
  Stage,
  StageSchema,
  UploadRequestSchema,
} from "./gen/mnemo/v1/documents_pb.js";
import { ProgressService, type ProgressUpdate } from "./gen/mnemo/v1/progress_pb.js";
import { SearchService } from "./gen/mnemo/v1/search_pb.js";

// The server takes messages of at most 4 MiB; 256 KiB keeps memory small.
const CHUNK = 256 * 1024;
// After these, watching again from the last sequence is the fix.
const RESUMABLE = new Set([Code.Unavailable, Code.Aborted]);

const emit = (fields: Record<string, unknown>) => console.log(JSON.stringify(fields));

/** An enum value's name as the proto spells it (STAGE_INDEXED), as other
 * languages' clients print it. */
const protoName = (e: DescEnum, n: number) => e.values.find((v) => v.number === n)?.name ?? `${n}`;

/** A status code as gRPC spells it (UNAUTHENTICATED). */
const codeName = (c: Code) => Code[c].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

/** The file's bytes in chunks, read as they are sent. */
function* chunks(path: string): Generator<Uint8Array> {
  const fd = openSync(path, "r");
  try {
    for (;;) {
      const buf = new Uint8Array(CHUNK);
      const n = readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    options: {
      server: { type: "string", default: "127.0.0.1:50051" },
      "token-file": { type: "string" },
      topic: { type: "string", default: "" },
    },
    allowPositionals: true,
  });
  const [file, query] = positionals;
  if (!values["token-file"] || !file || !query) {
    console.error("usage: quickstart.ts [--server HOST:PORT] --token-file TOKEN FILE QUERY");
    return 2;
  }
  // Every call carries the token as `authorization: Bearer <JWT>`.
  const token = readFileSync(values["token-file"], "utf8").trim();
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: `http://${values.server}`,
    interceptors: [bearer],
  });
  const documents = createClient(DocumentService, transport);
  const progress = createClient(ProgressService, transport);
  const search = createClient(SearchService, transport);

  try {
    // 1. Upload: the metadata first, then the bytes in chunks.
    async function* parts() {
      yield create(UploadRequestSchema, {
        part: { case: "metadata", value: { filename: basename(file), topic: values.topic } },
      });
      for (const chunk of chunks(file)) {
        yield create(UploadRequestSchema, { part: { case: "chunk", value: chunk } });
      }
    }
    const up = await documents.upload(parts());
    emit({
      event: "uploaded",
      document_id: up.documentId,
      sequence: Number(up.sequence),
      deduplicated: up.deduplicated,
    });

    // 2. Watch until the document is terminal. A broken stream is resumed
    // from the last sequence seen: nothing missed or repeated.
    let last = 0n;
    let final: ProgressUpdate | undefined;
    for (let attempt = 1; !final; attempt++) {
      if (attempt > 10) {
        emit({ event: "refused", code: "UNAVAILABLE", reason: "the progress stream kept breaking" });
        return 2;
      }
      try {
        for await (const u of progress.watch({
          scope: { case: "documentId", value: up.documentId },
          fromSequence: last,
        })) {
          last = u.sequence;
          emit({
            event: "progress",
            stage: protoName(StageSchema, u.stage),
            fraction: u.fraction,
            message: u.message,
            sequence: Number(u.sequence),
          });
          if (u.terminal) {
            final = u;
            break;
          }
        }
      } catch (e) {
        const err = ConnectError.from(e);
        if (!RESUMABLE.has(err.code)) throw err;
        await new Promise((r) => setTimeout(r, 1000)); // the API is restarting, or we fell behind
      }
    }

    if (final.stage !== Stage.INDEXED) {
      emit({
        event: "failed",
        stage: protoName(StageSchema, final.failedStage),
        code: protoName(FailureCodeSchema, final.failureCode),
        message: final.message,
      });
      return 1;
    }

    // 3. Search, reading our own write: wait until the index has the
    // sequence of the update that said `indexed`.
    const found = await search.search({ query, k: 3, minSequence: final.sequence });
    for (const hit of found.hits) {
      emit({
        event: "hit",
        title: hit.title,
        pages: [hit.pageStart, hit.pageEnd],
        score: Math.round(hit.score * 1e4) / 1e4,
        snippet: hit.snippet,
      });
    }
    return 0;
  } catch (e) {
    // Every refusal carries a code and a reason written for people.
    const err = ConnectError.from(e);
    emit({ event: "refused", code: codeName(err.code), reason: err.rawMessage });
    return 2;
  }
}

process.exitCode = await main();
