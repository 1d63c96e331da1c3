//! Document events: past-tense facts, appended only by the document aggregate.
//!
//! Payload format: serde JSON, adjacently tagged (`{"type": …, "data": …}`);
//! the schema version of each type is [`DocumentEvent::event_version`]. The
//! catalogue with subjects, emitters and consumers is docs/events.md.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::content::ContentType;
use crate::document::{FailureCode, Stage};
use crate::ids::{DocumentId, Sha256Hex};
use crate::owner::OwnerId;

/// One chunk of a document's text, as the chunker cut it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Stable: derived from (document, ordinal, text hash).
    pub chunk_id: String,
    pub ordinal: u32,
    pub text: String,
    /// First and last page (1-based) the chunk's text comes from.
    pub page_start: u32,
    pub page_end: u32,
    /// Word-pieces under the embedding model's tokenizer, specials included.
    pub tokens: u32,
}

/// One chunk's embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkVector {
    pub chunk_id: String,
    /// Base64 of the little-endian f32s on the wire since schema v2 of
    /// `ChunksEmbedded` (v1's number lists still read).
    #[serde(with = "crate::document::vector_codec")]
    pub vector: Vec<f32>,
}

/// What an upload says about a document: the `Upload` command's content and
/// the `DocumentUploaded` event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadedDocument {
    pub document_id: DocumentId,
    pub owner: OwnerId,
    pub filename: String,
    pub content_type: ContentType,
    pub size_bytes: u64,
    /// Address of the uploaded bytes in the blob store.
    pub sha256: Sha256Hex,
    pub topic: Option<String>,
    pub batch_id: String,
    pub idempotency_key: Option<String>,
    /// The uploader's own id for the document (e.g. a corpus id), echoed
    /// in lists and search hits. Added after v1 as an optional field: older
    /// events read as `None`, so the schema version did not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Everything that can happen to a document.
///
/// Each variant says who emits it (service and the [`DocumentCommand`]
/// whose `decide` appends it) and every consumer in the code; the same
/// catalogue, with payloads, is docs/events.md. Beyond the consumers
/// named per variant, every event is folded by the aggregate's own `apply`
/// (each command's load, and `DocumentService.Get`), and the projector's
/// `stage_timings` projection folds every event but a backfill's through
/// [`DocumentEvent::stage_after`]. Consumers filter on [`DocumentEventKind`]
/// (the `Mnemo-Event-Type` header) before decoding.
///
/// [`DocumentCommand`]: crate::document::DocumentCommand
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DocumentEvent {
    /// Emitted by the API (`DocumentService.Upload` → `Upload`), once the
    /// bytes are in the blob store.
    /// Consumed by the extractor (starts run 1 from the stored bytes), the
    /// projector (creates the `documents` row), progress (the document
    /// fold; the set fold takes batch membership from its `batch_id`).
    DocumentUploaded(UploadedDocument),
    /// Emitted by the extractor (`RecordExtractionProgress`), throttled,
    /// while it reads pages.
    /// Consumed by progress (pages done of total) and the projector
    /// (`documents.pages_total`).
    ExtractionProgressed {
        run: u32,
        pages_done: u32,
        pages_total: u32,
    },
    /// Emitted by the extractor (`RecordTextExtracted`); the text lives in
    /// the blob store under `text_sha256`.
    /// Consumed by the chunker (cuts the run's chunks), progress and the
    /// projector (`documents.pages_total`).
    TextExtracted {
        run: u32,
        text_sha256: Sha256Hex,
        pages: u32,
        chars: u64,
        /// Which extractor produced the text (e.g. `pdf-rs`, `pdftotext`, `utf8`).
        extractor: String,
        /// Pages that could not be read (empty in the text): the document
        /// goes on with what was read, and says it is partial. Added after
        /// v1 as a defaulted field, written only when above 0: the schema
        /// version did not change.
        #[serde(default, skip_serializing_if = "is_zero")]
        pages_failed: u32,
    },
    /// Emitted by the chunker (`RecordChunks`), in numbered batches; `last`
    /// closes the set.
    /// Consumed by the embedder (embeds the batch), the projector (`chunks`
    /// rows, the document's chunk count, and whether the run is now fully
    /// embedded → `MarkIndexed`), progress (chunks to embed), and the
    /// embedding backfill (reads the indexed run's chunk texts from these
    /// events, through the aggregate's messages, when `DocumentIndexed`
    /// reaches it).
    DocumentChunked {
        run: u32,
        batch: u32,
        last: bool,
        chunks: Vec<ChunkRecord>,
    },
    /// Emitted by the embedder (`RecordEmbeddings`, batched, possibly
    /// across documents), and by `mnemo backfill embed`
    /// (`RecordBackfillEmbeddings`, with `backfill: true`) for another
    /// model's vectors of an indexed run.
    /// Consumed by the projector (both: `chunk_embeddings` by model; the
    /// pipeline's only: whether the run is now fully embedded →
    /// `MarkIndexed`), progress (the pipeline's only: see
    /// [`Self::is_replay`]), and the search follower (a backfill of the
    /// served model reloads the document's vectors).
    ChunksEmbedded {
        run: u32,
        model: String,
        dims: u32,
        vectors: Vec<ChunkVector>,
        /// A backfill's vectors: the run was already indexed with another
        /// model. Added after v2 as a defaulted field, written only when
        /// true: the pipeline's events are unchanged on the wire.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        backfill: bool,
    },
    /// Emitted by the projector (`MarkIndexed`) once every chunk of the run
    /// is stored with its vector.
    /// Consumed by progress (indexed; counted done in a set), the projector
    /// (`documents.indexed_run`; drops older runs' chunks and vectors), the
    /// search follower (reloads the document's vectors and lexemes), and
    /// the embedding backfill (re-embeds that run with its model).
    DocumentIndexed { run: u32, chunks: u32 },
    /// Emitted by the extractor (a document it can never read: no text
    /// layer, damaged, password; or after its last retry), the chunker and
    /// the embedder (after their last retry), each through `RecordFailure`.
    /// Consumed by progress (failed, with the reason; counted failed in a
    /// set) and the projector (`documents.reason`).
    /// Schema v2 added `code` (v1 events are upcast: see `document::upcast`).
    DocumentFailed {
        run: u32,
        stage: Stage,
        reason: String,
        retryable: bool,
        code: FailureCode,
    },
    /// Emitted by the API (`DocumentService.Cancel` → `Cancel`).
    /// Consumed by progress (cancelled; counted in a set) and the projector
    /// (`documents.reason`). No stage reacts to it: the aggregate refuses
    /// the run's later results, and the stages drop them.
    ProcessingCancelled { run: u32, reason: String },
    /// Emitted by the API (`DocumentService.Reprocess` → `Reprocess`) and
    /// by `mnemo dlq retry` (`Reprocess` for a dead letter's document);
    /// starts run `run` from the stored upload.
    /// Consumed by the extractor (starts the run), the projector (resets
    /// the row's counts) and progress (starts the bar again).
    ReprocessRequested { run: u32, reason: String },
}

/// The type of a [`DocumentEvent`] without its payload: what consumers
/// filter on (e.g. `Delivery::has_event_type` in `mnemo-bus`), so a
/// service names the events it handles through this enum, never by a
/// string. [`DocumentEventKind::name`] is the `Mnemo-Event-Type` header's
/// value and the payload's serde tag (tested below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentEventKind {
    DocumentUploaded,
    ExtractionProgressed,
    TextExtracted,
    DocumentChunked,
    ChunksEmbedded,
    DocumentIndexed,
    DocumentFailed,
    ProcessingCancelled,
    ReprocessRequested,
}

impl DocumentEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 9] = [
        Self::DocumentUploaded,
        Self::ExtractionProgressed,
        Self::TextExtracted,
        Self::DocumentChunked,
        Self::ChunksEmbedded,
        Self::DocumentIndexed,
        Self::DocumentFailed,
        Self::ProcessingCancelled,
        Self::ReprocessRequested,
    ];

    /// The type's name, as written in the `Mnemo-Event-Type` header and the
    /// payload's `type` tag.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DocumentUploaded => "DocumentUploaded",
            Self::ExtractionProgressed => "ExtractionProgressed",
            Self::TextExtracted => "TextExtracted",
            Self::DocumentChunked => "DocumentChunked",
            Self::ChunksEmbedded => "ChunksEmbedded",
            Self::DocumentIndexed => "DocumentIndexed",
            Self::DocumentFailed => "DocumentFailed",
            Self::ProcessingCancelled => "ProcessingCancelled",
            Self::ReprocessRequested => "ReprocessRequested",
        }
    }
}

#[cfg(test)]
impl UploadedDocument {
    /// A one-byte PDF upload for tests: a fresh id, owner `o`, batch `b`.
    pub(crate) fn sample() -> Self {
        Self {
            document_id: DocumentId::new(),
            owner: OwnerId::new("o").unwrap(),
            filename: "a.pdf".into(),
            content_type: ContentType::Pdf,
            size_bytes: 1,
            sha256: Sha256Hex::from_digest(&[0; 32]),
            topic: None,
            batch_id: "b".into(),
            idempotency_key: None,
            external_id: None,
        }
    }
}

impl DocumentEvent {
    /// The processing run an event belongs to (uploads start run 1).
    pub fn run(&self) -> u32 {
        match self {
            Self::DocumentUploaded(_) => 1,
            Self::ExtractionProgressed { run, .. }
            | Self::TextExtracted { run, .. }
            | Self::DocumentChunked { run, .. }
            | Self::ChunksEmbedded { run, .. }
            | Self::DocumentIndexed { run, .. }
            | Self::DocumentFailed { run, .. }
            | Self::ProcessingCancelled { run, .. }
            | Self::ReprocessRequested { run, .. } => *run,
        }
    }

    /// Whether the event replays work for a run that already ended (a
    /// backfill's vectors): read models store it, but nothing the user
    /// watches (progress, stage, timings, `updated_at`) moves for it.
    pub fn is_replay(&self) -> bool {
        matches!(self, Self::ChunksEmbedded { backfill: true, .. })
    }

    /// The stage a document is in right after this event. A pure function
    /// of the event alone, so read models can derive stages without the
    /// aggregate's state.
    pub fn stage_after(&self) -> Stage {
        match self {
            // Only accepted for an indexed run, which it leaves indexed.
            Self::ChunksEmbedded { backfill: true, .. } => Stage::Indexed,
            Self::DocumentUploaded(_) | Self::ReprocessRequested { .. } => Stage::Uploaded,
            Self::ExtractionProgressed { .. } => Stage::Extracting,
            Self::TextExtracted { .. } => Stage::Chunking,
            Self::DocumentChunked { last: true, .. } | Self::ChunksEmbedded { .. } => {
                Stage::Embedding
            }
            Self::DocumentChunked { last: false, .. } => Stage::Chunking,
            Self::DocumentIndexed { .. } => Stage::Indexed,
            Self::DocumentFailed { .. } => Stage::Failed,
            Self::ProcessingCancelled { .. } => Stage::Cancelled,
        }
    }

    /// The event's type, without its payload.
    pub fn kind(&self) -> DocumentEventKind {
        use DocumentEventKind as K;
        match self {
            Self::DocumentUploaded(_) => K::DocumentUploaded,
            Self::ExtractionProgressed { .. } => K::ExtractionProgressed,
            Self::TextExtracted { .. } => K::TextExtracted,
            Self::DocumentChunked { .. } => K::DocumentChunked,
            Self::ChunksEmbedded { .. } => K::ChunksEmbedded,
            Self::DocumentIndexed { .. } => K::DocumentIndexed,
            Self::DocumentFailed { .. } => K::DocumentFailed,
            Self::ProcessingCancelled { .. } => K::ProcessingCancelled,
            Self::ReprocessRequested { .. } => K::ReprocessRequested,
        }
    }

    /// The variant's name, as written in the `Mnemo-Event-Type` header.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

impl DomainEvent for DocumentEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            // v2: `code` added (upcaster in `document::upcast`).
            Self::DocumentFailed { .. } => "2",
            // v2: vectors as base64 f32s (`document::vector_codec` reads v1 too).
            Self::ChunksEmbedded { .. } => "2",
            _ => "1",
        }
        .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::EventKind;
    use DocumentEventKind as K;

    /// One event of `kind`. The match is exhaustive, so a new kind cannot
    /// be added without an event to check its name against.
    fn sample(kind: DocumentEventKind) -> DocumentEvent {
        let run = 1;
        match kind {
            K::DocumentUploaded => DocumentEvent::DocumentUploaded(UploadedDocument::sample()),
            K::ExtractionProgressed => DocumentEvent::ExtractionProgressed {
                run,
                pages_done: 1,
                pages_total: 2,
            },
            K::TextExtracted => DocumentEvent::TextExtracted {
                run,
                text_sha256: Sha256Hex::from_digest(&[1; 32]),
                pages: 2,
                chars: 10,
                extractor: "utf8".into(),
                pages_failed: 0,
            },
            K::DocumentChunked => DocumentEvent::DocumentChunked {
                run,
                batch: 0,
                last: true,
                chunks: Vec::new(),
            },
            K::ChunksEmbedded => DocumentEvent::ChunksEmbedded {
                run,
                model: "m".into(),
                dims: 2,
                vectors: vec![ChunkVector {
                    chunk_id: "c".into(),
                    vector: vec![0.5, -1.0],
                }],
                backfill: false,
            },
            K::DocumentIndexed => DocumentEvent::DocumentIndexed { run, chunks: 1 },
            K::DocumentFailed => DocumentEvent::DocumentFailed {
                run,
                stage: Stage::Extracting,
                reason: "damaged PDF".into(),
                retryable: false,
                code: FailureCode::Damaged,
            },
            K::ProcessingCancelled => DocumentEvent::ProcessingCancelled {
                run,
                reason: "r".into(),
            },
            K::ReprocessRequested => DocumentEvent::ReprocessRequested {
                run: 2,
                reason: "r".into(),
            },
        }
    }

    #[test]
    fn all_lists_every_kind_once_in_declaration_order() {
        for (i, kind) in K::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?}");
        }
    }

    /// The header (`Mnemo-Event-Type`, from `event_type`) and the payload's
    /// tag must never disagree: consumers filter on the one and decode the
    /// other.
    #[test]
    fn every_kind_name_is_its_variants_serde_tag_and_header() {
        for kind in K::ALL {
            let event = sample(kind);
            assert_eq!(event.kind(), kind);
            assert_eq!(event.name(), kind.name());
            assert_eq!(EventKind::name(&kind), kind.name());
            assert_eq!(event.event_type(), kind.name(), "header of {kind:?}");
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], kind.name(), "serde tag of {kind:?}");
            let back: DocumentEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back.kind(), kind);
        }
    }
}
