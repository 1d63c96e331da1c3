// The API's clients: generated from protos/ (src/gen, `npm run generate`)
// over Connect's gRPC-Web transport, to the server that served this page.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DocumentService, UploadService } from "./gen/mnemo/v1/documents_pb";
import { LearningService } from "./gen/mnemo/v1/learning_pb";
import { ProgressService } from "./gen/mnemo/v1/progress_pb";
import { QaService } from "./gen/mnemo/v1/qa_pb";
import { AuditService } from "./gen/mnemo/v1/audit_pb";
import { SearchService } from "./gen/mnemo/v1/search_pb";
import { StatsService } from "./gen/mnemo/v1/stats_pb";
import { token } from "./session";

/** Listeners told when the server refuses the token (the app asks for a
 * new one). */
const refused = new Set<() => void>();
export function onTokenRefused(f: () => void): () => void {
  refused.add(f);
  return () => refused.delete(f);
}

export function isRefusedToken(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Unauthenticated;
}

const bearer: Interceptor = (next) => async (req) => {
  const t = token();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  try {
    return await next(req);
  } catch (e) {
    // Only the token that was refused is dropped: a new one signed in
    // meanwhile stays.
    if (isRefusedToken(e) && t !== null && token() === t) refused.forEach((f) => f());
    throw e;
  }
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [bearer],
});

export const documents = createClient(DocumentService, transport);
export const uploads = createClient(UploadService, transport);
export const progress = createClient(ProgressService, transport);
export const search = createClient(SearchService, transport);
export const qa = createClient(QaService, transport);
export const learning = createClient(LearningService, transport);
export const stats = createClient(StatsService, transport);
export const audit = createClient(AuditService, transport);

/** What went wrong, in words for the learner: the server's reason, with
 * its status code name. */
export function explain(e: unknown): string {
  if (e instanceof ConnectError) return `${Code[e.code]}: ${e.rawMessage}`;
  return e instanceof Error ? e.message : String(e);
}
