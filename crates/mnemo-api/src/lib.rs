//! The gRPC API: commands in, queries out, progress streams.
//!
//! Consumes: gRPC calls (every one authenticated by a bearer JWT whose
//! subject is the owner); document events for progress streams (one
//! ordered consumer per process, fanned out; direct gets for catch-up).
//! Emits: `DocumentUploaded`, `ProcessingCancelled`, `ReprocessRequested`
//! through the document aggregate; `QuestionAsked` and `CardCreated`
//! through the question and card aggregates; uploaded bytes into the blob store.
//! Must not: let one owner see or touch another's data. The owner always
//! comes from the verified token, never from the request body, and becomes
//! part of every subject and SQL filter.
//!
//! # Layout
//! - [`config`]: listen address, limits, JWT secret.
//! - [`auth`]: issuing and verifying tokens; the interceptor that sets [`auth::Caller`].
//! - [`status`]: the one place errors become gRPC statuses.
//! - [`upload`]: spooling, hashing and sniffing an upload stream.
//! - [`documents`]: `DocumentService` (Upload, Get, List, Cancel, Reprocess).
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
//! - [`convert`]: domain and read-model types into wire types.
//! - [`server`]: wiring it all (plus health and reflection) into one server.

pub mod auth;
pub mod config;
pub mod convert;
pub mod documents;
pub mod learning;
pub mod progress;
pub mod progress_hub;
pub mod qa;
pub mod search;
pub mod search_models;
pub mod server;
pub mod stats;
pub mod status;
pub mod upload;

pub use config::ApiConfig;
pub use server::{serve, ApiState};
