//! The projector: folds events into PostgreSQL read models.
//!
//! Consumes: every document event (`<ns>.ev.doc.>`) and every learning
//! event (`<ns>.ev.learn.>`), each feed in stream order from its own
//! checkpoint (an ordered consumer per feed, one live [`runner`] driving
//! each feed's [`handler`]).
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
//! - [`config`]: its flags ([`ProjectorArgs`]) and what it needs to run.
//! - [`error`]: [`ProjectorError`] and its kind.
//! - [`handler`]: one [`handler::FeedHandler`] per feed — the document read
//!   models (and declaring runs indexed), the learning read model.
//! - [`runner`]: the one live loop both feeds run on (ordered reads from
//!   the checkpoint, standby copies, poison events dead-lettered,
//!   reconnects with backoff).
//! - [`db`]: connecting to PostgreSQL and the namespace's schema.
//! - [`migrations`]: versioned SQL from `projections/`, applied at start.
//! - [`projection`]: the projections (named sets of tables) and the feed
//!   of events each is folded from.
//! - [`documents`], [`chunks`], [`stage_timings`]: each read model's pure
//!   fold, its set-wise writes and its queries.
//! - [`learning`]: the learning read model (cards, reviews, topics,
//!   sessions): its fold, its checkpoint, its queries.
//! - [`batch`]: a batch of events into projections + checkpoint, one transaction.
//! - [`copy`]: PostgreSQL's binary `COPY` format, for bulk writes.
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
pub mod error;
pub mod handler;
pub mod learning;
pub mod migrations;
pub mod partitioned;
pub mod projection;
pub mod rebuild;
pub mod runner;
pub mod stage_timings;
pub mod stats;

use std::future::Future;

pub use config::{ProjectorArgs, ProjectorConfig};
pub use error::{ProjectorError, ProjectorErrorKind};
pub use projection::{Feed, Projection};

/// Runs the projector — the document read models and, beside them with a
/// checkpoint of its own, the learning read model (decision 014) — until
/// `shutdown` resolves; each feed finishes the batch in hand. Either
/// failing stops both.
pub async fn run(
    bus: mnemo_bus::Bus,
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let documents = handler::Documents::new(&bus);
    let both = async {
        tokio::try_join!(
            runner::run(
                bus.clone(),
                config.clone(),
                documents,
                stopped(stop_rx.clone())
            ),
            runner::run(
                bus.clone(),
                config.clone(),
                handler::Learning,
                stopped(stop_rx.clone())
            ),
        )
        .map(|_| ())
    };
    tokio::pin!(both, shutdown);
    tokio::select! {
        r = &mut both => r,
        _ = &mut shutdown => {
            let _ = stop_tx.send(true);
            both.await
        }
    }
}
