//! `mnemo serve [all|api|extractor|chunker|embedder|projector]`: runs
//! services until SIGTERM or Ctrl-C.
//!
//! `all` runs every service in one process; each can also run alone (and in
//! N copies: they share their durable consumers).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mnemo_api::{ApiConfig, ApiState};
use mnemo_bus::{Bus, Namespace};
use mnemo_projector::ProjectorConfig;
use tokio::sync::watch;

use crate::cli::{Backend, Global};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    /// Every service in one process.
    All,
    /// The gRPC API.
    Api,
    /// Text out of uploads (PDF through a sandboxed child process).
    Extractor,
    /// Text into model-sized chunks.
    Chunker,
    /// Chunks into vectors.
    Embedder,
    /// PostgreSQL read models; declares runs indexed.
    Projector,
}

/// How the embedder uses the machine (the embedder service, and the
/// benchmarks that embed).
#[derive(Args, Clone, Debug)]
pub struct EmbedArgs {
    /// onnxruntime intra-op threads (default: every core).
    #[arg(long, env = "MNEMO_EMBED_THREADS")]
    pub embed_threads: Option<usize>,
    /// Most padded tokens (texts × longest) per model call; bounds memory.
    #[arg(long, env = "MNEMO_EMBED_TOKEN_BUDGET", default_value_t = mnemo_embedder::batcher::BatchPlan::default().token_budget)]
    pub embed_token_budget: usize,
    /// Let idle onnxruntime threads spin (faster alone, worse beside other services).
    #[arg(long, env = "MNEMO_EMBED_SPIN")]
    pub embed_spin: bool,
    /// Documents the embedder works on at once (all feed one batching queue).
    #[arg(long, env = "MNEMO_EMBED_CONCURRENCY", default_value_t = mnemo_embedder::service::DEFAULT_CONCURRENCY)]
    pub embed_concurrency: usize,
}

impl EmbedArgs {
    pub fn config(&self, model_dir: PathBuf) -> mnemo_embedder::EmbedderConfig {
        let mut config =
            mnemo_embedder::EmbedderConfig::local(model_dir).with_spin_wait(self.embed_spin);
        if let Some(t) = self.embed_threads {
            config = config.with_threads(t);
        }
        config
    }

    pub fn plan(&self) -> mnemo_embedder::batcher::BatchPlan {
        mnemo_embedder::batcher::BatchPlan {
            token_budget: self.embed_token_budget,
            ..Default::default()
        }
    }
}

/// How search fuses its lexical and vector lists (reciprocal rank fusion:
/// Σ weight / (k + rank)).
#[derive(Args, Clone, Debug)]
pub struct FusionArgs {
    /// The RRF constant k: larger flattens the advantage of top ranks.
    #[arg(long, env = "MNEMO_RRF_K", default_value_t = mnemo_search::Fusion::default().k)]
    pub rrf_k: f64,
    /// Weight of the full-text list.
    #[arg(long, env = "MNEMO_RRF_LEXICAL_WEIGHT", default_value_t = mnemo_search::Fusion::default().lexical_weight)]
    pub rrf_lexical_weight: f64,
    /// Weight of the vector list.
    #[arg(long, env = "MNEMO_RRF_VECTOR_WEIGHT", default_value_t = mnemo_search::Fusion::default().vector_weight)]
    pub rrf_vector_weight: f64,
    /// BM25 term-frequency saturation (k1) of the full-text list.
    #[arg(long, env = "MNEMO_BM25_K1", default_value_t = mnemo_search::Bm25::default().k1)]
    pub bm25_k1: f64,
    /// BM25 length normalisation (b, 0..=1) of the full-text list.
    #[arg(long, env = "MNEMO_BM25_B", default_value_t = mnemo_search::Bm25::default().b)]
    pub bm25_b: f64,
}

impl FusionArgs {
    pub fn fusion(&self) -> anyhow::Result<mnemo_search::Fusion> {
        let f = mnemo_search::Fusion {
            k: self.rrf_k,
            lexical_weight: self.rrf_lexical_weight,
            vector_weight: self.rrf_vector_weight,
        };
        if !(f.k >= 0.0 && f.lexical_weight >= 0.0 && f.vector_weight >= 0.0)
            || f.lexical_weight + f.vector_weight == 0.0
        {
            anyhow::bail!(
                "--rrf-k and the RRF weights must be non-negative, and one weight positive"
            );
        }
        Ok(f)
    }

    pub fn bm25(&self) -> anyhow::Result<mnemo_search::Bm25> {
        if !(self.bm25_k1 >= 0.0 && (0.0..=1.0).contains(&self.bm25_b)) {
            anyhow::bail!("--bm25-k1 must be non-negative and --bm25-b within 0..=1");
        }
        Ok(mnemo_search::Bm25 {
            k1: self.bm25_k1,
            b: self.bm25_b,
        })
    }
}

/// The search vector index: when an owner gets an HNSW graph, and the
/// graph's knobs (decision 012).
#[derive(Args, Clone, Debug)]
pub struct VectorArgs {
    /// Owners (and filtered searches) with fewer vectors than this are scanned exactly.
    #[arg(long, env = "MNEMO_SEARCH_EXACT_BELOW", default_value_t = mnemo_search::vectors::DEFAULT_EXACT_BELOW)]
    pub search_exact_below: usize,
    /// HNSW links per node (M).
    #[arg(long, env = "MNEMO_SEARCH_HNSW_M", default_value_t = mnemo_search::vectors::AnnConfig::default().connectivity)]
    pub search_hnsw_m: usize,
    /// HNSW candidate list while building (efConstruction).
    #[arg(long, env = "MNEMO_SEARCH_HNSW_EF_CONSTRUCTION", default_value_t = mnemo_search::vectors::AnnConfig::default().expansion_add)]
    pub search_hnsw_ef_construction: usize,
    /// HNSW candidate list while searching (ef).
    #[arg(long, env = "MNEMO_SEARCH_HNSW_EF", default_value_t = mnemo_search::vectors::AnnConfig::default().expansion_search)]
    pub search_hnsw_ef: usize,
    /// Threads a graph build uses (default: every core).
    #[arg(long, env = "MNEMO_SEARCH_BUILD_THREADS")]
    pub search_build_threads: Option<usize>,
}

impl VectorArgs {
    pub fn config(&self) -> mnemo_search::VectorConfig {
        let mut ann = mnemo_search::vectors::AnnConfig {
            connectivity: self.search_hnsw_m.max(2),
            expansion_add: self.search_hnsw_ef_construction.max(1),
            expansion_search: self.search_hnsw_ef.max(1),
            ..Default::default()
        };
        if let Some(t) = self.search_build_threads {
            ann.build_threads = t.max(1);
        }
        mnemo_search::VectorConfig {
            exact_below: self.search_exact_below,
            ann,
            ..Default::default()
        }
    }
}

/// How text is cut into chunks (the chunker) and how long a text the model
/// takes (the embedder): one setting, so no chunk is ever truncated.
#[derive(Args, Clone, Debug)]
pub struct ChunkArgs {
    /// Longest chunk, in the model's word pieces with its special tokens:
    /// the model's max sequence length (256 for all-MiniLM-L6-v2).
    #[arg(long, env = "MNEMO_MAX_TOKENS", default_value_t = mnemo_domain::chunking::ChunkParams::default().max_tokens)]
    pub max_tokens: usize,
    /// A chunk this long ends at the next paragraph break.
    #[arg(long, env = "MNEMO_CHUNK_TARGET_TOKENS", default_value_t = mnemo_domain::chunking::ChunkParams::default().target_tokens)]
    pub chunk_target_tokens: usize,
    /// Tokens repeated from one chunk at the start of the next.
    #[arg(long, env = "MNEMO_CHUNK_OVERLAP_TOKENS", default_value_t = mnemo_domain::chunking::ChunkParams::default().overlap_tokens)]
    pub chunk_overlap_tokens: usize,
}

impl ChunkArgs {
    pub fn params(&self) -> anyhow::Result<mnemo_domain::chunking::ChunkParams> {
        let p = mnemo_domain::chunking::ChunkParams {
            max_tokens: self.max_tokens,
            target_tokens: self.chunk_target_tokens,
            overlap_tokens: self.chunk_overlap_tokens,
        };
        if p.max_tokens < 8 || p.target_tokens > p.max_tokens || p.overlap_tokens >= p.target_tokens
        {
            anyhow::bail!(
                "chunk settings must satisfy 8 <= --max-tokens, --chunk-target-tokens <= --max-tokens and --chunk-overlap-tokens < --chunk-target-tokens (got {}, {}, {})",
                p.max_tokens, p.target_tokens, p.overlap_tokens
            );
        }
        Ok(p)
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(value_enum, default_value = "all")]
    pub service: Service,
    #[command(flatten)]
    pub backend: Backend,
    #[arg(long, env = "MNEMO_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// HS256 secret; overrides --jwt-secret-file.
    #[arg(long, env = "MNEMO_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The prepared embedding model (deploy/model/prepare.sh); needed by the
    /// chunker (its tokenizer) and the embedder.
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// More prepared models the API loads to embed queries with, so that
    /// `mnemo model use` can switch search to one of them (e.g. after
    /// `mnemo backfill embed`). Comma-separated in the env variable.
    #[arg(long, env = "MNEMO_EXTRA_MODEL_DIRS", value_delimiter = ',')]
    pub extra_model_dir: Vec<PathBuf>,
    /// The model whose vectors answer searches at start (an id, or a name
    /// without its hash; default: --model-dir's).
    #[arg(long, env = "MNEMO_SEARCH_MODEL")]
    pub search_model: Option<String>,
    #[command(flatten)]
    pub embed: EmbedArgs,
    #[command(flatten)]
    pub chunk: ChunkArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub vectors: VectorArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MNEMO_MAX_UPLOAD_BYTES", default_value_t = mnemo_api::config::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
}

/// The chat model for answers and cards (optional): an OpenAI-compatible
/// chat-completions endpoint. The key is read from MNEMO_LLM_API_KEY only,
/// never from a flag (flags show in process lists).
#[derive(Args, Clone, Debug)]
pub struct LlmArgs {
    /// Base URL, e.g. http://127.0.0.1:8080/v1 (POST {base}/chat/completions).
    #[arg(long, env = "MNEMO_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// The model name sent with each request.
    #[arg(long, env = "MNEMO_LLM_MODEL")]
    pub llm_model: Option<String>,
}

impl LlmArgs {
    /// The client, when a base URL is configured.
    pub fn client(&self) -> anyhow::Result<Option<mnemo_qa::llm::openai::OpenAiClient>> {
        let Some(base) = self.llm_base_url.as_deref().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let model = self
            .llm_model
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("--llm-base-url needs --llm-model (or MNEMO_LLM_MODEL)")
            })?;
        let config = mnemo_qa::LlmConfig::new(base, model)
            .with_api_key(std::env::var("MNEMO_LLM_API_KEY").ok());
        Ok(Some(mnemo_qa::llm::openai::OpenAiClient::new(config)?))
    }
}

/// Resolves when the process is asked to stop.
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    let ns = Namespace::new(&args.backend.namespace)?;
    let bus = Bus::start(&args.backend.nats_url, ns.clone(), args.backend.replicas)
        .await
        .context(
            "starting the event bus (is nats-server running with JetStream? try `mnemo doctor`)",
        )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();

    let projector_config = ProjectorConfig::new(ns.clone(), &args.backend.database_url);
    // The schema must exist before the API answers List.
    mnemo_projector::runner::prepare(&projector_config)
        .await
        .context("preparing PostgreSQL (try `mnemo doctor`)")?;

    if matches!(args.service, Service::All | Service::Projector) {
        let (bus, rx) = (bus.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mnemo_projector::run(bus, projector_config, stopped(rx))
                .await
                .context("projector")
        });
    }
    let runs = |s: Service| args.service == Service::All || args.service == s;
    if runs(Service::Extractor) {
        let (bus, rx) = (bus.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mnemo_extractor::run(
                &bus,
                mnemo_extractor::ExtractorConfig::default(),
                stopped(rx),
            )
            .await
            .context("extractor")
        });
    }
    // One model per process, shared by the embedder service and search.
    let wants_model = runs(Service::Embedder) || (runs(Service::Api) && args.model_dir.is_some());
    let model = if wants_model {
        let dir = args.model_dir.clone().context(
            "the embedder needs the prepared model: run deploy/model/prepare.sh and source .mnemo/model.env (or pass --model-dir)",
        )?;
        let config = args
            .embed
            .config(dir)
            .with_max_length(args.chunk.max_tokens);
        let model = tokio::task::spawn_blocking(move || mnemo_embedder::Embedder::new(config))
            .await?
            .map_err(|e| anyhow::anyhow!(e.report()))?;
        tracing::info!(model = model.model_id(), "embedding model loaded");
        Some(Arc::new(model))
    } else {
        None
    };
    if runs(Service::Chunker) {
        let dir = args
            .model_dir
            .clone()
            .context("the chunker needs the prepared model's tokenizer: run deploy/model/prepare.sh and source .mnemo/model.env (or pass --model-dir)")?;
        let tokenizer = mnemo_chunker::ModelTokenizer::from_model_dir(&dir)?;
        let params = args.chunk.params()?;
        let (bus, rx) = (bus.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mnemo_chunker::run(&bus, tokenizer, params, stopped(rx))
                .await
                .context("chunker")
        });
    }
    if let (true, Some(model)) = (runs(Service::Embedder), &model) {
        let (bus, rx, model) = (bus.clone(), stop_rx.clone(), model.clone());
        let (concurrency, plan) = (args.embed.embed_concurrency, args.embed.plan());
        tasks.spawn(async move {
            mnemo_embedder::service::run(&bus, model, concurrency, plan, stopped(rx))
                .await
                .context("embedder")
        });
    }
    if matches!(args.service, Service::All | Service::Api) {
        let secret = crate::secret::load(global, args.jwt_secret.as_deref(), true)?;
        let mut config = ApiConfig::new(args.listen, &args.backend.database_url, secret);
        config.max_upload_bytes = args.max_upload_bytes;
        // The API embeds queries with any of its models; one serves.
        let mut embedders: Vec<Arc<mnemo_embedder::Embedder>> = model.iter().cloned().collect();
        for dir in &args.extra_model_dir {
            let config = args
                .embed
                .config(dir.clone())
                .with_max_length(args.chunk.max_tokens);
            let extra = tokio::task::spawn_blocking(move || mnemo_embedder::Embedder::new(config))
                .await?
                .map_err(|e| anyhow::anyhow!(e.report()))?;
            tracing::info!(model = extra.model_id(), "extra model loaded for search");
            embedders.push(Arc::new(extra));
        }
        let served = match &args.search_model {
            Some(wanted) => Some(
                embedders
                    .iter()
                    .find(|e| mnemo_api::search_models::names(e.model_id(), wanted))
                    .with_context(|| format!("--search-model {wanted} is not among the loaded models (--model-dir, --extra-model-dir)"))?,
            ),
            None => embedders.first(),
        };
        let index = mnemo_search::VectorIndex::with_config(
            served.map(|m| m.dims()).unwrap_or(384),
            args.vectors.config(),
        );
        let index = match served {
            Some(m) => index.for_model(m.model_id()),
            None => index,
        };
        let index = Arc::new(mnemo_search::Indexes::new(
            index,
            mnemo_search::TermIndex::new(args.fusion.bm25()?),
        ));
        if served.is_none() {
            tracing::warn!("no --model-dir: search answers from full text only");
        }
        let mut state =
            ApiState::new(bus.clone(), config)
                .await?
                .with_search(mnemo_api::search::SearchState {
                    index: index.clone(),
                    embedders,
                    fusion: args.fusion.fusion()?,
                });
        if let Some(llm) = args.llm.client()? {
            tracing::info!(model = mnemo_qa::Llm::model(&llm), base_url = ?args.llm.llm_base_url, "answers and cards may use the LLM");
            state = state.with_llm(Arc::new(llm));
        }
        let (b, url, rx) = (
            bus.clone(),
            args.backend.database_url.clone(),
            stop_rx.clone(),
        );
        // It follows the stream forever: stop it with the rest, or the
        // process never exits after SIGTERM.
        tasks.spawn(async move {
            tokio::select! {
                r = mnemo_search::follow(b, url, index) => r.context("search index"),
                _ = stopped(rx) => Ok(()),
            }
        });
        let state = Arc::new(state);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            mnemo_api::serve(state, listener, stopped(rx))
                .await
                .context("gRPC API")
        });
    }

    let mut code = ExitCode::SUCCESS;
    tokio::select! {
        _ = stop_signal() => tracing::info!("stopping"),
        Some(done) = tasks.join_next() => {
            // A service ended on its own: that is a failure whatever it
            // returned (e.g. its consumer was deleted); stop the others too.
            match done {
                Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "service failed"),
                Ok(Ok(())) => tracing::error!("a service stopped unexpectedly"),
                Err(e) => tracing::error!(error = %e, "a service panicked"),
            }
            code = ExitCode::FAILURE;
        }
    }
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!(error = %format!("{e:#}"), "service failed while stopping");
            code = ExitCode::FAILURE;
        }
    }
    Ok(code)
}
