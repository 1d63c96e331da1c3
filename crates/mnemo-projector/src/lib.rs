//! The projector: folds events into PostgreSQL read models.
//!
//! Consumes: every document event (`<ns>.ev.doc.>`), in stream order, from
//! its checkpoint (an ordered consumer; see [`runner`]); and, with a second
//! ordered reader and checkpoint of its own, every learning event
//! (`<ns>.ev.learn.>`, see [`learning`]).
//! Emits: `DocumentIndexed` (through the document aggregate's `MarkIndexed`)
//! once every chunk of a run is stored with its vector.
//! Owns: the read models defined in `projections/` (schema `<ns>`), their
//! migrations, the queries that read them, and rebuilding them from the
//! event log ([`rebuild`]).
//! Must not: decide anything. It mirrors what events say; a rule about what
//! may happen belongs to the aggregate in `mnemo-domain`.
//!
//! Exactly-once effect: each batch of events is applied in one transaction
//! together with the checkpoint (last stream sequence applied). An event at
//! or below the checkpoint is skipped, so reading part of the stream again
//! changes nothing.
//!
//! # Layout
//! - [`config`]: what the projector needs to run.
//! - [`db`]: connecting to PostgreSQL and the namespace's schema.
//! - [`migrations`]: versioned SQL from `projections/`, applied at start.
//! - [`projection`]: the projections (named sets of tables) and the feed
//!   of events each is folded from.
//! - [`documents`], [`chunks`], [`stage_timings`]: each read model's pure
//!   fold, its set-wise writes and its queries.
//! - [`learning`]: the learning read model (cards, reviews, topics,
//!   sessions): its own ordered runner and checkpoint, its queries.
//! - [`batch`]: a batch of events into projections + checkpoint, one transaction.
//! - [`copy`]: PostgreSQL's binary `COPY` format, for bulk writes.
//! - [`runner`]: the live loop (ordered reads from the checkpoint, standby
//!   copies, poison events dead-lettered, indexing).
//! - [`rebuild`]: version N+1 of a projection beside version N, then a swap.
//! - [`partitioned`]: a rebuild's writes over several connections, split by
//!   document (or, for learning, by owner).
//! - [`stats`]: live totals by state and per-stage analytics (queries).
//! - [`checksum`]: fingerprints of the read models (rebuild checks).

pub mod batch;
pub mod checksum;
pub mod chunks;
pub mod config;
pub mod copy;
pub mod db;
pub mod documents;
pub mod learning;
pub mod migrations;
pub mod partitioned;
pub mod projection;
pub mod rebuild;
pub mod runner;
pub mod stage_timings;
pub mod stats;

pub use config::ProjectorConfig;
pub use projection::{Feed, Projection};
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
    #[error("rebuild: {0}")]
    Rebuild(String),
}

impl ProjectorError {
    /// Whether the error is about the database or the bus being unavailable
    /// (retry as is, never skip anything) rather than about an event's
    /// content.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Postgres(e) | Self::Migration { source: e, .. } => {
                let Some(code) = e.code() else {
                    return true; // I/O, closed connection, timeout
                };
                let code = code.code();
                // 08 connection, 40 rollback (deadlock/serialization), 53
                // resources, 57 operator intervention, 55P03 lock timeout,
                // 3F000/42P01 schema or table missing (dropped under us:
                // the next start migrates it back).
                ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c))
                    || ["55P03", "3F000", "42P01"].contains(&code)
            }
            Self::Bus(_) | Self::Consumer(_) => true,
            Self::Rebuild(_) => false,
        }
    }
}
