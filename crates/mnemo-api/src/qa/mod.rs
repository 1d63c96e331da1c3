//! `QaService`: questions answered from the caller's own chunks, with
//! citations, and cards generated from one of their documents.
//!
//! Consumes: retrieval ([`crate::search::retrieve`]) and the chunks' text
//! (`mnemo_search::passages`); the LLM when one is configured.
//! Emits: `QuestionAsked` (question aggregate) once an answer is finished,
//! `CardCreated` (card aggregate) per generated card.
//! Must not: cite or read another owner's chunks (the owner comes from the
//! token, into every retrieval and query), or hang a stream on a stalled
//! LLM (every wait is bounded; a failing LLM falls back to the extractive
//! answer).
//!
//! # Layout
//! - [`ask`]: `Ask`: checks, retrieval, the streaming task.
//! - [`answer`]: producing the answer's deltas (LLM with fallback, extractive).
//! - [`cards`]: `GenerateCards`, cards from one document.

pub mod answer;
pub mod ask;
pub mod cards;

use std::sync::Arc;

use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::learn::card::CardServices;
use mnemo_domain::learn::{Card, Fsrs, Question};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::qa_service_server::QaService;
use mnemo_qa::Llm;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::server::ApiState;

/// Subject kind of the learner's aggregates (`<ns>.ev.learn.…`).
pub const LEARN_KIND: &str = "learn";

/// What questions and cards need beyond the API's state.
pub struct QaState {
    pub cards: CommandExecutor<Card>,
    pub questions: CommandExecutor<Question>,
    /// The chat model; None: extractive answers and offline cards only.
    pub llm: Option<Arc<dyn Llm>>,
}

impl QaState {
    pub fn new(bus: &Bus, cache: usize) -> Self {
        let cards = CommandExecutor::new(
            JetStreamEventStore::<Card>::new(bus, LEARN_KIND, cache),
            CardServices {
                scheduler: Arc::new(Fsrs::default()),
            },
            RetryPolicy::default(),
        );
        let questions = CommandExecutor::new(
            JetStreamEventStore::<Question>::new(bus, LEARN_KIND, cache),
            (),
            RetryPolicy::default(),
        );
        Self {
            cards,
            questions,
            llm: None,
        }
    }
}

pub struct QaApi {
    state: Arc<ApiState>,
}

impl QaApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl QaService for QaApi {
    type AskStream = ask::AskStream;

    async fn ask(&self, req: Request<pb::AskRequest>) -> Result<Response<Self::AskStream>, Status> {
        let who = caller(&req)?;
        let metadata = crate::documents::command_metadata(&req, None);
        let stream = ask::ask(self.state.clone(), who, metadata, req.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn generate_cards(
        &self,
        req: Request<pb::GenerateCardsRequest>,
    ) -> Result<Response<pb::GenerateCardsResponse>, Status> {
        let who = caller(&req)?;
        let metadata = crate::documents::command_metadata(&req, None);
        cards::generate(&self.state, &who, metadata, req.into_inner())
            .await
            .map(Response::new)
    }
}
