//! The projector: folds events into PostgreSQL read models.
//!
//! Consumes: every document event (`<ns>.ev.doc.>`) through one durable pull
//! consumer, `<ns>_projector`.
//! Emits: `DocumentIndexed` (through the document aggregate's `MarkIndexed`)
//! once every chunk of a run is stored with its vector.
//! Owns: the read models defined in `projections/` (schema `<ns>`), their
//! migrations, and the queries that read them.
//! Must not: decide anything. It mirrors what events say; a rule about what
//! may happen belongs to the aggregate in `mnemo-domain`.
//!
//! Exactly-once effect: each batch of events is applied in one transaction
//! together with the consumer's checkpoint (last stream sequence applied), and
//! acknowledged only after commit. A redelivered event at or below the
//! checkpoint is acknowledged and skipped. The consumer lets at most one
//! batch be unacknowledged, so N projector copies share the work without ever
//! applying events out of order.
//!
//! # Layout
//! - [`config`]: what the projector needs to run.
//! - [`db`]: connecting to PostgreSQL and the namespace's schema.
//! - [`migrations`]: versioned SQL from `projections/`, applied at start.
//! - [`documents`]: the `documents` read model (apply + queries).
//! - [`chunks`]: the `chunks` read model (text, tsvector, pages, vector).
//! - [`stage_timings`]: time spent per stage per run.
//! - [`runner`]: the consumer loop.
//! - [`stats`]: live totals by state and per-stage analytics (queries).
//! - [`checksum`]: fingerprints of the read models (rebuild checks).

pub mod checksum;
pub mod chunks;
pub mod config;
pub mod db;
pub mod documents;
pub mod migrations;
pub mod runner;
pub mod stage_timings;
pub mod stats;

pub use config::ProjectorConfig;
pub use runner::run;

/// Errors of the projector.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] mnemo_bus::BusError),
    #[error("JetStream consumer: {0}")]
    Consumer(String),
    #[error("migration {name} failed: {source}")]
    Migration {
        name: String,
        source: tokio_postgres::Error,
    },
}
