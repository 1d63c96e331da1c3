//! The embedding runtime for mnemo's embedder service: onnxruntime loading,
//! the all-MiniLM-L6-v2 model through fastembed, and batched, L2-normalised
//! 384-d sentence vectors.
//!
//! Owns: finding and loading onnxruntime (`ORT_DYLIB_PATH`) with typed errors
//! instead of ort's panics, loading the model prepared by
//! `deploy/model/prepare.sh` (`MNEMO_MODEL_DIR`) with mean pooling, the model
//! id that keys caches, bounded batching, and token counting with the
//! model's own tokenizer.
//! It also holds the embedder *service* ([`run`], [`handler`]): consumes
//! `DocumentChunked` (durable consumer `<ns>_embedder`), appends
//! `ChunksEmbedded` through the document aggregate; and the embedding
//! *backfill* ([`backfill`]): consumes `DocumentIndexed` from sequence 1
//! (durable consumer `<ns>_backfill-embed-<model>`), appends another
//! model's `ChunksEmbedded { backfill: true }`.
//! Must not: decide what a chunk is (and keeping it within `max_length`
//! tokens) — that is the chunker's job. Only [`handler`] and [`backfill`]
//! know NATS and events; the runtime modules embed the texts they are given.
//!
//! # Layout
//! - [`config`]: `EmbedderConfig` and `ModelSource` (local export or hub);
//!   the service's flags (`EmbedderArgs`) and `EmbedderServiceConfig`.
//! - [`runtime`]: loading onnxruntime once per process; `check_runtime` for
//!   `mnemo doctor`.
//! - [`model`]: model files → fastembed `TextEmbedding`, model id, dims.
//! - [`fetch`]: a hub model into a prepared directory (`hub` feature).
//! - [`embedder`]: `Embedder`: `embed`, `count_tokens`, `model_id`, `dims`.
//! - [`error`]: `EmbedError` (the runtime's) and `EmbedderError` (the
//!   service's, with the consumer outcome of each), each with its `kind()`.
//! - [`batcher`]: one queue in front of the model; length-sorted batches
//!   across documents within a padded-token budget.
//! - [`express`]: the main queue and the express one (a second session for
//!   owners who would wait behind another owner's batch), and the rule
//!   that picks between them.
//! - [`priority`]: running bulk model threads nice, so waiting people
//!   get the cores first.
//! - [`handler`]: the service's consumer handler (cache, queue, progress).
//! - [`backfill`]: re-embedding indexed runs with another model, with
//!   progress, stop and resume.
//!
//! # Use
//! ```no_run
//! # fn main() -> Result<(), mnemo_embedder::EmbedError> {
//! // after `deploy/model/prepare.sh && source .mnemo/model.env`
//! let embedder = mnemo_embedder::Embedder::new(mnemo_embedder::EmbedderConfig::from_env()?)?;
//! let vectors = embedder.embed(&["Spaced repetition works.".to_string()])?;
//! assert_eq!(vectors[0].len(), embedder.dims());
//! # Ok(())
//! # }
//! ```

pub mod backfill;
pub mod batcher;
pub mod config;
pub mod embedder;
pub mod error;
pub mod express;
pub mod fetch;
pub mod handler;
pub mod model;
pub mod priority;
pub mod runtime;

pub use config::{EmbedderArgs, EmbedderConfig, EmbedderServiceConfig, ModelSource};
pub use embedder::Embedder;
pub use error::{EmbedError, EmbedErrorKind, EmbedderError, EmbedderErrorKind};
pub use runtime::{check_runtime, init_runtime, RuntimeInfo};

/// Runs the embedder service until `shutdown` resolves: its durable
/// consumer `<ns>_embedder` on the document subjects, `concurrency`
/// deliveries in flight, all feeding one batching queue.
pub async fn run(
    bus: mnemo_bus::Bus,
    config: EmbedderServiceConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), EmbedderError> {
    let mut spec =
        mnemo_bus::ConsumerSpec::new("embedder", format!("{}.>", bus.namespace.events_of("doc")));
    spec.concurrency = config.concurrency.max(1);
    spec.ack_wait = config.ack_wait;
    // Owners in turn: at the consumer (which document starts next) and in
    // the batching queue (whose texts fill the next batch).
    let spec = spec.with_fair_share(config.fair.clone());
    let service = handler::EmbedderService::new(&bus, &config);
    let result = mnemo_bus::consumer::run(&bus, spec, service.clone(), shutdown).await;
    let (cache_hits, shared, embedded, batches, failed) = service.stats().snapshot();
    // What the express session took (owners beside another's batch).
    let (_, _, express_embedded, express_batches, _) = service
        .express_stats()
        .map(|s| s.snapshot())
        .unwrap_or_default();
    tracing::info!(
        cache_hits,
        shared,
        embedded,
        batches,
        failed,
        express_embedded,
        express_batches,
        "embedder stopped"
    );
    Ok(result?)
}
