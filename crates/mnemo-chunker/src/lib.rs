//! The chunker: cuts a document's extracted text into chunks the embedding
//! model takes whole, each with its page span.
//!
//! Consumes: `TextExtracted` (durable consumer `<ns>_chunker`).
//! Emits (through the document aggregate): `DocumentChunked` in numbered
//! batches (each message well under 256 KB), the last one marked `last`.
//! Must not: decide how chunks are cut — that is
//! [`mnemo_domain::chunking`], pure and tested; this crate feeds it the
//! model's tokenizer and the stored text, and appends the result.
//!
//! # Layout
//! - [`tokenizer`]: the model's tokenizer as a [`mnemo_domain::chunking::TokenCounter`].
//! - [`handler`]: the consumer handler.

pub mod handler;
pub mod tokenizer;

pub use handler::Chunker;
pub use tokenizer::{ModelTokenizer, TokenizerError};

/// Runs the chunker until `shutdown` resolves.
pub async fn run(
    bus: &mnemo_bus::Bus,
    tokenizer: ModelTokenizer,
    params: mnemo_domain::chunking::ChunkParams,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), mnemo_bus::BusError> {
    let spec =
        mnemo_bus::ConsumerSpec::new("chunker", format!("{}.>", bus.namespace.events_of("doc")));
    let handler = Chunker::new(bus, tokenizer, params).await?;
    mnemo_bus::consumer::run(bus, spec, handler, shutdown).await
}
