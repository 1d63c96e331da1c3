//! The gRPC API: commands in, queries out, progress streams.
//!
//! Consumes: gRPC calls (every one authenticated by a bearer JWT whose
//! subject is the owner); document events for progress streams (one
//! ordered consumer per process, fanned out; direct gets for catch-up).
//! Emits: `DocumentUploaded`, `ProcessingCancelled`, `ReprocessRequested`
//! through the document aggregate; `QuestionAsked` and `CardCreated`
//! through the question and card aggregates; uploaded bytes into the blob
//! store, sealed with the owner's key (made on their first write);
//! `LearnerErased` when a learner is erased (`AccountService`).
//! Must not: let one owner see or touch another's data. The owner always
//! comes from the verified token, never from the request body, and becomes
//! part of every subject and SQL filter.
//!
//! # Layout
//! - [`config`]: its flags ([`ApiArgs`]: listen address, limits, search and
//!   LLM settings) and what [`run`] and [`ApiState`] are given.
//! - [`error`]: [`ApiError`] (starting and serving) and its kind.
//! - [`call_limits`]: calls handled at once and how long a handler may run.
//! - [`metrics`]: calls by method and code, their latency, watchers (Prometheus).
//! - [`rate`]: per-owner, per-service rate limits (token buckets).
//! - [`quota`]: per-owner storage quotas (documents, bytes), checked at upload.
//! - [`auth`]: issuing and verifying tokens; the interceptor that sets [`auth::Caller`].
//! - [`status`]: the one place errors become gRPC statuses.
//! - [`request_id`]: every call's request id (logs, correlation, error messages).
//! - [`upload`]: spooling, hashing and sniffing an upload stream.
//! - [`documents`]: `DocumentService` (Upload, UploadFile, Get, List, Cancel,
//!   Reprocess).
//! - [`progress`]: the `Watch` call of `ProgressService` (one fold per call).
//! - [`progress_hub`]: the process's one progress consumer, fanned out to
//!   every watcher; [`progress_hub::history`] reads a new watcher's catch-up.
//! - [`search`]: `SearchService` (hybrid search, query embedding).
//! - [`search_models`]: `SearchService.GetModels`/`UseModel` (which model's
//!   vectors serve; switching after a backfill).
//! - [`qa`]: `QaService` (Ask: cited answers, streamed; GenerateCards).
//! - [`learning`]: `LearningService` (topics, cards, FSRS-6 reviews,
//!   sessions, study stats) and `AuditService` (learner history replay).
//! - [`stats`]: `StatsService` (totals by state, per-stage analytics).
//! - [`account`]: `AccountService` (erasing a learner: crypto-shredding).
//! - [`convert`]: domain and read-model types into wire types.
//! - [`server`]: wiring it all (plus health and reflection) into one server.
//! - [`web`]: the web app's files, and gRPC-Web for browsers, on the same port.

pub mod account;
pub mod auth;
pub mod call_limits;
pub mod config;
pub mod convert;
pub mod documents;
pub mod error;
pub mod learning;
pub mod metrics;
pub mod progress;
pub mod progress_hub;
pub mod qa;
pub mod quota;
pub mod rate;
pub mod request_id;
pub mod search;
pub mod search_models;
pub mod server;
pub mod stats;
pub mod status;
pub mod upload;
pub mod web;

pub use config::{ApiArgs, ApiConfig, ServeConfig};
pub use error::{ApiError, ApiErrorKind};
pub use server::{serve, ApiState};

use std::future::Future;
use std::sync::Arc;

/// Runs the API until `shutdown` resolves: picks the model that serves
/// search, loads the search indexes and follows the document events to
/// keep them fresh, and serves gRPC on `config.api.listen`.
pub async fn run(
    bus: mnemo_bus::Bus,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let ServeConfig {
        api,
        embedders,
        search_model,
        vectors,
        search_budget,
        bm25,
        fusion,
        llm,
    } = config;
    let served = match &search_model {
        Some(wanted) => Some(
            embedders
                .iter()
                .find(|e| search_models::names(e.model_id(), wanted))
                .ok_or_else(|| {
                    ApiError::Config(format!(
                        "--search-model {wanted} is not among the loaded models (--model-dir, --extra-model-dir)"
                    ))
                })?,
        ),
        None => embedders.first(),
    };
    let index =
        mnemo_search::VectorIndex::with_config(served.map(|m| m.dims()).unwrap_or(384), vectors);
    let index = match served {
        Some(m) => index.for_model(m.model_id()),
        None => index,
    };
    if served.is_none() {
        tracing::warn!("no --model-dir: search answers from full text only");
    }
    let index = Arc::new(mnemo_search::Indexes::with_budget(
        index,
        mnemo_search::TermIndex::new(bm25),
        search_budget,
    ));
    let listen = api.listen;
    let database_url = api.database_url.clone();
    let mut state = ApiState::new(bus.clone(), api)
        .await?
        .with_search(search::SearchState {
            queries: Default::default(),
            index: index.clone(),
            embedders,
            fusion,
        });
    if let Some(llm) = llm {
        tracing::info!(model = llm.model(), "answers and cards may use the LLM");
        state = state.with_llm(llm);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ApiError::Listen {
            addr: listen,
            source,
        })?;
    // The follower reads the stream forever: it stops with the server.
    let serving = serve(Arc::new(state), listener, shutdown);
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => served,
        followed = mnemo_search::follow(bus, database_url, index) => match followed {
            // The stream ended under it: the server cannot keep search fresh.
            Ok(()) => Err(ApiError::Bus(mnemo_bus::BusError::new(
                mnemo_bus::BusErrorKind::Unavailable,
                "the search index stopped following the document events",
            ))),
            Err(e) => Err(e.into()),
        },
    }
}
