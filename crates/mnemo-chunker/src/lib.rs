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
//! - [`config`]: its flags ([`ChunkerArgs`]) and what it needs to run.
//! - [`error`]: [`ChunkerError`], its kind and the consumer outcome of each.
//! - [`tokenizer`]: the model's tokenizer as a [`mnemo_domain::chunking::TokenCounter`].
//! - [`handler`]: the consumer handler.

pub mod config;
pub mod error;
pub mod handler;
pub mod tokenizer;

pub use config::{ChunkerArgs, ChunkerConfig};
pub use error::{ChunkerError, ChunkerErrorKind};
pub use handler::Chunker;
pub use tokenizer::{ModelTokenizer, TokenizerError};

/// Runs the chunker until `shutdown` resolves: its durable consumer
/// `<ns>_chunker` on the document subjects, the model's tokenizer loaded
/// from `config.model_dir` first (a missing one fails the start).
pub async fn run(
    bus: mnemo_bus::Bus,
    config: ChunkerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ChunkerError> {
    let dir = config.model_dir.clone();
    let tokenizer =
        tokio::task::spawn_blocking(move || ModelTokenizer::from_model_dir(&dir)).await??;
    let spec = mnemo_bus::ConsumerSpec::document_events(&bus.namespace, "chunker")
        .with_concurrency(config.concurrency)
        .with_fair_share(config.fair.clone())
        .with_ack_wait(config.ack_wait);
    let handler = Chunker::new(&bus, tokenizer, &config).await?;
    Ok(mnemo_bus::consumer::run(&bus, spec, handler, shutdown).await?)
}
