//! What to embed with: the model source and the knobs that bound memory and
//! CPU ([`EmbedderConfig`], validated before anything is loaded); the
//! service's flags ([`EmbedderArgs`], flattened into `mnemo serve` and the
//! benchmarks that embed) and what the service runs with
//! ([`EmbedderServiceConfig`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::batcher::BatchPlan;
use crate::error::EmbedError;
use crate::Embedder;

/// Nice value of the embedder service's main session by default (its
/// express session, `crate::express`, runs at [`DEFAULT_EXPRESS_NICE`]).
pub const DEFAULT_NICE: i32 = 10;
/// The express session's default `--embed-express-nice`.
pub const DEFAULT_EXPRESS_NICE: i32 = 2;

/// Documents in flight at once by default: enough that the batching queue
/// never runs dry while one delivery appends its events.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How the embedder uses the machine: the embedder service's flags, with
/// `MNEMO_EMBED_*` env fallbacks. The model directory and the longest
/// text are shared with the chunker and the API, so the binary passes them.
#[derive(clap::Args, Debug, Clone)]
pub struct EmbedderArgs {
    /// onnxruntime intra-op threads (default: every core); for a model
    /// that quantizes per call, that many one-thread sessions side by side.
    #[arg(long, env = "MNEMO_EMBED_THREADS")]
    pub embed_threads: Option<usize>,
    /// Most padded tokens (texts × longest) per model call; bounds memory.
    #[arg(long, env = "MNEMO_EMBED_TOKEN_BUDGET", default_value_t = BatchPlan::default().token_budget)]
    pub embed_token_budget: usize,
    /// Most texts per model call. A model that quantizes per call (the
    /// int8 model served by default) gets one text per call whatever this
    /// says, so its vectors never depend on what else was queued
    /// (docs/decisions/020-int8-model-one-text-per-call.md).
    #[arg(long, env = "MNEMO_EMBED_MAX_TEXTS", default_value_t = BatchPlan::default().max_texts, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub embed_max_texts: usize,
    /// Let idle onnxruntime threads spin (faster alone, worse beside other services).
    #[arg(long, env = "MNEMO_EMBED_SPIN")]
    pub embed_spin: bool,
    /// onnxruntime's CPU memory arena (`false`: tensors are freed after
    /// each batch instead of kept for the next; measured to cost more
    /// memory, not less: docs/benchmarks.md, *Abuse*).
    #[arg(long, env = "MNEMO_EMBED_ARENA", default_value_t = true, action = clap::ArgAction::Set)]
    pub embed_arena: bool,
    /// How much nicer (0..=19, added to the process's nice value) the main
    /// model session's threads run: documents are embedded with what
    /// queries, the API and the express session leave of the cores (alone,
    /// at full speed). 0: the process's priority.
    #[arg(long, env = "MNEMO_EMBED_NICE", default_value_t = DEFAULT_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub embed_nice: i32,
    /// A second model session for owners whose documents would wait behind
    /// another owner's batch (`false`: one session, ~90 MB less; see
    /// `mnemo_embedder::express`).
    #[arg(long, env = "MNEMO_EMBED_EXPRESS", default_value_t = true, action = clap::ArgAction::Set)]
    pub embed_express: bool,
    /// How much nicer (0..=19, like `--embed-nice`) the express session's
    /// threads run: between queries (the process's priority, so a
    /// search never waits behind a document's model call) and the main
    /// session (`--embed-nice`), so a learner's small upload still goes
    /// ahead of another owner's batch.
    #[arg(long, env = "MNEMO_EMBED_EXPRESS_NICE", default_value_t = DEFAULT_EXPRESS_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub embed_express_nice: i32,
    /// Documents the embedder works on at once (all feed its batching
    /// queues: the main one and, for owners beside another's batch, the
    /// express one).
    #[arg(long, env = "MNEMO_EMBED_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub embed_concurrency: usize,
    /// How long a delivery may go unacknowledged before JetStream hands it
    /// to another copy; the embedder reports progress every quarter of it.
    #[arg(long, env = "MNEMO_EMBED_ACK_WAIT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub embed_ack_wait: Duration,
}

impl EmbedderArgs {
    /// The model runtime's configuration for the export in `model_dir`.
    pub fn config(&self, model_dir: PathBuf) -> EmbedderConfig {
        let mut config = EmbedderConfig::local(model_dir)
            .with_spin_wait(self.embed_spin)
            .with_arena(self.embed_arena);
        if let Some(t) = self.embed_threads {
            config = config.with_threads(t);
        }
        config
    }

    /// How the service's queue cuts batches.
    pub fn plan(&self) -> BatchPlan {
        BatchPlan {
            token_budget: self.embed_token_budget,
            max_texts: self.embed_max_texts,
            ..Default::default()
        }
    }

    /// The service's configuration around a loaded `model` (and `express`,
    /// a second session of it, when `--embed-express` asks for one).
    pub fn service(
        &self,
        model: Arc<Embedder>,
        express: Option<Arc<Embedder>>,
    ) -> EmbedderServiceConfig {
        EmbedderServiceConfig {
            model,
            express,
            concurrency: self.embed_concurrency,
            plan: self.plan(),
            ack_wait: self.embed_ack_wait,
            fair: mnemo_bus::fair::FairShare::default(),
        }
    }
}

/// What the embedder service runs with. The model is loaded by the caller
/// (`mnemo serve all` shares one with search).
#[derive(Debug, Clone)]
pub struct EmbedderServiceConfig {
    pub model: Arc<Embedder>,
    /// A second session of the same model for owners arriving beside
    /// another owner's work (`crate::express`); None: one queue.
    pub express: Option<Arc<Embedder>>,
    /// Deliveries in flight at once, all feeding the batching queues.
    pub concurrency: usize,
    pub plan: BatchPlan,
    /// JetStream's ack wait for the embedder's consumer.
    pub ack_wait: Duration,
    /// Read-ahead that serves owners in turn (`mnemo_bus::fair`).
    pub fair: mnemo_bus::fair::FairShare,
}

impl EmbedderServiceConfig {
    /// The defaults around `model`.
    pub fn new(model: Arc<Embedder>) -> Self {
        Self {
            model,
            express: None,
            concurrency: DEFAULT_CONCURRENCY,
            plan: BatchPlan::default(),
            ack_wait: Duration::from_secs(15),
            fair: mnemo_bus::fair::FairShare::default(),
        }
    }
}

/// The environment variable `deploy/model/prepare.sh` writes into
/// `.mnemo/model.env`, naming the prepared model directory.
pub const MODEL_DIR_ENV: &str = "MNEMO_MODEL_DIR";

/// Word pieces per text, special tokens included. The chunker keeps chunks
/// within this; all-MiniLM-L6-v2 was trained at 256 (its position table has
/// 512, the upper bound accepted here).
pub const DEFAULT_MAX_LENGTH: usize = 256;
/// The model's position table: no text can be longer than this.
pub const MAX_MAX_LENGTH: usize = 512;

/// Texts per onnxruntime call. fastembed pads each batch to its longest text
/// and holds the whole batch's `[batch, seq, 384]` output, so the batch size
/// bounds memory: 64 × 256 × 384 × 4 B ≈ 25 MB of hidden states.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Upper bound for `batch_size` (256 × 256 × 384 × 4 B ≈ 100 MB per batch).
pub const MAX_BATCH_SIZE: usize = 256;

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A directory prepared by `deploy/model/prepare.sh`: `model.onnx` (inputs
    /// `input_ids`, `attention_mask`, `token_type_ids`; output
    /// `last_hidden_state`), `tokenizer.json`, `config.json`,
    /// `special_tokens_map.json` and `tokenizer_config.json`. Loaded through
    /// fastembed's user-defined model API with mean pooling. This is the
    /// deployed path: it needs no network.
    LocalDir(PathBuf),
    /// A fastembed model name (`EmbeddingModel`'s variant name, matched
    /// case-insensitively, e.g. `"AllMiniLML6V2"`), downloaded from the
    /// Hugging Face hub into fastembed's cache (`FASTEMBED_CACHE_DIR`, or
    /// `HF_HOME`). Needs the `hub` cargo feature and internet access; mnemo's
    /// own machines use `LocalDir`.
    Hub(String),
}

/// How the embedder is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderConfig {
    pub model: ModelSource,
    /// Longest text in word pieces, special tokens included. Longer texts
    /// are truncated by the tokenizer, not refused: keeping chunks short
    /// is the chunker's job (see [`crate::Embedder::count_tokens`]).
    pub max_length: usize,
    /// Texts per onnxruntime call, 1..=256.
    pub batch_size: usize,
    /// onnxruntime intra-op threads; `None` uses every available core. A
    /// model that quantizes per call gets this many single-threaded
    /// sessions instead ([`crate::Embedder`]).
    pub threads: Option<usize>,
    /// Whether onnxruntime's idle intra-op threads spin instead of sleeping.
    /// Spinning saves microseconds per operator on an idle machine, but next
    /// to other services it burns the cores they need (and a descheduled
    /// spinner stalls the rest of the batch), so it is off by default.
    pub spin_wait: bool,
    /// Whether onnxruntime keeps its CPU memory arena (on by default: its
    /// peak is lower than the allocator's without it; docs/benchmarks.md,
    /// *Abuse*).
    pub arena: bool,
    /// The session's threads run this much nicer than the thread that
    /// builds it (0: the same; see [`crate::priority`]).
    pub nice: i32,
    /// Lets a model that quantizes its activations per call (dynamic int8)
    /// embed several texts per call anyway. Off by default: such a model
    /// gets one text per call, because otherwise a text's vector depends
    /// on the texts it shares the call with (docs/decisions/020). On only
    /// to measure what that costs (the tests and `mnemo bench embed`).
    pub shared_quantized_calls: bool,
}

impl EmbedderConfig {
    /// Defaults for a model source: max length 256, batch size 64, all cores.
    pub fn new(model: ModelSource) -> Self {
        Self {
            model,
            max_length: DEFAULT_MAX_LENGTH,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: None,
            spin_wait: false,
            arena: true,
            nice: 0,
            shared_quantized_calls: false,
        }
    }

    /// The prepared local export in `dir`, with defaults.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Self::new(ModelSource::LocalDir(dir.into()))
    }

    /// The local export named by `MNEMO_MODEL_DIR`, with defaults.
    pub fn from_env() -> Result<Self, EmbedError> {
        Self::from_model_dir_var(std::env::var_os(MODEL_DIR_ENV))
    }

    // Split from `from_env` so the unset/empty cases are testable without
    // mutating the process environment.
    fn from_model_dir_var(value: Option<std::ffi::OsString>) -> Result<Self, EmbedError> {
        match value {
            Some(dir) if !dir.is_empty() => Ok(Self::local(PathBuf::from(dir))),
            _ => Err(EmbedError::Config(format!(
                "{MODEL_DIR_ENV} is not set: run deploy/model/prepare.sh and source .mnemo/model.env"
            ))),
        }
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    pub fn with_spin_wait(mut self, spin_wait: bool) -> Self {
        self.spin_wait = spin_wait;
        self
    }

    pub fn with_arena(mut self, arena: bool) -> Self {
        self.arena = arena;
        self
    }

    /// Runs the session's threads at `nice` (0..=19).
    pub fn with_nice(mut self, nice: i32) -> Self {
        self.nice = nice;
        self
    }

    /// Lets a dynamically quantized model take `batch_size` texts per call
    /// (see [`EmbedderConfig::shared_quantized_calls`]).
    pub fn with_shared_quantized_calls(mut self, shared: bool) -> Self {
        self.shared_quantized_calls = shared;
        self
    }

    /// Refuses values fastembed would reject late or silently clamp.
    pub fn validate(&self) -> Result<(), EmbedError> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(EmbedError::Config(format!(
                "batch_size must be 1..={MAX_BATCH_SIZE}, got {}",
                self.batch_size
            )));
        }
        // Below 2 nothing but [CLS] and [SEP] would fit.
        if !(3..=MAX_MAX_LENGTH).contains(&self.max_length) {
            return Err(EmbedError::Config(format!(
                "max_length must be 3..={MAX_MAX_LENGTH}, got {}",
                self.max_length
            )));
        }
        if self.threads == Some(0) {
            return Err(EmbedError::Config("threads must be at least 1".into()));
        }
        if !(0..=19).contains(&self.nice) {
            return Err(EmbedError::Config(format!(
                "nice must be 0..=19, got {}",
                self.nice
            )));
        }
        match &self.model {
            ModelSource::LocalDir(dir) if dir.as_os_str().is_empty() => {
                Err(EmbedError::Config("the model directory is empty".into()))
            }
            ModelSource::Hub(name) if name.trim().is_empty() => {
                Err(EmbedError::Config("the hub model name is empty".into()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EmbedErrorKind;

    #[test]
    fn defaults() {
        let config = EmbedderConfig::local("/m");
        assert_eq!(config.model, ModelSource::LocalDir("/m".into()));
        assert_eq!(config.max_length, 256);
        assert_eq!(config.batch_size, 64);
        assert_eq!(config.threads, None);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn model_dir_from_env_value() {
        let config = EmbedderConfig::from_model_dir_var(Some("/x/all-MiniLM-L6-v2".into()));
        assert_eq!(
            config.map(|c| c.model).ok(),
            Some(ModelSource::LocalDir("/x/all-MiniLM-L6-v2".into()))
        );
        for unset in [None, Some("".into())] {
            let err = EmbedderConfig::from_model_dir_var(unset).err();
            let err = err.map(|e| (e.kind(), e.to_string()));
            assert!(
                matches!(&err, Some((EmbedErrorKind::Config, m)) if m.contains("deploy/model/prepare.sh")),
                "{err:?}"
            );
        }
    }

    #[test]
    fn flag_defaults_are_the_service_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            embedder: EmbedderArgs,
        }
        let Ok(cli) = Cli::try_parse_from(["t"]) else {
            panic!("defaults parse")
        };
        let args = cli.embedder;
        assert_eq!(args.embed_concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(args.embed_ack_wait, Duration::from_secs(15));
        assert_eq!(args.plan(), BatchPlan::default());
        assert!(Cli::try_parse_from(["t", "--embed-max-texts", "0"]).is_err());
        let one = Cli::try_parse_from(["t", "--embed-max-texts", "1"]).map(|c| c.embedder.plan());
        assert_eq!(one.map(|p| p.max_texts).ok(), Some(1));
        assert_eq!(args.config("/m".into()), EmbedderConfig::local("/m"));
        assert!(Cli::try_parse_from(["t", "--embed-concurrency", "0"]).is_err());
    }

    #[test]
    fn bounds_are_enforced() {
        let base = EmbedderConfig::local("/m");
        for bad in [
            base.clone().with_batch_size(0),
            base.clone().with_batch_size(257),
            base.clone().with_max_length(2),
            base.clone().with_max_length(513),
            base.clone().with_threads(0),
            base.clone().with_nice(20),
            base.clone().with_nice(-1),
            EmbedderConfig::local(""),
            EmbedderConfig::new(ModelSource::Hub(" ".into())),
        ] {
            let err = bad.validate().err().map(|e| e.kind());
            assert_eq!(err, Some(EmbedErrorKind::Config), "{bad:?}");
        }
        assert!(base
            .with_batch_size(256)
            .with_max_length(512)
            .validate()
            .is_ok());
    }
}
