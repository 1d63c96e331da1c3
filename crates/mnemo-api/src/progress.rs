//! `ProgressService.Watch`: a document's events folded into progress, live.
//!
//! An ordered consumer reads the document's subject from its first event, so
//! every update carries the fold of the whole history; only updates above
//! the client's `from_sequence` are sent. (The read-side work replaces the
//! consumer per watcher with one fan-out consumer per API process.)

use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::stream::DirectGetErrorKind;
use futures::{Stream, StreamExt};
use mnemo_bus::event_store::decode_message;
use mnemo_domain::document::aggregate_id;
use mnemo_domain::progress::Progress;
use mnemo_domain::DocumentEvent;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::progress_service_server::ProgressService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::auth::caller;
use crate::documents::parse_document_id;
use crate::server::ApiState;

pub struct ProgressApi {
    state: Arc<ApiState>,
}

impl ProgressApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::ProgressUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl ProgressService for ProgressApi {
    type WatchStream = UpdateStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let id = parse_document_id(&r.document_id)?;
        let bus = &self.state.bus;
        let subject = bus
            .namespace
            .aggregate_subject("doc", &aggregate_id(&who.owner, &id));
        // Not found (or another owner's, which is the same to this caller).
        match bus
            .events
            .direct_get_last_for_subject(subject.as_str())
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                return Err(Status::not_found("document not found"))
            }
            Err(e) => {
                return Err(Status::unavailable(format!(
                    "cannot read the event stream: {e}"
                )))
            }
        }
        let consumer = bus
            .events
            .create_consumer(OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| Status::unavailable(format!("cannot watch the event stream: {e}")))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Status::unavailable(format!("cannot watch the event stream: {e}")))?;

        let (tx, rx) = mpsc::channel(64);
        let document_id = id.to_string();
        let (from, follow) = (r.from_sequence, r.follow);
        let span = tracing::debug_span!("watch", document_id = %document_id, from);
        tokio::spawn(
            async move {
                let mut progress = Progress::default();
                loop {
                    let next = tokio::select! {
                        _ = tx.closed() => return, // the client went away
                        next = messages.next() => next,
                    };
                    let msg = match next {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            let _ = tx
                                .send(Err(Status::unavailable(format!("event stream: {e}"))))
                                .await;
                            return;
                        }
                        None => return,
                    };
                    let Ok(info) = msg.info() else { continue };
                    let seq = info.stream_sequence;
                    let stored = match decode_message::<DocumentEvent>(
                        &msg.subject,
                        seq,
                        msg.headers.as_ref(),
                        &msg.payload,
                    ) {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(Status::internal(e.to_string()))).await;
                            return;
                        }
                    };
                    for event in &stored.events {
                        progress.apply(seq, event);
                    }
                    // Ordered consumers deliver the history first: the last
                    // message of it tells whether there is anything left.
                    let caught_up = info.pending == 0;
                    if seq > from {
                        let update = crate::convert::progress(&document_id, &progress);
                        if tx.send(Ok(update)).await.is_err() {
                            return;
                        }
                    }
                    if progress.is_terminal() && !follow && (seq > from || caught_up) {
                        return;
                    }
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
