//! Every call gets a request id: the client's `x-request-id` (when it sends
//! a usable one) or a new UUIDv7. It is
//! - put back on the request, so commands record it as their correlation id;
//! - on every log line of the call (a `request` span with `request_id` and
//!   the method's path);
//! - returned in the response's `x-request-id` header (also on errors);
//! - what [`crate::status`] tells a client whose call failed internally, so
//!   the operator can find the cause in the log.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Instrument;

/// The metadata key, both ways.
pub const HEADER: &str = "x-request-id";
/// Longest client-chosen id accepted (longer ones are replaced).
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the call this code runs for, if any (unary calls and the
/// handler part of streaming calls; a stream's spawned tasks have none).
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `f` as if inside the call `id` (tests of code that reads [`current`]).
#[cfg(test)]
pub(crate) async fn tests_scope<F: Future>(id: &str, f: F) -> F::Output {
    CURRENT.scope(id.to_owned(), f).await
}

fn usable(v: &http::HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?.trim();
    (!s.is_empty() && s.len() <= MAX_LEN && s.chars().all(|c| c.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// The tower layer that gives every call its request id.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower_layer::Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

/// See [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for RequestId<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let id = req
            .headers()
            .get(HEADER)
            .and_then(usable)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let value = http::HeaderValue::from_str(&id).ok();
        if let Some(v) = &value {
            req.headers_mut().insert(HEADER, v.clone());
        }
        let span = tracing::info_span!("request", request_id = %id, method = %req.uri().path());
        // A step of the caller's trace, if it sent one (W3C `traceparent`).
        mnemo_bus::trace::continue_trace(
            &span,
            req.headers()
                .get(mnemo_bus::envelope::TRACEPARENT)
                .and_then(|v| v.to_str().ok()),
        );
        let call = self.inner.call(req);
        Box::pin(
            CURRENT.scope(
                id,
                async move {
                    let mut response = call.await?;
                    if let Some(v) = value {
                        response.headers_mut().insert(HEADER, v);
                    }
                    Ok(response)
                }
                .instrument(span),
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ids_are_taken() {
        let ok = http::HeaderValue::from_static("req-42");
        assert_eq!(usable(&ok).as_deref(), Some("req-42"));
        let long = http::HeaderValue::from_str(&"x".repeat(MAX_LEN + 1)).ok();
        assert_eq!(long.as_ref().and_then(usable), None);
        let spaced = http::HeaderValue::from_static("a b");
        assert_eq!(usable(&spaced), None);
    }

    #[tokio::test]
    async fn the_id_is_current_inside_the_call_only() {
        assert_eq!(current(), None);
        let inside = CURRENT.scope("r1".to_owned(), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("r1"));
    }
}
