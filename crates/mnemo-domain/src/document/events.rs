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

/// Everything that can happen to a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DocumentEvent {
    /// Emitted by the API on Upload, after the bytes are in the blob store.
    /// Consumed by the extractor (starts run 1), the projector, progress.
    DocumentUploaded(UploadedDocument),
    /// Emitted (throttled) by the extractor while it reads pages.
    ExtractionProgressed {
        run: u32,
        pages_done: u32,
        pages_total: u32,
    },
    /// Emitted by the extractor; the text lives in the blob store.
    /// Consumed by the chunker.
    TextExtracted {
        run: u32,
        text_sha256: Sha256Hex,
        pages: u32,
        chars: u64,
        /// Which extractor produced the text (e.g. `pdf-rs`, `pdftotext`, `utf8`).
        extractor: String,
    },
    /// Emitted by the chunker, in numbered batches; `last` closes the set.
    /// Consumed by the embedder and the projector.
    DocumentChunked {
        run: u32,
        batch: u32,
        last: bool,
        chunks: Vec<ChunkRecord>,
    },
    /// Emitted by the embedder (batched, possibly across documents), and by
    /// `mnemo backfill embed` with `backfill: true` for another model's
    /// vectors of an indexed run. Consumed by the projector (both), progress
    /// and stage timings (the pipeline's only: see [`Self::is_replay`]).
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
    /// Emitted by the projector once every chunk of the run is stored.
    DocumentIndexed { run: u32, chunks: u32 },
    /// Emitted by any stage that gives up on the document.
    /// Schema v2 added `code` (v1 events are upcast: see `document::upcast`).
    DocumentFailed {
        run: u32,
        stage: Stage,
        reason: String,
        retryable: bool,
        code: FailureCode,
    },
    /// Emitted by the API on Cancel.
    ProcessingCancelled { run: u32, reason: String },
    /// Emitted by the API on Reprocess; starts run `run` from the stored upload.
    ReprocessRequested { run: u32, reason: String },
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

    /// The variant's name, as written in the `Mnemo-Event-Type` header.
    pub fn name(&self) -> &'static str {
        match self {
            Self::DocumentUploaded(_) => "DocumentUploaded",
            Self::ExtractionProgressed { .. } => "ExtractionProgressed",
            Self::TextExtracted { .. } => "TextExtracted",
            Self::DocumentChunked { .. } => "DocumentChunked",
            Self::ChunksEmbedded { .. } => "ChunksEmbedded",
            Self::DocumentIndexed { .. } => "DocumentIndexed",
            Self::DocumentFailed { .. } => "DocumentFailed",
            Self::ProcessingCancelled { .. } => "ProcessingCancelled",
            Self::ReprocessRequested { .. } => "ReprocessRequested",
        }
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
