//! mnemo's domain: events, commands, aggregates and the pure logic around them.
//!
//! Owns: what a document *is* (its events and the state machine that decides
//! which command may append which event), how an owner id becomes a safe
//! subject token, how uploaded bytes are classified, how a document's
//! (or a batch's, or an owner's) events fold into progress, and the
//! learner's cards and topics with the FSRS-6 scheduling of reviews.
//! Must not: do I/O. Nothing here knows NATS, PostgreSQL or gRPC, and every
//! function can be tested without an async runtime.
//!
//! # Layout
//! - [`owner`]: owner ids and the subject-safe token derived from them.
//! - [`ids`]: document ids and SHA-256 content hashes.
//! - [`chunking`]: cutting text into model-sized chunks with page spans.
//! - [`content`]: sniffing uploaded bytes (PDF, plain text, Markdown).
//! - [`document`]: the document aggregate: commands, events, errors, state.
//! - [`learn`]: the learner's history: topics, cards and their reviews, and
//!   FSRS-6 scheduling (`learn::fsrs`).
//! - [`progress`]: the fold of a document's events into stage/fraction/message.
//! - [`progress_set`]: the fold of a batch's or an owner's documents (counts, overall fraction).
//! - [`text`]: extracted text as the extractor stores it for the chunker.
//! - [`schema`]: event schema versions and their upcasters; [`schema::EventKind`],
//!   an event type as consumers filter on it.
//! - [`refusal`]: what a refused command means to the service whose result it was (moot or not).

pub mod chunking;
pub mod content;
pub mod document;
pub mod ids;
pub mod learn;
pub mod owner;
pub mod progress;
pub mod progress_set;
pub mod refusal;
pub mod schema;
pub mod text;

pub use document::{
    Document, DocumentCommand, DocumentError, DocumentErrorKind, DocumentEvent, DocumentEventKind,
    FailureCode, Stage,
};
pub use ids::{DocumentId, Sha256Hex};
pub use owner::{OwnerError, OwnerId};
pub use refusal::Refusal;
