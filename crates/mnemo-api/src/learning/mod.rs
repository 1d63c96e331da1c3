//! `LearningService` (topics, cards, reviews, sessions, study stats) and
//! `AuditService` (a learner's history, replayed).
//!
//! Commands go through the learning aggregates (`mnemo_domain::learn`:
//! card — scheduled by FSRS-6 —, topic, session) on
//! `<ns>.ev.learn.<owner token>.<kind>.<id>`; reads come from the learning
//! read model (`mnemo_projector::learning`) and wait for `min_sequence` on
//! its checkpoint. Must not: schedule anything itself (the card aggregate
//! asks the scheduler and records the answer) or let one owner reach
//! another's cards (the owner comes from the token; only admins name
//! another owner, for audits).
//!
//! # Layout
//! - [`input`]: parsing request fields (ids, instants, owners) with reasons.
//! - [`commands`]: running a command on a learning aggregate.
//! - [`cards`], [`topics`], [`sessions`]: the command calls.
//! - [`reads`]: ListCards, DueCards, StudyStats.
//! - [`convert`]: read-model and domain types into wire types.
//! - [`audit`]: replaying a learner's history (`AuditService`).

pub mod access;
pub mod audit;
pub mod cards;
pub mod commands;
pub mod convert;
pub mod input;
pub mod reads;
pub mod sessions;
pub mod topics;

use std::sync::Arc;

use mnemo_proto::v1 as pb;
use mnemo_proto::v1::learning_service_server::LearningService;
use tonic::{Request, Response, Status};

use crate::server::ApiState;

pub use commands::LearningCommands;

/// The `LearningService` implementation.
pub struct LearningApi {
    state: Arc<ApiState>,
    commands: Arc<LearningCommands>,
}

impl LearningApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        let commands = Arc::new(LearningCommands::new(
            &state.bus,
            state.config.aggregate_cache,
        ));
        Self { state, commands }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl LearningService for LearningApi {
    async fn create_topic(&self, req: Request<pb::CreateTopicRequest>) -> Reply<pb::TopicAccepted> {
        topics::create(&self.commands, req).await.map(Response::new)
    }

    async fn rename_topic(&self, req: Request<pb::RenameTopicRequest>) -> Reply<pb::TopicAccepted> {
        topics::rename(&self.commands, req).await.map(Response::new)
    }

    async fn attach_document(
        &self,
        req: Request<pb::AttachDocumentRequest>,
    ) -> Reply<pb::TopicAccepted> {
        topics::attach(&self.commands, req).await.map(Response::new)
    }

    async fn create_card(&self, req: Request<pb::CreateCardRequest>) -> Reply<pb::CardAccepted> {
        cards::create(&self.commands, req).await.map(Response::new)
    }

    async fn edit_card(&self, req: Request<pb::EditCardRequest>) -> Reply<pb::CardAccepted> {
        cards::edit(&self.commands, req).await.map(Response::new)
    }

    async fn suspend_card(&self, req: Request<pb::CardIdRequest>) -> Reply<pb::CardAccepted> {
        cards::simple(
            &self.commands,
            req,
            mnemo_domain::learn::CardCommand::Suspend,
        )
        .await
        .map(Response::new)
    }

    async fn resume_card(&self, req: Request<pb::CardIdRequest>) -> Reply<pb::CardAccepted> {
        cards::simple(
            &self.commands,
            req,
            mnemo_domain::learn::CardCommand::Resume,
        )
        .await
        .map(Response::new)
    }

    async fn delete_card(&self, req: Request<pb::CardIdRequest>) -> Reply<pb::CardAccepted> {
        cards::simple(
            &self.commands,
            req,
            mnemo_domain::learn::CardCommand::Delete,
        )
        .await
        .map(Response::new)
    }

    async fn list_cards(&self, req: Request<pb::ListCardsRequest>) -> Reply<pb::ListCardsResponse> {
        reads::list_cards(&self.state, req).await.map(Response::new)
    }

    async fn due_cards(&self, req: Request<pb::DueCardsRequest>) -> Reply<pb::ListCardsResponse> {
        reads::due_cards(&self.state, req).await.map(Response::new)
    }

    async fn submit_review(
        &self,
        req: Request<pb::SubmitReviewRequest>,
    ) -> Reply<pb::SubmitReviewResponse> {
        cards::review(&self.commands, req).await.map(Response::new)
    }

    async fn preview_review(
        &self,
        req: Request<pb::PreviewReviewRequest>,
    ) -> Reply<pb::PreviewReviewResponse> {
        cards::preview(&self.commands, req).await.map(Response::new)
    }

    async fn start_session(
        &self,
        req: Request<pb::StartSessionRequest>,
    ) -> Reply<pb::SessionAccepted> {
        sessions::start(&self.commands, req)
            .await
            .map(Response::new)
    }

    async fn end_session(&self, req: Request<pb::EndSessionRequest>) -> Reply<pb::SessionAccepted> {
        sessions::end(&self.commands, req).await.map(Response::new)
    }

    async fn study_stats(
        &self,
        req: Request<pb::StudyStatsRequest>,
    ) -> Reply<pb::StudyStatsResponse> {
        reads::study_stats(&self.state, req)
            .await
            .map(Response::new)
    }
}
