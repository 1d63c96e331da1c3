//! Live counters and stage analytics, read from the `documents` and
//! `stage_timings` read models (nothing here reads the event stream).
//!
//! - Totals by state: a document is *queued* while only uploaded,
//!   *processing* while extracting, chunking or embedding, then *indexed*,
//!   *failed* or *cancelled*.
//! - Per stage: how many runs finished the stage, p50/p95 of its duration
//!   (from the events' timestamps, as the projector stored them), and the
//!   share of those that ended the run as `failed`.

use tokio_postgres::GenericClient;

use crate::ProjectorError;

/// Documents per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateTotals {
    pub queued: u64,
    pub processing: u64,
    pub indexed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl StateTotals {
    pub fn total(&self) -> u64 {
        self.queued + self.processing + self.indexed + self.failed + self.cancelled
    }
}

/// Durations and errors of one stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageStats {
    pub stage: String,
    /// Runs that finished the stage (moved on, failed or were cancelled).
    pub finished: u64,
    /// Runs in the stage now.
    pub running: u64,
    pub p50_seconds: f64,
    pub p95_seconds: f64,
    /// Of the finished, how many ended the run as `failed`.
    pub failed: u64,
}

impl StageStats {
    pub fn error_rate(&self) -> f64 {
        if self.finished == 0 {
            0.0
        } else {
            self.failed as f64 / self.finished as f64
        }
    }
}

/// Which documents the figures cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// One owner's (by owner token).
    Owner(&'a str),
    /// Everyone's (operators).
    All,
}

impl Scope<'_> {
    fn owner(&self) -> Option<&str> {
        match self {
            Scope::Owner(t) => Some(t),
            Scope::All => None,
        }
    }
}

/// Documents per state.
pub async fn state_totals(
    client: &impl GenericClient,
    scope: Scope<'_>,
) -> Result<StateTotals, ProjectorError> {
    let rows = client
        .query(
            "SELECT stage, count(*) FROM documents
             WHERE ($1::text IS NULL OR owner_token = $1)
             GROUP BY stage",
            &[&scope.owner()],
        )
        .await?;
    let mut t = StateTotals::default();
    for r in rows {
        let n = r.get::<_, i64>(1) as u64;
        match r.get::<_, &str>(0) {
            "uploaded" => t.queued += n,
            "extracting" | "chunking" | "embedding" => t.processing += n,
            "indexed" => t.indexed += n,
            "failed" => t.failed += n,
            "cancelled" => t.cancelled += n,
            other => tracing::warn!(stage = other, "unknown stage in documents"),
        }
    }
    Ok(t)
}

/// What an owner (or everyone) holds: documents and the bytes uploaded for
/// them, every state counted (a cancelled or failed document keeps its
/// upload). What per-owner quotas are checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub documents: u64,
    pub bytes: u64,
}

/// The documents and uploaded bytes of `scope`, with the document
/// checkpoint they reflect (read in one statement, so the two agree).
pub async fn usage(
    client: &impl GenericClient,
    ns: &mnemo_bus::Namespace,
    scope: Scope<'_>,
) -> Result<(Usage, u64), ProjectorError> {
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(size_bytes), 0)::bigint,
                    coalesce((SELECT last_sequence FROM projection_checkpoints
                              WHERE consumer = $2), 0)
             FROM documents
             WHERE ($1::text IS NULL OR owner_token = $1)",
            &[
                &scope.owner(),
                &crate::projection::Feed::Documents.checkpoint_name(ns),
            ],
        )
        .await?;
    let usage = Usage {
        documents: row.get::<_, i64>(0).max(0) as u64,
        bytes: row.get::<_, i64>(1).max(0) as u64,
    };
    Ok((usage, row.get::<_, i64>(2).max(0) as u64))
}

/// Per-stage durations and error rates, in pipeline order: `uploaded`
/// (waiting for the extractor, and extracting until its first progress
/// event), `extracting`, `chunking`, `embedding`.
pub async fn stage_stats(
    client: &impl GenericClient,
    scope: Scope<'_>,
) -> Result<Vec<StageStats>, ProjectorError> {
    let rows = client
        .query(
            "SELECT stage,
                    count(finished_at),
                    count(*) - count(finished_at),
                    coalesce(percentile_cont(0.5) WITHIN GROUP
                        (ORDER BY extract(epoch FROM finished_at - started_at)), 0)::float8,
                    coalesce(percentile_cont(0.95) WITHIN GROUP
                        (ORDER BY extract(epoch FROM finished_at - started_at)), 0)::float8,
                    count(*) FILTER (WHERE outcome = 'failed')
               FROM stage_timings
              WHERE ($1::text IS NULL OR owner_token = $1)
              GROUP BY stage
              ORDER BY array_position(ARRAY['uploaded','extracting','chunking','embedding'], stage), stage",
            &[&scope.owner()],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| StageStats {
            stage: r.get(0),
            finished: r.get::<_, i64>(1) as u64,
            running: r.get::<_, i64>(2) as u64,
            p50_seconds: r.get(3),
            p95_seconds: r.get(4),
            failed: r.get::<_, i64>(5) as u64,
        })
        .collect())
}
