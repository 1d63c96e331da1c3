//! The document aggregate: one uploaded file and its trip through the pipeline.
//!
//! ```text
//!  Upload ─▶ uploaded ─▶ extracting ─▶ chunking ─▶ embedding ─▶ indexed
//!               │            │            │            │
//!               └────────────┴────────────┴────────────┴─▶ failed | cancelled
//!  Reprocess (from any stage) ─▶ uploaded, run + 1
//! ```
//!
//! Every processing run has a number. Pipeline services record results *for a
//! run*; a result for a run that was cancelled or superseded by a reprocess is
//! rejected, so a slow worker can never overwrite newer work. Results are also
//! idempotent: a redelivered result that is already recorded appends nothing.
//!
//! - [`events`]: what happened (`DocumentEvent`), one variant per fact.
//! - [`commands`]: what may be asked (`DocumentCommand`).
//! - [`aggregate`]: `handle` (decide) and `apply` (fold), pure.
//! - [`error`]: why a command was refused, with a kind for callers to map.
//! - [`failure`]: `FailureCode`, the kind of a failure (`DocumentFailed` v2).
//! - [`upcast`]: reading older event schemas as current ones.
//! - [`vector_codec`]: embeddings as base64 f32s inside events.

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod failure;
pub mod upcast;
pub mod vector_codec;

pub use aggregate::{Document, IndexedRun, Stage};
pub use commands::DocumentCommand;
pub use error::{DocumentError, DocumentErrorKind};
pub use events::{ChunkRecord, ChunkVector, DocumentEvent, DocumentEventKind, UploadedDocument};
pub use failure::FailureCode;

/// The aggregate id of a document: `<owner token>.<document id>`, which is
/// also the tail of its subject (`<ns>.ev.doc.<owner token>.<document id>`).
pub fn aggregate_id(owner: &crate::OwnerId, id: &crate::DocumentId) -> String {
    format!("{}.{}", owner.token(), id)
}
