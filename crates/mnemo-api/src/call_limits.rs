//! The server's share of work per call (issue 18): how many calls it
//! handles at once, and how long a call's handler may take.
//!
//! - *Concurrency.* At most `max_calls` handlers run at once across every
//!   connection; one more is refused at once with `RESOURCE_EXHAUSTED`, the
//!   reason and a `RetryInfo` detail, instead of queueing without bound (a
//!   queue that grows is a latency that grows for every owner). An upload
//!   holds its place while it streams; a progress or answer stream holds it
//!   only until its response starts (watchers have their own cap).
//!   Health checks are never refused. Uploads in one message
//!   (`UploadService.UploadFile`, held in memory while they arrive) have a
//!   cap of their own, `--max-upload-file-calls`.
//! - *Timeouts.* A handler still running after `call_timeout` is ended with
//!   `DEADLINE_EXCEEDED`. Not uploads (a large file on a slow link takes
//!   as long as it takes; they have an idle timeout instead, in
//!   [`crate::documents`]), and not the streams of long-lived calls (the
//!   timeout covers a handler until its response starts). A client's own
//!   `grpc-timeout` still applies when it is shorter (tonic).
//!
//! Owns: one semaphore for the process. Must not: know who calls (rates
//! and quotas per owner are [`crate::rate`] and [`crate::quota`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// Methods whose request is a stream: the call lasts as long as the client
/// sends, so no handler timeout.
const CLIENT_STREAMING: &[&str] = &["/mnemo.v1.DocumentService/Upload"];

/// Never refused: an orchestrator must see a busy server as busy, not dead.
const ALWAYS_ADMITTED: &str = "/grpc.health.v1.Health/";

/// A whole file in one message: held in memory while it arrives, so these
/// calls have a cap of their own (`with_whole_uploads`).
const WHOLE_UPLOAD: &str = "/mnemo.v1.UploadService/UploadFile";

/// The tower layer; one per server, shared by every connection.
#[derive(Debug, Clone)]
pub struct CallLimitsLayer {
    calls: Arc<Semaphore>,
    max_calls: usize,
    timeout: Duration,
    whole_uploads: Arc<Semaphore>,
    max_whole_uploads: usize,
}

impl CallLimitsLayer {
    pub fn new(max_calls: usize, timeout: Duration) -> Self {
        let max_calls = max_calls.max(1);
        Self {
            calls: Arc::new(Semaphore::new(max_calls)),
            max_calls,
            timeout,
            whole_uploads: Arc::new(Semaphore::new(max_calls)),
            max_whole_uploads: max_calls,
        }
    }

    /// At most `n` UploadFile calls at once (each holds its file in memory
    /// while it arrives); more are refused before their bytes are read.
    #[must_use]
    pub fn with_whole_uploads(mut self, n: usize) -> Self {
        let n = n.max(1);
        self.whole_uploads = Arc::new(Semaphore::new(n));
        self.max_whole_uploads = n;
        self
    }
}

impl<S> tower_layer::Layer<S> for CallLimitsLayer {
    type Service = CallLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallLimits {
            inner,
            limits: self.clone(),
        }
    }
}

/// See [`CallLimitsLayer`].
#[derive(Debug, Clone)]
pub struct CallLimits<S> {
    inner: S,
    limits: CallLimitsLayer,
}

/// Whether `req` is a gRPC call (gRPC-Web is plain gRPC by here).
fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The refusal of a call over the concurrency limit.
fn busy(max_calls: usize) -> Status {
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("the server is handling {max_calls} calls, its limit; retry in a second"),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    )
}

impl<S, B, R> tower_service::Service<http::Request<B>> for CallLimits<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let streaming_request = CLIENT_STREAMING.contains(&path);
        let permit = if path.starts_with(ALWAYS_ADMITTED) {
            None
        } else {
            match self.limits.calls.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::warn!(method = %path, max_calls = self.limits.max_calls, "call refused: the server is at its concurrency limit");
                    // The web app's files: a plain 503 a browser understands.
                    let refusal = if is_grpc(&req) {
                        busy(self.limits.max_calls).into_http::<R>()
                    } else {
                        let mut r = http::Response::new(R::default());
                        *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                        r.headers_mut().insert(
                            http::header::RETRY_AFTER,
                            http::HeaderValue::from_static("1"),
                        );
                        r
                    };
                    return Box::pin(async move { Ok(refusal) });
                }
            }
        };
        let whole_upload = if path == WHOLE_UPLOAD {
            match self.limits.whole_uploads.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let n = self.limits.max_whole_uploads;
                    tracing::warn!(method = %path, max = n, "call refused: uploads in one message at their limit");
                    let refusal = Status::with_error_details(
                        tonic::Code::ResourceExhausted,
                        format!("the server is taking {n} uploads in one message, its limit; retry in a second, or stream with DocumentService.Upload"),
                        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                    )
                    .into_http::<R>();
                    return Box::pin(async move { Ok(refusal) });
                }
            }
        } else {
            None
        };
        let timeout = self.limits.timeout;
        let call = self.inner.call(req);
        Box::pin(async move {
            let _permit = (permit, whole_upload);
            if streaming_request {
                return call.await;
            }
            match tokio::time::timeout(timeout, call).await {
                Ok(response) => response,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "the call took longer than the server's limit of {} s",
                    timeout.as_secs_f64()
                ))
                .into_http::<R>()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower_service::Service;

    use super::*;

    /// A handler that waits until told, then answers 200.
    #[derive(Clone)]
    struct Held(tokio::sync::watch::Receiver<bool>);

    impl tower_service::Service<http::Request<()>> for Held {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            let mut go = self.0.clone();
            Box::pin(async move {
                let _ = go.wait_for(|go| *go).await;
                Ok(http::Response::new("done".to_owned()))
            })
        }
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap_or_default()
    }

    fn grpc_status(r: &http::Response<String>) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_call_over_the_limit_is_refused_and_health_is_not() {
        let (go, held) = tokio::sync::watch::channel(false);
        let layer = CallLimitsLayer::new(1, Duration::from_secs(60));
        let mut svc = tower_layer::Layer::layer(&layer, Held(held));
        let first = svc.call(request("/mnemo.v1.SearchService/Search"));
        let refused = svc
            .call(request("/mnemo.v1.DocumentService/Get"))
            .await
            .unwrap_or_default();
        assert_eq!(grpc_status(&refused), Some("8"), "RESOURCE_EXHAUSTED");
        // A page of the web app gets what a browser understands.
        let page = http::Request::builder()
            .uri("/documents")
            .body(())
            .unwrap_or_default();
        let page = svc.call(page).await.unwrap_or_default();
        assert_eq!(page.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.headers().contains_key(http::header::RETRY_AFTER));
        let health = svc.call(request("/grpc.health.v1.Health/Check"));
        let _ = go.send(true);
        let (first, health) = tokio::join!(first, health);
        assert_eq!(grpc_status(&first.unwrap_or_default()), None, "answered");
        assert_eq!(grpc_status(&health.unwrap_or_default()), None);
        // The place is free again.
        let again = svc.call(request("/mnemo.v1.DocumentService/Get"));
        assert_eq!(grpc_status(&again.await.unwrap_or_default()), None);
    }

    #[tokio::test]
    async fn uploads_in_one_message_have_a_cap_of_their_own() {
        let (go, held) = tokio::sync::watch::channel(false);
        let layer = CallLimitsLayer::new(8, Duration::from_secs(60)).with_whole_uploads(1);
        let mut svc = tower_layer::Layer::layer(&layer, Held(held));
        let first = svc.call(request(WHOLE_UPLOAD));
        let refused = svc.call(request(WHOLE_UPLOAD)).await.unwrap_or_default();
        assert_eq!(grpc_status(&refused), Some("8"), "RESOURCE_EXHAUSTED");
        let other = svc.call(request("/mnemo.v1.DocumentService/Get"));
        let _ = go.send(true);
        let (first, other) = tokio::join!(first, other);
        assert_eq!(grpc_status(&first.unwrap_or_default()), None, "answered");
        assert_eq!(
            grpc_status(&other.unwrap_or_default()),
            None,
            "others unaffected"
        );
        let again = svc.call(request(WHOLE_UPLOAD)).await.unwrap_or_default();
        assert_eq!(grpc_status(&again), None, "the place is free again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_handler_times_out_but_an_upload_does_not() {
        let (go, held) = tokio::sync::watch::channel(false);
        let layer = CallLimitsLayer::new(8, Duration::from_secs(5));
        let mut svc = tower_layer::Layer::layer(&layer, Held(held));
        let slow = svc
            .call(request("/mnemo.v1.SearchService/Search"))
            .await
            .unwrap_or_default();
        assert_eq!(grpc_status(&slow), Some("4"), "DEADLINE_EXCEEDED");
        let upload = svc.call(request("/mnemo.v1.DocumentService/Upload"));
        tokio::pin!(upload);
        let waited = tokio::time::timeout(Duration::from_secs(60), &mut upload).await;
        assert!(waited.is_err(), "an upload has no handler timeout");
        let _ = go.send(true);
        assert_eq!(grpc_status(&upload.await.unwrap_or_default()), None);
    }
}
