//! `ProgressService.Watch`: a document's, a batch's or all of an owner's
//! events folded into progress, live, from the process's one progress hub.
//!
//! Each call subscribes to the hub (learning its position), reads the
//! scope's history up to that position, folds it with
//! `mnemo_domain::progress_set`, and then folds what the hub queues for it.
//! Only updates above the client's `from_sequence` are sent; the fold always
//! starts at the scope's first event, so counts and fractions are the same
//! whether a client watched all along or resumed.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use mnemo_domain::progress_set::{ProgressSet, Scope};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::progress_service_server::ProgressService;
use mnemo_proto::v1::watch_request::Scope as WireScope;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::auth::caller;
use crate::documents::{label, parse_document_id};
use crate::progress_hub::history::{self, History};
use crate::progress_hub::{Closed, HubError, HubEvent, Route, Subscription};
use crate::server::ApiState;
use crate::{convert, status};

/// Updates buffered between a watcher's fold and its gRPC stream.
const STREAM_BUFFER: usize = 64;

pub struct ProgressApi {
    state: Arc<ApiState>,
}

impl ProgressApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::ProgressUpdate, Status>> + Send>>;

/// The request's scope, checked.
fn scope(raw: Option<WireScope>) -> Result<Scope, Status> {
    match raw {
        Some(WireScope::DocumentId(id)) => Ok(Scope::Document(parse_document_id(&id)?)),
        Some(WireScope::BatchId(b)) => label(&b, "batch_id")?
            .map(Scope::Batch)
            .ok_or_else(|| Status::invalid_argument("batch_id is empty")),
        Some(WireScope::All(_)) => Ok(Scope::All),
        // What an old client that sent an empty document id gets, too.
        None => Err(Status::invalid_argument(
            "say what to watch: document_id, batch_id or all",
        )),
    }
}

fn hub_status(e: HubError) -> Status {
    crate::status::from_hub_error(&e)
}

#[tonic::async_trait]
impl ProgressService for ProgressApi {
    type WatchStream = UpdateStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let scope = scope(r.scope)?;
        let route = match &scope {
            Scope::Document(id) => Route::Document(*id),
            Scope::Batch(_) | Scope::All => Route::Owner,
        };
        let span = match &scope {
            Scope::Document(id) => {
                tracing::debug_span!("watch", document_id = %id, from = r.from_sequence)
            }
            Scope::Batch(b) => tracing::debug_span!("watch", batch_id = %b, from = r.from_sequence),
            Scope::All => tracing::debug_span!("watch", scope = "all", from = r.from_sequence),
        };
        // Subscribe first: the history is read up to the position this
        // returns, and the queue holds everything after it.
        // A following watcher of all the owner's documents may take the
        // history the hub keeps; one that reads it offers it to the hub.
        // (Others read the stream: a document or batch just uploaded may be
        // in it before the hub has fanned it out, and must be found.)
        let all = matches!(scope, Scope::All);
        let mut sub = self
            .state
            .progress
            .subscribe(&who.owner.token(), route, all && r.follow)
            .map_err(hub_status)?;
        let history = match sub.cached.take() {
            Some(kept) => history::kept(kept),
            None => {
                let read = history::read(&self.state.bus, &who.owner, &scope, sub.position)
                    .instrument(span.clone())
                    .await
                    .map_err(|e| status::from_bus_error(&e))?;
                if all {
                    self.state.progress.remember(&sub, &read.messages);
                }
                read
            }
        };
        if history.documents == 0 {
            match scope {
                Scope::Document(_) => return Err(Status::not_found("document not found")),
                Scope::Batch(_) if !r.follow => {
                    return Err(Status::not_found("no document in this batch"))
                }
                _ => {}
            }
        }
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let watcher = Watcher {
            set: ProgressSet::new(scope),
            from: r.from_sequence,
            follow: r.follow,
            last_sent: r.from_sequence,
            seen: 0,
            newest: 0,
            tx,
        };
        tokio::spawn(watcher.run(history, sub).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One Watch call's fold and position.
struct Watcher {
    set: ProgressSet,
    from: u64,
    follow: bool,
    /// Sequence of the last update sent (or `from`): where to resume.
    last_sent: u64,
    /// Highest sequence folded or skipped.
    seen: u64,
    /// Highest sequence in scope known to exist (see `History::newest`).
    newest: u64,
    tx: mpsc::Sender<Result<pb::ProgressUpdate, Status>>,
}

impl Watcher {
    async fn run(mut self, history: History, mut sub: Subscription) {
        self.newest = history.newest;
        for event in &history.messages {
            if !self.fold(event).await {
                return;
            }
        }
        // Everything up to the position has been read.
        self.seen = self.seen.max(sub.position);
        if self.done() {
            return;
        }
        loop {
            let next = tokio::select! {
                _ = self.tx.closed() => return, // the client went away
                next = sub.recv() => next,
            };
            match next {
                Ok(event) => {
                    if event.sequence <= self.seen {
                        continue; // already folded from history
                    }
                    if !self.fold(&event).await {
                        return;
                    }
                    if self.done() {
                        return;
                    }
                }
                Err(closed) => {
                    let status = match closed {
                        Closed::Lagged => Status::aborted(format!(
                            "this watcher fell too far behind the live events; resume with from_sequence={}",
                            self.last_sent
                        )),
                        Closed::Stopped => Status::unavailable(format!(
                            "the API is stopping; resume with from_sequence={}",
                            self.last_sent
                        )),
                    };
                    tracing::debug!(?closed, last_sent = self.last_sent, "watch ended early");
                    let _ = self.tx.send(Err(status)).await;
                    return;
                }
            }
        }
    }

    /// Folds one message and sends its update; false when the client is gone.
    async fn fold(&mut self, event: &HubEvent) -> bool {
        self.seen = self.seen.max(event.sequence);
        let scoped = !matches!(self.set.scope(), Scope::Document(_));
        let Some(update) = self
            .set
            .apply(event.document, event.sequence, &event.events)
        else {
            return true;
        };
        if event.sequence <= self.from {
            return true;
        }
        let update = convert::set_update(&update, scoped);
        if self.tx.send(Ok(update)).await.is_err() {
            return false;
        }
        self.last_sent = event.sequence;
        true
    }

    /// Without `follow`, a stream ends once every document in scope is
    /// terminal as of the newest message known to be in scope.
    fn done(&self) -> bool {
        !self.follow && self.seen >= self.newest && self.set.is_finished()
    }
}
