//! Progress as a pure fold over a document's events.
//!
//! The API streams this to watchers; nothing here reads a status table. Each
//! stage has a share of the bar proportional to its typical cost, so the
//! fraction moves at a steady pace; within a run it never goes backwards.

use crate::document::{DocumentEvent, FailureCode, Stage};

/// Share of the progress bar each stage owns (sums to 1.0).
pub const EXTRACT_SHARE: f64 = 0.35;
pub const CHUNK_SHARE: f64 = 0.05;
pub const EMBED_SHARE: f64 = 0.50;
pub const INDEX_SHARE: f64 = 0.10;

/// A document's progress after the events folded so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub stage: Option<Stage>,
    pub fraction: f64,
    pub message: String,
    pub run: u32,
    pub pages_done: u64,
    pub pages_total: u64,
    /// Pages of the run's text that could not be read: the document goes
    /// on, partial, and every later message says so.
    pub pages_failed: u64,
    pub chunks_total: u64,
    pub chunks_embedded: u64,
    /// Whether the chunk count is final (the last chunk batch was seen).
    pub chunks_final: bool,
    /// Stream sequence of the last event folded in.
    pub sequence: u64,
    pub event_type: &'static str,
    /// When failed: the stage the failure happened in, and its code.
    pub failure: Option<(Stage, FailureCode)>,
}

impl Progress {
    /// Indexed, failed or cancelled.
    pub fn is_terminal(&self) -> bool {
        self.stage.is_some_and(Stage::is_terminal)
    }

    /// Folds one event (at stream `sequence`) into the progress.
    pub fn apply(&mut self, sequence: u64, event: &DocumentEvent) {
        use DocumentEvent as E;
        if event.is_replay() {
            // A backfill of a finished run: the user's progress is done.
            return;
        }
        self.sequence = sequence;
        self.event_type = event.name();
        let run = event.run();
        if run < self.run {
            // A late result of an old run changes nothing the user sees.
            return;
        }
        let mut next = self.fraction;
        match event {
            E::DocumentUploaded(d) => {
                self.reset(1);
                self.stage = Some(Stage::Uploaded);
                self.message = format!(
                    "uploaded {} ({} bytes), waiting for extraction",
                    d.filename, d.size_bytes
                );
                next = 0.0;
            }
            E::ReprocessRequested { run, reason } => {
                self.reset(*run);
                self.stage = Some(Stage::Uploaded);
                self.message = format!("reprocessing (run {run}): {reason}");
                next = 0.0;
            }
            E::ExtractionProgressed {
                pages_done,
                pages_total,
                ..
            } => {
                self.stage = Some(Stage::Extracting);
                self.pages_done = u64::from(*pages_done);
                self.pages_total = u64::from(*pages_total);
                self.message = format!("extracting text: page {pages_done} of {pages_total}");
                next = EXTRACT_SHARE * ratio(self.pages_done, self.pages_total);
            }
            E::TextExtracted {
                pages,
                chars,
                extractor,
                pages_failed,
                ..
            } => {
                self.stage = Some(Stage::Chunking);
                self.pages_done = u64::from(*pages);
                self.pages_total = u64::from(*pages);
                self.pages_failed = u64::from(*pages_failed);
                self.message = format!(
                    "extracted {chars} characters from {pages} pages ({extractor}){}; chunking",
                    self.partial()
                );
                next = EXTRACT_SHARE;
            }
            E::DocumentChunked { last, chunks, .. } => {
                self.chunks_total += chunks.len() as u64;
                self.chunks_final |= *last;
                if *last {
                    self.stage = Some(Stage::Embedding);
                    self.message = format!("cut {}; embedding", chunks_word(self.chunks_total));
                    next = EXTRACT_SHARE + CHUNK_SHARE;
                } else {
                    self.message = format!("chunking: {} so far", chunks_word(self.chunks_total));
                    next = EXTRACT_SHARE + CHUNK_SHARE / 2.0;
                }
            }
            E::ChunksEmbedded { vectors, .. } => {
                self.chunks_embedded += vectors.len() as u64;
                self.message = format!(
                    "embedded {} of {}{} chunk{}",
                    self.chunks_embedded,
                    self.chunks_total,
                    if self.chunks_final { "" } else { "+" },
                    if self.chunks_total == 1 && self.chunks_final {
                        ""
                    } else {
                        "s"
                    }
                );
                next = EXTRACT_SHARE
                    + CHUNK_SHARE
                    + EMBED_SHARE * ratio(self.chunks_embedded, self.chunks_total);
            }
            E::DocumentIndexed { chunks, .. } => {
                self.stage = Some(Stage::Indexed);
                self.message = format!(
                    "indexed: {} searchable{}",
                    chunks_word(u64::from(*chunks)),
                    self.partial()
                );
                next = EXTRACT_SHARE + CHUNK_SHARE + EMBED_SHARE + INDEX_SHARE;
            }
            E::DocumentFailed {
                stage,
                reason,
                code,
                ..
            } => {
                self.stage = Some(Stage::Failed);
                self.message = format!("failed while {stage}: {reason}");
                self.failure = Some((*stage, *code));
            }
            E::ProcessingCancelled { reason, .. } => {
                self.stage = Some(Stage::Cancelled);
                self.message = format!("cancelled: {reason}");
            }
        }
        // Rounded to 1e-6 so that sums of shares read as people expect
        // (1, not 0.9999999999999999); rounding keeps the order.
        let next = (next * 1e6).round() / 1e6;
        self.fraction = match event {
            E::DocumentUploaded(_) | E::ReprocessRequested { .. } => next,
            _ => self.fraction.max(next).min(1.0),
        };
    }

    /// ", partial: N of M pages could not be read" when some could not.
    fn partial(&self) -> String {
        if self.pages_failed == 0 {
            return String::new();
        }
        format!(
            ", partial: {} of {} pages could not be read",
            self.pages_failed, self.pages_total
        )
    }

    fn reset(&mut self, run: u32) {
        *self = Self {
            run,
            sequence: self.sequence,
            event_type: self.event_type,
            ..Self::default()
        };
    }
}

/// "1 chunk", "2 chunks".
fn chunks_word(n: u64) -> String {
    if n == 1 {
        "1 chunk".into()
    } else {
        format!("{n} chunks")
    }
}

/// The event without the bulk the fold never reads (chunk texts, vectors),
/// so that what progress keeps and queues is ids and counts, not megabytes.
pub fn slim(mut event: DocumentEvent) -> DocumentEvent {
    match &mut event {
        DocumentEvent::DocumentChunked { chunks, .. } => {
            chunks.iter_mut().for_each(|c| c.text = String::new());
        }
        DocumentEvent::ChunksEmbedded { vectors, .. } => {
            vectors.iter_mut().for_each(|v| v.vector = Vec::new());
        }
        _ => {}
    }
    event
}

fn ratio(done: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{ChunkRecord, ChunkVector};
    use crate::ids::Sha256Hex;

    fn uploaded() -> DocumentEvent {
        DocumentEvent::DocumentUploaded(crate::document::UploadedDocument::sample())
    }

    fn fold(events: &[DocumentEvent]) -> Vec<Progress> {
        let mut p = Progress::default();
        events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                p.apply(i as u64 + 1, e);
                p.clone()
            })
            .collect()
    }

    fn chunk(id: &str) -> ChunkRecord {
        ChunkRecord {
            chunk_id: id.into(),
            ordinal: 0,
            text: format!("the text of {id}"),
            page_start: 1,
            page_end: 1,
            tokens: 1,
        }
    }

    /// Every stage of one run, upload to indexed.
    fn full_run() -> Vec<DocumentEvent> {
        vec![
            uploaded(),
            DocumentEvent::ExtractionProgressed {
                run: 1,
                pages_done: 1,
                pages_total: 2,
            },
            DocumentEvent::ExtractionProgressed {
                run: 1,
                pages_done: 2,
                pages_total: 2,
            },
            DocumentEvent::TextExtracted {
                run: 1,
                text_sha256: Sha256Hex::from_digest(&[1; 32]),
                pages: 2,
                chars: 10,
                extractor: "pdf-rs".into(),
                pages_failed: 0,
            },
            DocumentEvent::DocumentChunked {
                run: 1,
                batch: 0,
                last: true,
                chunks: vec![chunk("a"), chunk("b")],
            },
            DocumentEvent::ChunksEmbedded {
                run: 1,
                model: "m".into(),
                dims: 1,
                vectors: vec![ChunkVector {
                    chunk_id: "a".into(),
                    vector: vec![1.0],
                }],
                backfill: false,
            },
            DocumentEvent::DocumentIndexed { run: 1, chunks: 2 },
        ]
    }

    #[test]
    fn a_full_run_moves_forward_to_one() {
        let events = full_run();
        let steps = fold(&events);
        for w in steps.windows(2) {
            assert!(w[1].fraction >= w[0].fraction, "{:?}", w);
        }
        assert!((steps[1].fraction - EXTRACT_SHARE / 2.0).abs() < 1e-9);
        assert_eq!(steps[5].chunks_embedded, 1);
        let last = steps.last().unwrap();
        assert_eq!(last.stage, Some(Stage::Indexed));
        // Exactly 1, not a float sum's 0.9999999999999999.
        assert_eq!(last.fraction, 1.0);
        assert_eq!(last.failure, None);
        assert!(last.is_terminal());
        assert_eq!(last.sequence, 7);
    }

    #[test]
    fn a_partial_extraction_is_said_until_the_end() {
        let mut events = full_run();
        if let DocumentEvent::TextExtracted { pages_failed, .. } = &mut events[3] {
            *pages_failed = 1;
        }
        let steps = fold(&events);
        assert_eq!(steps[3].pages_failed, 1);
        assert!(
            steps[3]
                .message
                .contains("partial: 1 of 2 pages could not be read"),
            "{}",
            steps[3].message
        );
        let last = steps.last().unwrap();
        assert_eq!(last.stage, Some(Stage::Indexed));
        assert!(
            last.message
                .ends_with("partial: 1 of 2 pages could not be read"),
            "{}",
            last.message
        );
        // A whole extraction says nothing of the kind.
        let whole = fold(&full_run());
        assert!(whole.iter().all(|p| !p.message.contains("partial")));
    }

    #[test]
    fn a_backfill_after_indexing_changes_nothing_the_user_sees() {
        let mut p = Progress::default();
        for (i, e) in full_run().iter().enumerate() {
            p.apply(i as u64 + 1, e);
        }
        let before = p.clone();
        p.apply(
            99,
            &DocumentEvent::ChunksEmbedded {
                run: 1,
                model: "other".into(),
                dims: 1,
                vectors: vec![ChunkVector {
                    chunk_id: "a".into(),
                    vector: vec![1.0],
                }],
                backfill: true,
            },
        );
        assert_eq!(p, before);
    }

    #[test]
    fn slim_events_fold_the_same() {
        let events = full_run();
        let slimmed: Vec<_> = events.iter().cloned().map(slim).collect();
        assert_eq!(fold(&events), fold(&slimmed));
        assert!(
            matches!(&slimmed[4], DocumentEvent::DocumentChunked { chunks, .. } if chunks[0].text.is_empty())
        );
        assert!(
            matches!(&slimmed[5], DocumentEvent::ChunksEmbedded { vectors, .. } if vectors[0].vector.is_empty())
        );
    }

    #[test]
    fn out_of_order_progress_never_goes_backwards() {
        let steps = fold(&[
            uploaded(),
            DocumentEvent::ExtractionProgressed {
                run: 1,
                pages_done: 8,
                pages_total: 10,
            },
            DocumentEvent::ExtractionProgressed {
                run: 1,
                pages_done: 3,
                pages_total: 10,
            },
        ]);
        assert_eq!(steps[2].fraction, steps[1].fraction);
    }

    #[test]
    fn failure_keeps_the_fraction_and_says_why() {
        let steps = fold(&[
            uploaded(),
            DocumentEvent::ExtractionProgressed {
                run: 1,
                pages_done: 1,
                pages_total: 4,
            },
            DocumentEvent::DocumentFailed {
                run: 1,
                stage: Stage::Extracting,
                reason: "no text layer (OCR not supported)".into(),
                retryable: false,
                code: crate::document::FailureCode::NoTextLayer,
            },
        ]);
        let last = steps.last().unwrap();
        assert_eq!(last.stage, Some(Stage::Failed));
        assert!(last.message.contains("no text layer"));
        assert!(last.fraction > 0.0);
        assert!(last.is_terminal());
        // Where and what, for clients that branch without reading prose.
        assert_eq!(
            last.failure,
            Some((Stage::Extracting, crate::document::FailureCode::NoTextLayer))
        );
        // A reprocess starts clean.
        let mut p = last.clone();
        p.apply(
            9,
            &DocumentEvent::ReprocessRequested {
                run: 2,
                reason: "r".into(),
            },
        );
        assert_eq!(p.failure, None);
    }

    #[test]
    fn reprocess_restarts_and_ignores_the_old_run() {
        let steps = fold(&[
            uploaded(),
            DocumentEvent::ReprocessRequested {
                run: 2,
                reason: "r".into(),
            },
            DocumentEvent::ExtractionProgressed {
                run: 1,
                pages_done: 9,
                pages_total: 10,
            },
        ]);
        let last = steps.last().unwrap();
        assert_eq!(last.run, 2);
        assert_eq!(last.fraction, 0.0);
        assert_eq!(last.stage, Some(Stage::Uploaded));
        assert_eq!(last.sequence, 3);
    }
}
