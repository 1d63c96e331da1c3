//! Progress of a set of documents — one document, one upload batch, or every
//! document of an owner — as a pure fold built on the per-document
//! [`Progress`].
//!
//! Membership is decided once per document, by its first event: the
//! `DocumentUploaded` carries the batch id, and a document never changes
//! batch. So a batch is known from events alone (no status table), and a
//! document uploaded into a batch later simply joins it.
//!
//! Events come in as the stream delivers them: one message (a command's
//! events) at a stream sequence. Every message of a member yields exactly
//! one update; messages of other documents yield none. That is what lets a
//! watcher resume from a sequence: the updates above it are the same whether
//! the fold started at sequence 1 once or twice.

use std::collections::HashMap;

use crate::document::{DocumentEvent, Stage};
use crate::ids::DocumentId;
use crate::progress::Progress;

/// Which documents a set follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Document(DocumentId),
    /// The documents uploaded with this batch id.
    Batch(String),
    /// Every document (of the owner whose events are folded).
    All,
}

impl Scope {
    /// Whether a document whose first event is `first` belongs to the scope.
    pub fn admits(&self, document: &DocumentId, first: &DocumentEvent) -> bool {
        match self {
            Self::Document(id) => id == document,
            Self::Batch(batch) => {
                matches!(first, DocumentEvent::DocumentUploaded(d) if &d.batch_id == batch)
            }
            Self::All => true,
        }
    }
}

/// One document of the set: its progress and what its upload said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    pub progress: Progress,
    pub batch_id: String,
    pub filename: String,
}

/// Where a member stands, for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    InFlight,
    Done,
    Failed,
    Cancelled,
}

impl Member {
    fn standing(&self) -> Standing {
        match self.progress.stage {
            Some(Stage::Indexed) => Standing::Done,
            Some(Stage::Failed) => Standing::Failed,
            Some(Stage::Cancelled) => Standing::Cancelled,
            _ => Standing::InFlight,
        }
    }

    /// The member's share of the overall bar in millionths: a terminal
    /// document is complete whatever its own bar says. Integers, so that
    /// adding and removing shares over millions of events cannot drift.
    fn share_micros(&self) -> u64 {
        if self.progress.is_terminal() {
            1_000_000
        } else {
            (self.progress.fraction.clamp(0.0, 1.0) * 1_000_000.0).round() as u64
        }
    }
}

/// The whole set after an event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub total: u32,
    /// Indexed.
    pub done: u32,
    pub failed: u32,
    pub cancelled: u32,
    /// Mean of the members' fractions, terminal members counting as 1.0.
    pub fraction: f64,
}

impl Summary {
    /// Every member is terminal (vacuously true for an empty set).
    pub fn finished(&self) -> bool {
        self.done + self.failed + self.cancelled == self.total
    }
}

/// What one member's message changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SetUpdate<'a> {
    pub document: DocumentId,
    pub member: &'a Member,
    pub summary: Summary,
}

/// The fold of a scope's documents.
#[derive(Debug, Clone)]
pub struct ProgressSet {
    scope: Scope,
    members: HashMap<DocumentId, Member>,
    done: u32,
    failed: u32,
    cancelled: u32,
    share_micros: u64,
}

impl ProgressSet {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            members: HashMap::new(),
            done: 0,
            failed: 0,
            cancelled: 0,
            share_micros: 0,
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Folds one message (the `events` of `document` at stream `sequence`).
    /// Returns the update to show, or None when the document is not in scope.
    pub fn apply(
        &mut self,
        document: DocumentId,
        sequence: u64,
        events: &[DocumentEvent],
    ) -> Option<SetUpdate<'_>> {
        if events.iter().all(DocumentEvent::is_replay) {
            return None; // a backfill: nothing the watchers see moves
        }
        let first = events.first()?;
        if !self.members.contains_key(&document) {
            if !self.scope.admits(&document, first) {
                return None;
            }
            self.members.insert(document, Member::default());
            // A new member starts in flight at 0: nothing to subtract below.
        }
        let (before, after) = {
            let member = self.members.get_mut(&document)?;
            let before = (member.standing(), member.share_micros());
            for event in events {
                member.progress.apply(sequence, event);
                if let DocumentEvent::DocumentUploaded(d) = event {
                    member.batch_id.clone_from(&d.batch_id);
                    member.filename.clone_from(&d.filename);
                }
            }
            (before, (member.standing(), member.share_micros()))
        };
        self.share_micros = (self.share_micros + after.1).saturating_sub(before.1);
        if before.0 != after.0 {
            self.bump(before.0, -1);
            self.bump(after.0, 1);
        }
        let summary = self.summary();
        let member = self.members.get(&document)?;
        Some(SetUpdate {
            document,
            member,
            summary,
        })
    }

    fn bump(&mut self, standing: Standing, delta: i32) {
        let counter = match standing {
            Standing::InFlight => return,
            Standing::Done => &mut self.done,
            Standing::Failed => &mut self.failed,
            Standing::Cancelled => &mut self.cancelled,
        };
        *counter = counter.saturating_add_signed(delta);
    }

    pub fn summary(&self) -> Summary {
        let total = self.members.len() as u32;
        Summary {
            total,
            done: self.done,
            failed: self.failed,
            cancelled: self.cancelled,
            fraction: if total == 0 {
                0.0
            } else {
                (self.share_micros as f64 / 1_000_000.0 / f64::from(total)).min(1.0)
            },
        }
    }

    /// Every member is terminal.
    pub fn is_finished(&self) -> bool {
        self.summary().finished()
    }

    pub fn member(&self, document: &DocumentId) -> Option<&Member> {
        self.members.get(document)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{FailureCode, UploadedDocument};

    fn uploaded(id: DocumentId, batch: &str) -> DocumentEvent {
        DocumentEvent::DocumentUploaded(UploadedDocument {
            document_id: id,
            filename: format!("{id}.pdf"),
            batch_id: batch.into(),
            ..UploadedDocument::sample()
        })
    }

    fn pages(run: u32, done: u32) -> DocumentEvent {
        DocumentEvent::ExtractionProgressed {
            run,
            pages_done: done,
            pages_total: 10,
        }
    }

    fn indexed(run: u32) -> DocumentEvent {
        DocumentEvent::DocumentIndexed { run, chunks: 3 }
    }

    fn failed(run: u32) -> DocumentEvent {
        DocumentEvent::DocumentFailed {
            run,
            stage: Stage::Extracting,
            reason: "damaged PDF".into(),
            retryable: false,
            code: FailureCode::Damaged,
        }
    }

    fn cancelled(run: u32) -> DocumentEvent {
        DocumentEvent::ProcessingCancelled {
            run,
            reason: "enough".into(),
        }
    }

    fn reprocess(run: u32) -> DocumentEvent {
        DocumentEvent::ReprocessRequested {
            run,
            reason: "again".into(),
        }
    }

    /// Folds (document, event) pairs at sequences 1, 2, …; returns the
    /// summaries of the updates (None: out of scope).
    fn fold(set: &mut ProgressSet, events: &[(DocumentId, DocumentEvent)]) -> Vec<Option<Summary>> {
        events
            .iter()
            .enumerate()
            .map(|(i, (d, e))| {
                set.apply(*d, i as u64 + 1, std::slice::from_ref(e))
                    .map(|u| u.summary)
            })
            .collect()
    }

    fn counts(s: &Summary) -> (u32, u32, u32, u32) {
        (s.total, s.done, s.failed, s.cancelled)
    }

    #[test]
    fn a_batch_counts_its_documents_to_their_terminal_states() {
        let (a, b, c, other) = (
            DocumentId::new(),
            DocumentId::new(),
            DocumentId::new(),
            DocumentId::new(),
        );
        let mut set = ProgressSet::new(Scope::Batch("b1".into()));
        let out = fold(
            &mut set,
            &[
                (a, uploaded(a, "b1")),
                (other, uploaded(other, "b2")),
                (b, uploaded(b, "b1")),
                (c, uploaded(c, "b1")),
                (a, pages(1, 5)),
                (other, pages(1, 5)),
                (a, indexed(1)),
                (b, failed(1)),
                (other, indexed(1)),
                (c, cancelled(1)),
            ],
        );
        assert!(out[1].is_none() && out[5].is_none() && out[8].is_none());
        assert_eq!(counts(&out[3].unwrap()), (3, 0, 0, 0));
        assert!(!out[3].unwrap().finished());
        let last = out[9].unwrap();
        assert_eq!(counts(&last), (3, 1, 1, 1));
        assert!(last.finished() && set.is_finished());
        assert!((last.fraction - 1.0).abs() < 1e-9);
        assert_eq!(set.member(&a).unwrap().batch_id, "b1");
        assert!(set.member(&other).is_none());
    }

    #[test]
    fn the_overall_fraction_is_the_mean_and_terminal_members_count_whole() {
        let (a, b) = (DocumentId::new(), DocumentId::new());
        let mut set = ProgressSet::new(Scope::All);
        let out = fold(
            &mut set,
            &[
                (a, uploaded(a, "x")),
                (b, uploaded(b, "y")),
                (a, pages(1, 10)),
                (b, failed(1)),
            ],
        );
        let extracted = crate::progress::EXTRACT_SHARE;
        assert!((out[2].unwrap().fraction - extracted / 2.0).abs() < 1e-6);
        assert!((out[3].unwrap().fraction - (extracted + 1.0) / 2.0).abs() < 1e-6);
        assert_eq!(counts(&out[3].unwrap()), (2, 0, 1, 0));
    }

    #[test]
    fn a_reprocess_puts_a_done_document_back_in_flight() {
        let a = DocumentId::new();
        let mut set = ProgressSet::new(Scope::Batch("b".into()));
        let out = fold(
            &mut set,
            &[
                (a, uploaded(a, "b")),
                (a, indexed(1)),
                (a, reprocess(2)),
                (a, pages(2, 5)),
                (a, indexed(2)),
            ],
        );
        assert!(out[1].unwrap().finished());
        assert_eq!(counts(&out[2].unwrap()), (1, 0, 0, 0));
        assert!(!out[2].unwrap().finished());
        assert_eq!(out[2].unwrap().fraction, 0.0);
        assert_eq!(counts(&out[4].unwrap()), (1, 1, 0, 0));
        assert_eq!(set.member(&a).unwrap().progress.run, 2);
    }

    #[test]
    fn late_results_of_an_old_run_change_nothing_but_still_update() {
        let a = DocumentId::new();
        let mut set = ProgressSet::new(Scope::All);
        let out = fold(
            &mut set,
            &[
                (a, uploaded(a, "b")),
                (a, pages(1, 2)),
                (a, reprocess(2)),
                (a, pages(2, 1)),
                // Out of order: run 1's results arrive after run 2 began.
                (a, pages(1, 9)),
                (a, indexed(1)),
                (a, failed(1)),
            ],
        );
        let before = out[3].unwrap();
        for late in &out[4..] {
            // One update per message, so resuming can count on it…
            let late = late.expect("a member's message always updates");
            // …but the old run moves nothing.
            assert_eq!(late, before);
        }
        let m = set.member(&a).unwrap();
        assert_eq!((m.progress.run, m.progress.pages_done), (2, 1));
        assert_eq!(m.progress.sequence, 7);
        assert!(!set.is_finished());
    }

    #[test]
    fn a_document_joining_a_finished_batch_reopens_it() {
        let (a, b) = (DocumentId::new(), DocumentId::new());
        let mut set = ProgressSet::new(Scope::Batch("b".into()));
        let out = fold(
            &mut set,
            &[
                (a, uploaded(a, "b")),
                (a, cancelled(1)),
                (b, uploaded(b, "b")),
                (b, indexed(1)),
            ],
        );
        assert!(out[1].unwrap().finished());
        let joined = out[2].unwrap();
        assert_eq!(counts(&joined), (2, 0, 0, 1));
        assert!(!joined.finished());
        assert!((joined.fraction - 0.5).abs() < 1e-9);
        assert_eq!(counts(&out[3].unwrap()), (2, 1, 0, 1));
    }

    #[test]
    fn a_batch_admits_only_by_the_upload() {
        // A document first seen mid-run (its upload not folded) cannot be
        // placed in a batch, so it stays out; the all scope takes it.
        let a = DocumentId::new();
        let mut batch = ProgressSet::new(Scope::Batch("b".into()));
        let mut all = ProgressSet::new(Scope::All);
        assert!(batch.apply(a, 1, &[pages(1, 1)]).is_none());
        assert!(all.apply(a, 1, &[pages(1, 1)]).is_some());
        assert!(batch.apply(a, 2, &[]).is_none());
        assert!(batch.is_empty() && batch.is_finished());
    }

    #[test]
    fn a_document_scope_follows_one_document_like_its_own_fold() {
        let (a, b) = (DocumentId::new(), DocumentId::new());
        let mut set = ProgressSet::new(Scope::Document(a));
        let mut alone = Progress::default();
        let events = [
            (a, uploaded(a, "b")),
            (b, uploaded(b, "b")),
            (a, pages(1, 4)),
            (a, failed(1)),
        ];
        for (i, (d, e)) in events.iter().enumerate() {
            let seq = i as u64 + 1;
            let update = set
                .apply(*d, seq, std::slice::from_ref(e))
                .map(|u| u.member.progress.clone());
            if *d == a {
                alone.apply(seq, e);
                assert_eq!(update.as_ref(), Some(&alone));
            } else {
                assert!(update.is_none());
            }
        }
        assert!(set.is_finished());
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn one_message_of_several_events_is_one_update() {
        let a = DocumentId::new();
        let mut set = ProgressSet::new(Scope::All);
        let u = set
            .apply(a, 9, &[uploaded(a, "b"), pages(1, 10), indexed(1)])
            .unwrap();
        assert_eq!(u.member.progress.sequence, 9);
        assert_eq!(u.member.progress.event_type, "DocumentIndexed");
        assert_eq!(counts(&u.summary), (1, 1, 0, 0));
    }
}
