//! Retrying the learning runner's dead letters (`mnemo dlq retry`).
//!
//! The learning runner dead-letters an event it cannot decode and steps
//! over it ([`crate::runner`]), so the read model goes on without it. Once
//! a build reads such events again (a fix, e.g. an upcaster), retrying
//! folds them in where they belong in history: one rebuild of the learning
//! read model from the event log ([`crate::rebuild`], swapped in against
//! the live runner's checkpoint), then the letters are cleared. A letter
//! whose event this build still cannot read stays, and says why.
//!
//! Must not: apply a skipped event out of order on the live tables (later
//! events were folded without it), or clear a letter whose event is still
//! unread.

use mnemo_bus::dlq::{self, DeadLetter};
use mnemo_bus::{Bus, BusError};

use crate::rebuild::{self, RebuildOptions};
use crate::Projection;

/// Why a learning dead letter was kept.
#[derive(Debug, thiserror::Error)]
pub enum Kept {
    #[error("event {sequence} is not in the log: {reason}")]
    NotInLog { sequence: u64, reason: String },
    #[error("this build still cannot read event {sequence}: {source} (deploy one that does, e.g. with an upcaster, then retry)")]
    StillUnreadable { sequence: u64, source: BusError },
    #[error("rebuilding the learning read model: {0}")]
    Rebuild(String),
    #[error("the learning read model was rebuilt, but the dead letter stays: {0}")]
    NotCleared(BusError),
}

/// Retries `letters` (the learning runner's: service
/// [`super::DLQ_SERVICE`]): those whose event this build reads are
/// folded in by one rebuild and cleared. Each letter's outcome, in order:
/// the learning read model's version now serving, or why it was kept.
pub async fn retry<'a>(
    bus: &Bus,
    database_url: &str,
    letters: &[&'a DeadLetter],
) -> Vec<(&'a DeadLetter, Result<i32, Kept>)> {
    let mut outcomes = Vec::with_capacity(letters.len());
    let mut readable = Vec::new();
    for l in letters {
        match reads_now(bus, l).await {
            Ok(()) => readable.push(*l),
            Err(kept) => outcomes.push((*l, Err(kept))),
        }
    }
    if readable.is_empty() {
        return outcomes;
    }
    let rebuilt = rebuild::rebuild(
        bus,
        database_url,
        &[Projection::Learning],
        &RebuildOptions::default(),
        |_| {},
    )
    .await;
    match rebuilt {
        Ok(report) => {
            let version = report.versions.first().map(|(_, v)| *v).unwrap_or(0);
            tracing::info!(
                version,
                letters = readable.len(),
                "learning dead letters folded in by a rebuild"
            );
            for l in readable {
                let cleared = dlq::remove(bus, l.sequence)
                    .await
                    .map(|()| version)
                    .map_err(Kept::NotCleared);
                outcomes.push((l, cleared));
            }
        }
        Err(e) => {
            let reason = e.to_string();
            outcomes.extend(
                readable
                    .into_iter()
                    .map(|l| (l, Err(Kept::Rebuild(reason.clone())))),
            );
        }
    }
    outcomes
}

/// Whether this build decodes the event a dead letter points at.
async fn reads_now(bus: &Bus, letter: &DeadLetter) -> Result<(), Kept> {
    let sequence = letter.event_sequence;
    let m = bus
        .events
        .direct_get(sequence)
        .await
        .map_err(|e| Kept::NotInLog {
            sequence,
            reason: e.to_string(),
        })?;
    super::decode(
        &bus.keys,
        &m.subject,
        m.sequence,
        Some(&m.headers),
        &m.payload,
    )
    .await
    .map(|_| ())
    .map_err(|source| Kept::StillUnreadable { sequence, source })
}
