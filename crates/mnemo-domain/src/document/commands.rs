//! Document commands: imperatives, decided by [`super::Document::handle`].

use serde::{Deserialize, Serialize};

use crate::document::{ChunkRecord, ChunkVector, Stage, UploadedDocument};
use crate::ids::Sha256Hex;

/// What can be asked of a document. The API sends `Upload`, `Cancel` and
/// `Reprocess`; pipeline services send the `Record*` commands for a run;
/// `mnemo backfill embed` sends `RecordBackfillEmbeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DocumentCommand {
    Upload(UploadedDocument),
    RecordExtractionProgress {
        run: u32,
        pages_done: u32,
        pages_total: u32,
    },
    RecordTextExtracted {
        run: u32,
        text_sha256: Sha256Hex,
        pages: u32,
        chars: u64,
        extractor: String,
        /// Pages that could not be read (0: all were).
        pages_failed: u32,
    },
    RecordChunks {
        run: u32,
        batch: u32,
        last: bool,
        chunks: Vec<ChunkRecord>,
    },
    RecordEmbeddings {
        run: u32,
        model: String,
        dims: u32,
        vectors: Vec<ChunkVector>,
    },
    /// Another model's vectors for the indexed current run (a backfill).
    RecordBackfillEmbeddings {
        run: u32,
        model: String,
        dims: u32,
        vectors: Vec<ChunkVector>,
    },
    MarkIndexed {
        run: u32,
    },
    RecordFailure {
        run: u32,
        stage: Stage,
        reason: String,
        retryable: bool,
    },
    Cancel {
        reason: String,
    },
    Reprocess {
        reason: String,
    },
}

impl DocumentCommand {
    /// The command's name, for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Upload(_) => "Upload",
            Self::RecordExtractionProgress { .. } => "RecordExtractionProgress",
            Self::RecordTextExtracted { .. } => "RecordTextExtracted",
            Self::RecordChunks { .. } => "RecordChunks",
            Self::RecordEmbeddings { .. } => "RecordEmbeddings",
            Self::RecordBackfillEmbeddings { .. } => "RecordBackfillEmbeddings",
            Self::MarkIndexed { .. } => "MarkIndexed",
            Self::RecordFailure { .. } => "RecordFailure",
            Self::Cancel { .. } => "Cancel",
            Self::Reprocess { .. } => "Reprocess",
        }
    }
}
