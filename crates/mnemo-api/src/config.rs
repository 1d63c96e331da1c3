//! API configuration: its flags (flattened into `mnemo serve`, env
//! fallbacks `MNEMO_*`) and what [`crate::run`] and [`crate::ApiState`]
//! are given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::ApiError;

/// Default upload size limit: 256 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;

/// The API's own flags. The JWT secret, the database and the model the
/// embedder shares with search come from the binary (they are not the
/// API's alone).
#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    #[arg(long, env = "MNEMO_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// More prepared models the API loads to embed queries with, so that
    /// `mnemo model use` can switch search to one of them (e.g. after
    /// `mnemo backfill embed`). Comma-separated in the env variable.
    #[arg(long, env = "MNEMO_EXTRA_MODEL_DIRS", value_delimiter = ',')]
    pub extra_model_dir: Vec<PathBuf>,
    /// The model whose vectors answer searches at start (an id, or a name
    /// without its hash; default: --model-dir's).
    #[arg(long, env = "MNEMO_SEARCH_MODEL")]
    pub search_model: Option<String>,
    /// onnxruntime threads of each model session that embeds queries (its
    /// own, not the embedder service's). Queries are short and batched: one
    /// thread answers a batch in milliseconds and leaves the other cores to
    /// the pipeline.
    #[arg(long, env = "MNEMO_SEARCH_THREADS", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub search_threads: usize,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MNEMO_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
    /// PostgreSQL sessions the API reads the read models through, at most
    /// (opened as concurrent calls need them; one runs its queries in turn).
    #[arg(long, env = "MNEMO_READ_CONNECTIONS", default_value_t = crate::server::DEFAULT_READ_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub read_connections: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub fusion: FusionArgs,
    #[command(flatten)]
    pub vectors: VectorArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
}

impl ApiArgs {
    /// The configuration of a server on `database_url` signing tokens with
    /// `jwt_secret`, embedding queries with `embedders` (the one serving
    /// search first unless `--search-model` names another).
    pub fn config(
        &self,
        database_url: &str,
        jwt_secret: Vec<u8>,
        embedders: Vec<Arc<mnemo_embedder::Embedder>>,
    ) -> Result<ServeConfig, ApiError> {
        let mut api = ApiConfig::new(self.listen, database_url, jwt_secret);
        api.max_upload_bytes = self.max_upload_bytes;
        api.read_connections = self.read_connections;
        api.limits = self.limits.config();
        api.auth = self.tokens.config(api.auth.hs256_secret.take())?;
        api.tls = self.tls.load()?;
        Ok(ServeConfig {
            api,
            embedders,
            search_model: self.search_model.clone(),
            vectors: self.vectors.config(),
            search_budget: self.vectors.budget(),
            bm25: self.fusion.bm25()?,
            fusion: self.fusion.fusion()?,
            llm: self
                .llm
                .client()?
                .map(|c| Arc::new(c) as Arc<dyn mnemo_qa::Llm>),
        })
    }
}

/// Everything [`crate::run`] needs besides the bus.
pub struct ServeConfig {
    pub api: ApiConfig,
    /// Every model queries may be embedded with (loaded by the caller).
    pub embedders: Vec<Arc<mnemo_embedder::Embedder>>,
    /// Which of them serves search at start (default: the first).
    pub search_model: Option<String>,
    pub vectors: mnemo_search::VectorConfig,
    /// Bytes of owners' search state held at most (least recently searched
    /// owners are dropped past it, and read again at their next search).
    pub search_budget: usize,
    pub bm25: mnemo_search::Bm25,
    pub fusion: mnemo_search::Fusion,
    /// Answers and cards with this chat model (extractive/offline without).
    pub llm: Option<Arc<dyn mnemo_qa::Llm>>,
}

/// TLS on the gRPC port (docs/security.md): a certificate and its key;
/// with a client CA, callers must present a certificate it signed (mutual
/// TLS, e.g. for service clients). Without them, plaintext.
#[derive(Args, Clone, Debug)]
pub struct TlsArgs {
    /// The server's certificate chain (PEM).
    #[arg(long, env = "MNEMO_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "MNEMO_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    #[arg(long, env = "MNEMO_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The PEM files, read now (a missing one fails the start).
    pub fn load(&self) -> Result<Option<TlsFiles>, ApiError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| ApiError::Config(format!("{}: {e}", p.display())))
        };
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        Ok(Some(TlsFiles {
            cert: read(cert)?,
            key: read(key)?,
            client_ca: self.tls_client_ca.as_ref().map(read).transpose()?,
        }))
    }
}

/// The server's TLS material, in PEM.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

/// The private key never shows in a log.
impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("key", &"<redacted>")
            .field("mutual", &self.client_ca.is_some())
            .finish()
    }
}

/// Which tokens the API accepts (docs/api.md: every claim).
#[derive(Args, Clone, Debug)]
pub struct TokenArgs {
    /// The audience (`aud`) every token must name.
    #[arg(long, env = "MNEMO_JWT_AUDIENCE", default_value = crate::auth::DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
    /// The longest lifetime (`exp - iat`) a token may have.
    #[arg(long, env = "MNEMO_JWT_MAX_LIFETIME", default_value = "31days", value_parser = humantime::parse_duration)]
    pub jwt_max_lifetime: std::time::Duration,
    /// An identity provider's JWK Set (JSON file): its RS256/ES256/EdDSA
    /// tokens are accepted, key chosen by `kid`, the file re-read when a
    /// token names a key it lacks (rotation).
    #[arg(long, env = "MNEMO_JWKS_FILE", conflicts_with = "jwks_url")]
    pub jwks_file: Option<PathBuf>,
    /// An identity provider's JWK Set URL (its `jwks_uri`; https, or http
    /// on loopback): fetched at start, every --jwks-refresh, and when a
    /// token names a key it lacks.
    #[arg(long, env = "MNEMO_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// How often the JWK Set URL is fetched again unasked.
    #[arg(long, env = "MNEMO_JWKS_REFRESH", default_value = "5min", value_parser = humantime::parse_duration)]
    pub jwks_refresh: std::time::Duration,
    /// The identity provider's issuer (`iss` of its tokens).
    #[arg(long, env = "MNEMO_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Where the roles are in a token: a claim, or a dotted path
    /// (`realm_access.roles` for Keycloak). `admin` among them makes an admin.
    #[arg(long, env = "MNEMO_JWT_ROLES_CLAIM", default_value = "roles")]
    pub jwt_roles_claim: String,
}

impl TokenArgs {
    /// The token rules, with mnemo's own HS256 secret if there is one.
    pub fn config(
        &self,
        hs256_secret: Option<Vec<u8>>,
    ) -> Result<crate::auth::AuthConfig, ApiError> {
        if self.jwt_audience.trim().is_empty() {
            return Err(ApiError::Config("--jwt-audience is empty".into()));
        }
        let jwks = match (&self.jwks_file, &self.jwks_url) {
            (Some(file), _) => Some(crate::auth::JwksSource::File(file.clone())),
            (None, Some(url)) => Some(crate::auth::JwksSource::Url(url.clone())),
            (None, None) => None,
        };
        if jwks.is_some() != self.jwt_issuer.is_some() {
            return Err(ApiError::Config(
                "--jwks-file or --jwks-url goes with --jwt-issuer (the identity provider's iss)"
                    .into(),
            ));
        }
        if let Some(source) = &jwks {
            source
                .check()
                .map_err(|e| ApiError::Config(e.to_string()))?;
        }
        Ok(crate::auth::AuthConfig {
            hs256_secret,
            jwks,
            jwks_issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            max_lifetime: self.jwt_max_lifetime,
            roles_claim: self.jwt_roles_claim.clone(),
            jwks_reload_every: crate::auth::JWKS_RELOAD_EVERY,
            jwks_refresh: self.jwks_refresh,
        })
    }
}

/// Everything the API's state needs besides the bus.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    /// Which tokens are accepted, and mnemo's own HS256 secret.
    pub auth: crate::auth::AuthConfig,
    /// TLS on the gRPC port (None: plaintext).
    pub tls: Option<TlsFiles>,
    pub max_upload_bytes: u64,
    /// Uploads larger than this are spooled to a temporary file, not memory.
    pub spool_memory_bytes: usize,
    /// PostgreSQL sessions for read-model queries, at most ([`crate::server::ReadDb`]).
    pub read_connections: usize,
    /// Longest a List waits for the read model to reach `min_sequence`.
    pub max_consistency_wait: Duration,
    /// Aggregates kept hot in the event store's cache.
    pub aggregate_cache: usize,
    /// Live messages a progress watcher may fall behind before it is told
    /// to resume from its last sequence.
    pub watch_queue: usize,
    /// Streams per connection, watchers per owner, keepalive, rates, quotas.
    pub limits: Limits,
    /// How long a stopping server waits for open calls (e.g. uploads,
    /// progress streams of clients that stopped reading) before closing them.
    pub shutdown_grace: Duration,
}

impl ApiConfig {
    pub fn new(listen: SocketAddr, database_url: impl Into<String>, jwt_secret: Vec<u8>) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            auth: crate::auth::AuthConfig::local(&jwt_secret),
            tls: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            spool_memory_bytes: 8 * 1024 * 1024,
            read_connections: crate::server::DEFAULT_READ_CONNECTIONS,
            max_consistency_wait: Duration::from_secs(10),
            aggregate_cache: 100_000,
            watch_queue: 4096,
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What one client may hold of the server (issue 18): past these, a call
/// is refused with `RESOURCE_EXHAUSTED` and the reason, or the connection
/// is told to slow down (HTTP/2 flow control), instead of the server
/// growing without bound.
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Calls (streams) one HTTP/2 connection may have open at once.
    #[arg(long, env = "MNEMO_GRPC_MAX_STREAMS", default_value_t = Limits::default().max_streams_per_connection)]
    pub grpc_max_streams: u32,
    /// Progress streams (Watch) one owner may have open at once, across
    /// connections.
    #[arg(long, env = "MNEMO_MAX_WATCHERS_PER_OWNER", default_value_t = Limits::default().max_watchers_per_owner)]
    pub max_watchers_per_owner: usize,
    /// HTTP/2 ping interval on idle connections; a peer that does not
    /// answer within as long again is disconnected.
    #[arg(long, env = "MNEMO_GRPC_KEEPALIVE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub grpc_keepalive: Duration,
    /// Longest an upload may go without sending its next part; it is then
    /// ended with DEADLINE_EXCEEDED and nothing of it is kept.
    #[arg(long, env = "MNEMO_UPLOAD_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub upload_idle_timeout: Duration,
    /// Largest file UploadFile takes in its one message (the browser's
    /// upload), in MiB; larger is OUT_OF_RANGE (Upload streams any size
    /// up to --max-upload-bytes). The message is held whole while it
    /// arrives: at most this much memory per call.
    #[arg(long, env = "MNEMO_MAX_UPLOAD_MESSAGE_MIB", default_value_t = Limits::default().max_upload_message_bytes >> 20, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_upload_message_mib: u64,
    /// UploadFile calls the server takes at once (each holds up to twice
    /// --max-upload-message-mib while it arrives and is decoded); more are
    /// RESOURCE_EXHAUSTED before their bytes are read.
    #[arg(long, env = "MNEMO_MAX_UPLOAD_FILE_CALLS", default_value_t = Limits::default().max_upload_file_calls, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub max_upload_file_calls: usize,
    /// Calls a second one owner may make to one service, sustained; more
    /// get RESOURCE_EXHAUSTED with a RetryInfo detail.
    #[arg(long, env = "MNEMO_RATE_PER_OWNER", default_value_t = crate::rate::RateConfig::default().per_second, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_per_owner: u32,
    /// Calls one owner may make to one service at once beyond that rate.
    #[arg(long, env = "MNEMO_RATE_BURST", default_value_t = crate::rate::RateConfig::default().burst, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,
    /// Calls the server handles at once, across connections; one more is
    /// refused with RESOURCE_EXHAUSTED (health checks never are).
    #[arg(long, env = "MNEMO_GRPC_MAX_CALLS", default_value_t = Limits::default().max_calls)]
    pub grpc_max_calls: usize,
    /// Longest a call's handler may run (not uploads; streams until their
    /// response starts); then DEADLINE_EXCEEDED.
    #[arg(long, env = "MNEMO_GRPC_CALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub grpc_call_timeout: Duration,
    /// Documents one owner may hold (every state counts); an upload past it
    /// is refused. 0: no limit.
    #[arg(long, env = "MNEMO_OWNER_MAX_DOCUMENTS", default_value_t = crate::quota::QuotaConfig::default().max_documents)]
    pub owner_max_documents: u64,
    /// MiB one owner may have uploaded, all documents together; an upload
    /// that would pass it is refused. 0: no limit.
    #[arg(long, env = "MNEMO_OWNER_MAX_MIB", default_value_t = crate::quota::QuotaConfig::default().max_bytes >> 20)]
    pub owner_max_mib: u64,
}

impl LimitArgs {
    pub fn config(&self) -> Limits {
        Limits {
            max_streams_per_connection: self.grpc_max_streams,
            max_watchers_per_owner: self.max_watchers_per_owner,
            max_calls: self.grpc_max_calls,
            call_timeout: self.grpc_call_timeout,
            keepalive: self.grpc_keepalive,
            upload_idle: self.upload_idle_timeout,
            max_upload_message_bytes: self.max_upload_message_mib << 20,
            max_upload_file_calls: self.max_upload_file_calls,
            rate: crate::rate::RateConfig {
                per_second: self.rate_per_owner,
                burst: self.rate_burst,
            },
            quota: crate::quota::QuotaConfig {
                max_documents: self.owner_max_documents,
                max_bytes: self.owner_max_mib.saturating_mul(1024 * 1024),
            },
        }
    }
}

/// The server's limits ([`LimitArgs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_streams_per_connection: u32,
    pub max_watchers_per_owner: usize,
    /// Calls handled at once ([`crate::call_limits`]).
    pub max_calls: usize,
    /// Longest a call's handler may run ([`crate::call_limits`]).
    pub call_timeout: Duration,
    pub keepalive: Duration,
    pub upload_idle: Duration,
    /// Largest file UploadFile takes in one message.
    pub max_upload_message_bytes: u64,
    /// UploadFile calls at once ([`crate::call_limits`]).
    pub max_upload_file_calls: usize,
    /// Per-owner, per-service call rate ([`crate::rate`]).
    pub rate: crate::rate::RateConfig,
    /// Per-owner storage ([`crate::quota`]).
    pub quota: crate::quota::QuotaConfig,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams_per_connection: 256,
            max_watchers_per_owner: 64,
            max_calls: 512,
            call_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(30),
            upload_idle: Duration::from_secs(30),
            max_upload_message_bytes: 32 << 20,
            max_upload_file_calls: 4,
            rate: crate::rate::RateConfig::default(),
            quota: crate::quota::QuotaConfig::default(),
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
    pub fn fusion(&self) -> Result<mnemo_search::Fusion, ApiError> {
        let f = mnemo_search::Fusion {
            k: self.rrf_k,
            lexical_weight: self.rrf_lexical_weight,
            vector_weight: self.rrf_vector_weight,
        };
        if !(f.k >= 0.0 && f.lexical_weight >= 0.0 && f.vector_weight >= 0.0)
            || f.lexical_weight + f.vector_weight == 0.0
        {
            return Err(ApiError::Config(
                "--rrf-k and the RRF weights must be non-negative, and one weight positive".into(),
            ));
        }
        Ok(f)
    }

    pub fn bm25(&self) -> Result<mnemo_search::Bm25, ApiError> {
        if !(self.bm25_k1 >= 0.0 && (0.0..=1.0).contains(&self.bm25_b)) {
            return Err(ApiError::Config(
                "--bm25-k1 must be non-negative and --bm25-b within 0..=1".into(),
            ));
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
    /// MiB of owners' search state (vectors, graphs, lexemes) held in
    /// memory; past it, the owners searched least recently are dropped and
    /// read again from PostgreSQL at their next search.
    #[arg(long, env = "MNEMO_SEARCH_MEMORY_MIB", default_value_t = (mnemo_search::DEFAULT_BUDGET >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub search_memory_mib: u64,
}

impl VectorArgs {
    /// `--search-memory-mib` in bytes.
    pub fn budget(&self) -> usize {
        usize::try_from(self.search_memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }

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
    pub fn client(&self) -> Result<Option<mnemo_qa::llm::openai::OpenAiClient>, ApiError> {
        let Some(base) = self.llm_base_url.as_deref().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let model = self
            .llm_model
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::Config("--llm-base-url needs --llm-model (or MNEMO_LLM_MODEL)".into())
            })?;
        let config = mnemo_qa::LlmConfig::new(base, model)
            .with_api_key(std::env::var("MNEMO_LLM_API_KEY").ok());
        Ok(Some(mnemo_qa::llm::openai::OpenAiClient::new(config)?))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    #[test]
    fn defaults_parse_and_bad_fusion_is_refused() {
        let Ok(cli) = Cli::try_parse_from(["t"]) else {
            panic!("defaults parse")
        };
        assert_eq!(cli.api.max_upload_bytes, DEFAULT_MAX_UPLOAD_BYTES);
        assert_eq!(cli.api.limits.config(), Limits::default());
        assert!(cli.api.fusion.fusion().is_ok());
        let Ok(bad) =
            Cli::try_parse_from(["t", "--rrf-lexical-weight", "0", "--rrf-vector-weight", "0"])
        else {
            panic!("parses")
        };
        let err = bad.api.fusion.fusion().err();
        assert!(matches!(err, Some(ApiError::Config(_))), "{err:?}");
        let Ok(llm) = Cli::try_parse_from(["t", "--llm-base-url", "http://127.0.0.1:1/v1"]) else {
            panic!("parses")
        };
        assert!(matches!(llm.api.llm.client(), Err(ApiError::Config(_))));
    }
}
