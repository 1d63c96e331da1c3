//! The embedding runtime for mnemo's embedder service: onnxruntime loading,
//! the all-MiniLM-L6-v2 model through fastembed, and batched, L2-normalised
//! 384-d sentence vectors.
//!
//! Owns: finding and loading onnxruntime (`ORT_DYLIB_PATH`) with typed errors
//! instead of ort's panics, loading the model prepared by
//! `deploy/model/prepare.sh` (`MNEMO_MODEL_DIR`) with mean pooling, the model
//! id that keys caches, bounded batching, and token counting with the
//! model's own tokenizer.
//! Must not: know about NATS, events, documents or chunks. It embeds the
//! texts it is given; deciding what a chunk is (and keeping it within
//! `max_length` tokens) is the chunker's job, and the service loop lives
//! elsewhere.
//!
//! # Layout
//! - [`config`]: `EmbedderConfig` and `ModelSource` (local export or hub).
//! - [`runtime`]: loading onnxruntime once per process; `check_runtime` for
//!   `mnemo doctor`.
//! - [`model`]: model files → fastembed `TextEmbedding`, model id, dims.
//! - [`embedder`]: `Embedder`: `embed`, `count_tokens`, `model_id`, `dims`.
//! - [`error`]: `EmbedError` and its `kind()`.
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

pub mod config;
pub mod embedder;
pub mod error;
pub mod model;
pub mod runtime;

pub use config::{EmbedderConfig, ModelSource};
pub use embedder::Embedder;
pub use error::{EmbedError, EmbedErrorKind};
pub use runtime::{check_runtime, init_runtime, RuntimeInfo};
