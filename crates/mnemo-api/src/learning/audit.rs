//! `AuditService.ReplayLearningHistory`: a learner's events as recorded,
//! in stream order, with sequence, time, type and JSON payload.
//!
//! Only the owner or an admin token may replay a learner. The walk reads
//! `<ns>.ev.learn.<owner token>.>` with direct gets (`next_by_subj`) up to
//! the stream's last sequence when the call began, so a replay ends even
//! while the learner keeps studying. Events are upcast to the current
//! schema on the way (the projection's decoder).

use std::pin::Pin;
use std::sync::Arc;

use async_nats::jetstream::stream::DirectGetErrorKind;
use futures::Stream;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::audit_service_server::AuditService;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::input;
use crate::auth::caller;
use crate::convert::timestamp;
use crate::server::ApiState;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::LearningHistoryEvent, Status>> + Send>>;

pub struct AuditApi {
    state: Arc<ApiState>,
}

impl AuditApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    type ReplayLearningHistoryStream = EventStream;

    async fn list_accesses(
        &self,
        req: Request<pb::ListAccessesRequest>,
    ) -> Result<Response<pb::ListAccessesResponse>, Status> {
        let who = caller(&req)?;
        let owner = input::target_owner(&who, &req.get_ref().owner)?;
        let accesses = self.state.access.list(&owner).await?;
        Ok(Response::new(pb::ListAccessesResponse { accesses }))
    }

    async fn replay_learning_history(
        &self,
        req: Request<pb::ReplayLearningHistoryRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req)?;
        let metadata = crate::documents::command_metadata(&req, None);
        let r = req.into_inner();
        let owner = input::target_owner(&who, &r.owner)?;
        self.state
            .access
            .record(&who, &owner, "ReplayLearningHistory", &metadata)
            .await?;
        let from = r
            .from
            .as_ref()
            .map(|t| input::instant_required(t, "from"))
            .transpose()?;
        let until = r
            .until
            .as_ref()
            .map(|t| input::instant_required(t, "until"))
            .transpose()?;
        if let (Some(f), Some(u)) = (from, until) {
            if f > u {
                return Err(Status::invalid_argument(format!(
                    "from ({f}) is after until ({u})"
                )));
            }
        }
        let mut stream = self.state.bus.events.clone();
        let last = stream
            .info()
            .await
            .map_err(|e| crate::status::unavailable("the event log", &e))?
            .state
            .last_sequence;
        let (tx, rx) = mpsc::channel(256);
        let state = self.state.clone();
        let span = tracing::info_span!("replay_learning_history", owner = %owner.token(), requested_by = %who.owner.token(), last);
        tokio::spawn(
            async move {
                let filter = format!(
                    "{}.{}.>",
                    state.bus.namespace.events_of("learn"),
                    owner.token()
                );
                if let Err(status) = walk(&state, &filter, last, from, until, &tx).await {
                    let _ = tx.send(Err(status)).await;
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Sends every event of `filter` up to `last`, recorded within the bounds.
async fn walk(
    state: &ApiState,
    filter: &str,
    last: u64,
    from: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    tx: &mpsc::Sender<Result<pb::LearningHistoryEvent, Status>>,
) -> Result<(), Status> {
    let mut next = 1;
    while next <= last {
        let msg = match state
            .bus
            .events
            .direct_get_next_for_subject(filter, Some(next))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(crate::status::unavailable("the event log", &e)),
        };
        if msg.sequence > last {
            return Ok(());
        }
        next = msg.sequence + 1;
        // An erased owner's messages are tombstones: no events, nothing sent.
        let decoded = mnemo_projector::learning::decode(
            &state.bus.keys,
            msg.subject.as_str(),
            msg.sequence,
            Some(&msg.headers),
            &msg.payload,
        )
        .await
        .map_err(|e| crate::status::from_bus_error(&e))?;
        let at = decoded.envelope.occurred_at;
        if from.is_some_and(|f| at < f) || until.is_some_and(|u| at > u) {
            continue;
        }
        for e in &decoded.events {
            let item = pb::LearningHistoryEvent {
                sequence: decoded.sequence,
                occurred_at: Some(timestamp(at)),
                event_type: e.event_type.clone(),
                aggregate_type: decoded.kind.clone(),
                aggregate_id: decoded.id.to_string(),
                payload_json: e.json.to_string(),
                event_id: decoded.envelope.event_id.clone(),
            };
            if tx.send(Ok(item)).await.is_err() {
                return Ok(()); // the client went away
            }
        }
    }
    Ok(())
}
