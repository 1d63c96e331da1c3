// The API's clients: generated from protos/ (src/gen, `npm run generate`)
// over Connect's gRPC-Web transport, to the server that served this page.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DocumentService } from "./gen/mnemo/v1/documents_pb";
import { ProgressService } from "./gen/mnemo/v1/progress_pb";
import { SearchService } from "./gen/mnemo/v1/search_pb";
import { token } from "./session";

const bearer: Interceptor = (next) => async (req) => {
  const t = token();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: location.origin,
  interceptors: [bearer],
});

export const documents = createClient(DocumentService, transport);
export const progress = createClient(ProgressService, transport);
export const search = createClient(SearchService, transport);

/** Listeners told when the server refuses the token (the app asks for a
 * new one). */
const refused = new Set<() => void>();
export function onTokenRefused(f: () => void): () => void {
  refused.add(f);
  return () => refused.delete(f);
}

/** What went wrong, in words for the learner: the server's reason, with
 * its status code name. */
export function explain(e: unknown): string {
  if (e instanceof ConnectError) {
    if (e.code === Code.Unauthenticated) refused.forEach((f) => f());
    return `${Code[e.code]}: ${e.rawMessage}`;
  }
  return e instanceof Error ? e.message : String(e);
}
