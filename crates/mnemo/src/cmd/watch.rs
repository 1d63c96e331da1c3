//! A Watch stream that survives the API going away (a restart, a dropped
//! connection, a "you fell behind" from the server): it reconnects with
//! backoff and resumes from the last sequence it received, so the caller
//! sees one unbroken run of updates — or, after bounded attempts, a clear
//! error saying where to resume by hand.

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::watch_request::Scope;
use tonic::{Code, Status};

use crate::client::{describe, Progress};

/// Default reconnect attempts in a row without an update in between.
pub const DEFAULT_RECONNECTS: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

pub type Updates = BoxStream<'static, Result<pb::ProgressUpdate, Status>>;

/// The stream could not be resumed.
#[derive(Debug)]
pub struct WatchError {
    pub reason: String,
    /// The last sequence received (or the starting one).
    pub last_sequence: u64,
    /// Whether watching again from `last_sequence` can help: the stream
    /// was lost, not refused (a refusal — not found, a bad token — would
    /// only be refused again).
    pub resumable: bool,
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        if self.resumable {
            write!(f, "; resume with --from {}", self.last_sequence)?;
        }
        Ok(())
    }
}

impl std::error::Error for WatchError {}

/// Whether a status is worth reconnecting for: the server going away or
/// restarting (transport errors surface as unknown, internal or cancelled),
/// or telling a lagging watcher to resume.
fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Aborted | Code::Unknown | Code::Internal | Code::Cancelled
    )
}

/// Updates of one Watch call, resumed across disconnects.
pub struct ResumingWatch<F> {
    open: F,
    request: pb::WatchRequest,
    stream: Option<Updates>,
    reconnects: u32,
    /// Failed attempts since the last update.
    failures: u32,
    /// Waits between attempts; starts over after an update.
    backoff: mnemo_bus::Backoff,
}

impl<F, Fut> ResumingWatch<F>
where
    F: FnMut(pb::WatchRequest) -> Fut,
    Fut: Future<Output = Result<Updates, Status>>,
{
    /// `open` starts one Watch call; at most `reconnects` attempts are made
    /// in a row without an update in between.
    pub fn new(open: F, request: pb::WatchRequest, reconnects: u32) -> Self {
        Self {
            open,
            request,
            stream: None,
            reconnects,
            failures: 0,
            backoff: mnemo_bus::Backoff::new(FIRST_BACKOFF, MAX_BACKOFF),
        }
    }

    /// The last sequence received (or the starting one): where to resume.
    pub fn last_sequence(&self) -> u64 {
        self.request.from_sequence
    }

    /// The next update; None when the stream has ended for good.
    pub async fn next(&mut self) -> Result<Option<pb::ProgressUpdate>, WatchError> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                match (self.open)(self.request.clone()).await {
                    Ok(s) => self.stream = Some(s),
                    Err(status) => self.failed(status).await?,
                }
                continue;
            };
            match stream.next().await {
                Some(Ok(u)) => {
                    self.request.from_sequence = u.sequence;
                    self.failures = 0;
                    self.backoff.reset();
                    return Ok(Some(u));
                }
                Some(Err(status)) => {
                    self.stream = None;
                    self.failed(status).await?;
                }
                None => return Ok(None),
            }
        }
    }

    /// Counts a failure; waits before the next attempt, or gives up.
    async fn failed(&mut self, status: Status) -> Result<(), WatchError> {
        let give_up = |reason: String, last_sequence| WatchError {
            reason,
            last_sequence,
            resumable: true,
        };
        if !transient(&status) {
            return Err(WatchError {
                resumable: false,
                ..give_up(describe(&status), self.last_sequence())
            });
        }
        if self.failures >= self.reconnects {
            return Err(give_up(
                format!(
                    "lost the progress stream ({}) and could not resume it after {} attempts",
                    describe(&status),
                    self.failures
                ),
                self.last_sequence(),
            ));
        }
        let backoff = self.backoff.next_delay().unwrap_or(MAX_BACKOFF);
        self.failures += 1;
        tracing::warn!(status = %describe(&status), from = self.last_sequence(), ?backoff, "progress stream interrupted; resuming");
        tokio::time::sleep(backoff).await;
        Ok(())
    }
}

/// A [`ResumingWatch`] over the API's ProgressService.
pub fn resuming(
    progress: Progress,
    request: pb::WatchRequest,
    reconnects: u32,
) -> ResumingWatch<
    impl FnMut(pb::WatchRequest) -> futures::future::BoxFuture<'static, Result<Updates, Status>>,
> {
    let open = move |req: pb::WatchRequest| {
        let mut client = progress.clone();
        let call: futures::future::BoxFuture<'static, Result<Updates, Status>> =
            Box::pin(async move {
                let stream = client.watch(req).await?.into_inner();
                Ok(stream.boxed())
            });
        call
    };
    ResumingWatch::new(open, request, reconnects)
}

pub fn request(scope: Scope, from_sequence: u64, follow: bool) -> pb::WatchRequest {
    pb::WatchRequest {
        scope: Some(scope),
        from_sequence,
        follow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn update(sequence: u64) -> pb::ProgressUpdate {
        pb::ProgressUpdate {
            sequence,
            ..Default::default()
        }
    }

    /// An opener that serves scripted streams and records each `from`.
    fn scripted(
        mut scripts: Vec<Result<Vec<Result<pb::ProgressUpdate, Status>>, Status>>,
        froms: Arc<Mutex<Vec<u64>>>,
    ) -> impl FnMut(pb::WatchRequest) -> futures::future::Ready<Result<Updates, Status>> {
        scripts.reverse();
        move |req| {
            froms.lock().unwrap().push(req.from_sequence);
            let next = scripts.pop().unwrap_or_else(|| Ok(Vec::new()));
            futures::future::ready(next.map(|items| futures::stream::iter(items).boxed()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn resumes_from_the_last_sequence_after_each_interruption() {
        let froms = Arc::new(Mutex::new(Vec::new()));
        let open = scripted(
            vec![
                Ok(vec![
                    Ok(update(3)),
                    Ok(update(5)),
                    Err(Status::unavailable(
                        "the API is stopping; resume with from_sequence=5",
                    )),
                ]),
                Err(Status::unavailable("connection refused")),
                Ok(vec![Ok(update(8)), Err(Status::aborted("fell behind"))]),
                Ok(vec![Ok(update(9))]),
            ],
            froms.clone(),
        );
        let scope = Scope::BatchId("b".into());
        let mut w = ResumingWatch::new(open, request(scope, 2, false), 3);
        let mut got = Vec::new();
        while let Some(u) = w.next().await.unwrap() {
            got.push(u.sequence);
        }
        assert_eq!(got, vec![3, 5, 8, 9]);
        assert_eq!(*froms.lock().unwrap(), vec![2, 5, 5, 8]);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_bounded_attempts_saying_where_to_resume() {
        let froms = Arc::new(Mutex::new(Vec::new()));
        let down = || Err(Status::unavailable("connection refused"));
        let open = scripted(
            vec![
                Ok(vec![Ok(update(4)), Err(Status::unavailable("bye"))]),
                down(),
                down(),
                down(),
            ],
            froms.clone(),
        );
        let mut w = ResumingWatch::new(open, request(Scope::DocumentId("d".into()), 0, true), 2);
        assert_eq!(w.next().await.unwrap().map(|u| u.sequence), Some(4));
        let err = w.next().await.unwrap_err();
        assert_eq!(err.last_sequence, 4);
        assert!(err.to_string().contains("after 2 attempts"), "{err}");
        assert!(err.to_string().contains("--from 4"), "{err}");
        assert_eq!(froms.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let froms = Arc::new(Mutex::new(Vec::new()));
        let open = scripted(
            vec![Err(Status::not_found("document not found"))],
            froms.clone(),
        );
        let mut w = ResumingWatch::new(open, request(Scope::DocumentId("d".into()), 0, false), 5);
        let err = w.next().await.unwrap_err();
        assert!(err.reason.contains("NotFound"), "{err}");
        // Watching again would be refused again: no advice to resume.
        assert!(!err.resumable);
        assert!(!err.to_string().contains("--from"), "{err}");
        assert_eq!(froms.lock().unwrap().len(), 1);
    }
}
