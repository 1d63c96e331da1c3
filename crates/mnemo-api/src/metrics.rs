//! The API's metrics, through the `metrics` facade (recorded only when the
//! binary installs a recorder: `mnemo serve --metrics-listen`).
//!
//! | name | kind | what |
//! |---|---|---|
//! | `mnemo_grpc_requests_total` | counter | calls by `method` and `code` (the gRPC status code; `0` also for a stream that started) |
//! | `mnemo_grpc_request_seconds` | histogram | a call's time to its response (a stream's: to its start), by `method` |
//! | `mnemo_progress_watchers` | gauge | progress streams open ([`crate::progress_hub`]) |
//!
//! `method` is the gRPC path for calls the server implements, `unknown`
//! for the others (so a client cannot make labels without end) and `web`
//! for the web app's files. Owns: the layer and its labels. Must not:
//! label by owner or anything a caller chooses.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The tower layer; outermost but for gRPC-Web's, so it sees every call
/// as gRPC, refusals included.
pub fn layer<S>() -> impl tower_layer::Layer<S, Service = GrpcMetrics<S>> + Clone {
    tower_layer::layer_fn(|inner| GrpcMetrics(inner))
}

/// Records every call it passes on (see [`layer`]).
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S>(S);

impl<S, B, R> tower_service::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let path = req.uri().path().to_owned();
        let started = std::time::Instant::now();
        let call = self.0.call(req);
        Box::pin(async move {
            let response = call.await?;
            let code = code_of(&response);
            let method = method_label(grpc, &path, &code);
            metrics::histogram!("mnemo_grpc_request_seconds", "method" => method.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("mnemo_grpc_requests_total", "method" => method, "code" => code)
                .increment(1);
            Ok(response)
        })
    }
}

/// The status a response carries in its headers (a refusal, or a unary
/// error), else `0`: the call succeeded or its stream started.
fn code_of<R>(response: &http::Response<R>) -> String {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_owned()
}

/// The `method` label: see the module's doc.
fn method_label(grpc: bool, path: &str, code: &str) -> String {
    if !grpc {
        "web".to_owned()
    } else if code == "12" {
        // UNIMPLEMENTED: a path the server does not serve.
        "unknown".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_by_what_the_server_serves() {
        assert_eq!(
            method_label(true, "/mnemo.v1.SearchService/Search", "0"),
            "/mnemo.v1.SearchService/Search"
        );
        assert_eq!(method_label(true, "/made.up/Path", "12"), "unknown");
        assert_eq!(method_label(false, "/assets/x.js", "0"), "web");
        let refused = http::Response::builder()
            .header("grpc-status", "8")
            .body(())
            .unwrap_or_default();
        assert_eq!(code_of(&refused), "8");
        assert_eq!(code_of(&http::Response::new(())), "0");
    }
}
