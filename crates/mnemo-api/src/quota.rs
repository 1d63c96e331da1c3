//! Per-owner storage quotas: how many documents an owner may hold and how
//! many bytes they may have uploaded (issue 18). Checked at upload time; an
//! upload past either is refused with `RESOURCE_EXHAUSTED`, the figures and
//! a `google.rpc.ErrorInfo` reason (`OWNER_DOCUMENT_QUOTA`,
//! `OWNER_BYTE_QUOTA`), and nothing of it is stored.
//!
//! How it counts: an owner's usage is the `documents` read model (every
//! document in any state, with its upload's size) plus what this API
//! process has in flight for them — uploads being received (their bytes as
//! they arrive) and uploads appended that the read model has not applied
//! yet. An in-flight entry leaves when the read model's checkpoint passes
//! its sequence, read in the same statement as the usage, so nothing is
//! counted twice or missed. Within one API process the quota is exact;
//! with several API replicas each sees the others' uploads once the
//! projector has applied them (an owner racing uploads through several
//! replicas at once may overshoot by what is in flight on the others).
//!
//! Uploads do not depend on PostgreSQL: when the read model cannot be
//! read (after one reconnect), the check counts what this process last read
//! and has in flight, and says so in the log (the write path needs NATS
//! only; the quota is enforced again once the read model answers).
//!
//! Owns: the in-flight entries (a few words per upload in flight).
//! Must not: decide who the owner is (the verified [`crate::auth::Caller`]
//! does) or store anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mnemo_projector::stats::{self, Scope, Usage};
use tokio_postgres::Client;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// The most one owner may hold; 0 for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    pub max_documents: u64,
    pub max_bytes: u64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            max_documents: 20_000,
            max_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// `google.rpc.ErrorInfo` domain of mnemo's refusals.
pub const ERROR_DOMAIN: &str = "mnemo.dev";

/// One upload this process has in flight for an owner.
#[derive(Debug)]
struct Pending {
    id: u64,
    bytes: u64,
    /// Stream sequence of its `DocumentUploaded`, once appended.
    sequence: Option<u64>,
}

/// An owner's figures: the read model's (as of `checkpoint`) and the
/// uploads in flight.
#[derive(Debug, Default)]
struct Owner {
    stored: Usage,
    checkpoint: u64,
    pending: Vec<Pending>,
}

impl Owner {
    fn documents(&self) -> u64 {
        self.stored.documents + self.pending.len() as u64
    }
    fn bytes(&self) -> u64 {
        self.stored.bytes + self.pending.iter().map(|p| p.bytes).sum::<u64>()
    }
}

#[derive(Debug, Default)]
struct Book {
    next_id: u64,
    owners: HashMap<String, Owner>,
}

/// The quotas and every owner's in-flight uploads; cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    config: QuotaConfig,
    book: Arc<Mutex<Book>>,
}

impl Quotas {
    pub fn new(config: QuotaConfig) -> Self {
        Self {
            config,
            book: Arc::default(),
        }
    }

    pub fn config(&self) -> QuotaConfig {
        self.config
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock leaves consistent figures (every
        // change is one push, one retain or one addition).
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an upload for `owner` (its token): refused when the owner
    /// already holds its quota of documents or bytes.
    pub async fn begin(
        &self,
        db: &crate::server::ReadDb,
        ns: &mnemo_bus::Namespace,
        owner: &str,
    ) -> Result<Hold, Status> {
        let reading = read_usage(db, ns, owner).await;
        let mut book = self.book();
        let id = book.next_id;
        book.next_id += 1;
        let entry = book.owners.entry(owner.to_owned()).or_default();
        // A newer reading replaces the figures and retires what it covers.
        if let Some((stored, checkpoint)) = reading.filter(|(_, c)| *c >= entry.checkpoint) {
            entry.stored = stored;
            entry.checkpoint = checkpoint;
            entry
                .pending
                .retain(|p| p.sequence.is_none_or(|s| s > checkpoint));
        }
        let max = self.config.max_documents;
        if max > 0 && entry.documents() >= max {
            let held = entry.documents();
            if entry.pending.is_empty() {
                book.owners.remove(owner);
            }
            return Err(refusal(
                "OWNER_DOCUMENT_QUOTA",
                format!(
                    "quota: this owner holds {held} documents, the most allowed is {max}; nothing was stored"
                ),
            ));
        }
        entry.pending.push(Pending {
            id,
            bytes: 0,
            sequence: None,
        });
        Ok(Hold {
            quotas: self.clone(),
            owner: owner.to_owned(),
            id,
            kept: false,
        })
    }

    /// The owner's figures as this process counts them (read model and
    /// in flight): what `GetStats` shows.
    pub async fn usage(
        &self,
        db: &Client,
        ns: &mnemo_bus::Namespace,
        owner: &str,
    ) -> Result<Usage, Status> {
        let (stored, checkpoint) = stats::usage(db, ns, Scope::Owner(owner))
            .await
            .map_err(|e| crate::status::from_db_error(&e))?;
        let book = self.book();
        let in_flight = book.owners.get(owner).map(|o| {
            o.pending
                .iter()
                .filter(|p| p.sequence.is_none_or(|s| s > checkpoint))
                .fold((0u64, 0u64), |(d, b), p| (d + 1, b + p.bytes))
        });
        let (docs, bytes) = in_flight.unwrap_or_default();
        Ok(Usage {
            documents: stored.documents + docs,
            bytes: stored.bytes + bytes,
        })
    }

    /// Owners with something in flight (for tests and the abuse bench).
    pub fn owners_in_flight(&self) -> usize {
        self.book().owners.len()
    }
}

/// The owner's usage and the checkpoint it reflects; None when the read
/// model cannot be read (tried twice: the second on a fresh session, as
/// after PostgreSQL ended the first).
async fn read_usage(
    db: &crate::server::ReadDb,
    ns: &mnemo_bus::Namespace,
    owner: &str,
) -> Option<(Usage, u64)> {
    for _ in 0..2 {
        let result = match db.client().await {
            Ok(client) => stats::usage(&*client, ns, Scope::Owner(owner)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(reading) => return Some(reading),
            Err(e) => tracing::warn!(error = %e, "cannot read the owner's usage"),
        }
    }
    tracing::warn!("quota checked against this process's last reading and uploads in flight only: the read model is unavailable");
    None
}

/// One upload's place in its owner's quota; dropped without
/// [`Hold::appended`], it gives its place back.
pub struct Hold {
    quotas: Quotas,
    owner: String,
    id: u64,
    kept: bool,
}

impl Hold {
    /// Counts `n` more bytes of this upload; refused past the owner's quota.
    pub fn take(&self, n: u64) -> Result<(), Status> {
        let max = self.quotas.config.max_bytes;
        let mut book = self.quotas.book();
        let Some(owner) = book.owners.get_mut(&self.owner) else {
            return Ok(());
        };
        let used = owner.bytes();
        if max > 0 && used.saturating_add(n) > max {
            return Err(refusal(
                "OWNER_BYTE_QUOTA",
                format!(
                    "quota: this owner has uploaded {used} bytes and may upload at most {max}; this upload was not stored"
                ),
            ));
        }
        if let Some(p) = owner.pending.iter_mut().find(|p| p.id == self.id) {
            p.bytes += n;
        }
        Ok(())
    }

    /// The upload was appended at `sequence`: it stays counted until the
    /// read model has applied it.
    pub fn appended(mut self, sequence: u64) {
        let mut book = self.quotas.book();
        if let Some(p) = book
            .owners
            .get_mut(&self.owner)
            .and_then(|o| o.pending.iter_mut().find(|p| p.id == self.id))
        {
            p.sequence = Some(sequence);
        }
        self.kept = true;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut book = self.quotas.book();
        if let Some(owner) = book.owners.get_mut(&self.owner) {
            owner.pending.retain(|p| p.id != self.id);
            if owner.pending.is_empty() {
                book.owners.remove(&self.owner);
            }
        }
    }
}

/// `RESOURCE_EXHAUSTED` with the reason and an `ErrorInfo` detail.
pub fn refusal(reason: &str, message: String) -> Status {
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::<String, String>::new()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(q: &Quotas, owner: &str, stored: Usage) {
        q.book().owners.insert(
            owner.into(),
            Owner {
                stored,
                checkpoint: 0,
                pending: vec![Pending {
                    id: 99,
                    bytes: 0,
                    sequence: None,
                }],
            },
        );
    }

    /// An upload in flight for owner "o", who holds nothing yet.
    fn hold_of(q: &Quotas) -> Hold {
        book_with(q, "o", Usage::default());
        Hold {
            quotas: q.clone(),
            owner: "o".into(),
            id: 99,
            kept: false,
        }
    }

    #[test]
    fn bytes_past_the_quota_are_refused_and_a_dropped_hold_gives_them_back() {
        let q = Quotas::new(QuotaConfig {
            max_documents: 0,
            max_bytes: 100,
        });
        let hold = hold_of(&q);
        assert!(hold.take(60).is_ok());
        let refused = hold.take(41).err();
        assert_eq!(
            refused.as_ref().map(Status::code),
            Some(tonic::Code::ResourceExhausted)
        );
        assert!(hold.take(40).is_ok(), "exactly the quota fits");
        drop(hold);
        assert_eq!(q.owners_in_flight(), 0, "nothing stays counted");
    }

    #[test]
    fn an_appended_upload_stays_counted() {
        let q = Quotas::new(QuotaConfig {
            max_documents: 0,
            max_bytes: 100,
        });
        let hold = hold_of(&q);
        assert!(hold.take(70).is_ok());
        hold.appended(5);
        let owner_bytes = q.book().owners.get("o").map(Owner::bytes);
        assert_eq!(owner_bytes, Some(70));
    }

    #[test]
    fn refusals_carry_their_reason() {
        let s = refusal("OWNER_BYTE_QUOTA", "quota: full".into());
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        let info = s.get_details_error_info();
        assert_eq!(info.map(|i| i.reason), Some("OWNER_BYTE_QUOTA".to_string()));
    }
}
