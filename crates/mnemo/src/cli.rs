//! Every flag and subcommand. Each flag has an env fallback (`MNEMO_…`) and a
//! default that works on a local machine.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::serve::ServeArgs;
use mnemo_api::config::VectorArgs;
use mnemo_embedder::EmbedderArgs as EmbedArgs;

#[derive(Parser)]
#[command(
    name = "mnemo",
    version,
    about = "Event-sourced study companion backend"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands.
#[derive(Args, Clone)]
pub struct Global {
    /// gRPC address of a running mnemo API (client commands).
    #[arg(
        long,
        env = "MNEMO_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// Bearer token (client commands). Without one, a token for --owner is
    /// minted from the local JWT secret file, if this machine has it.
    #[arg(long, env = "MNEMO_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Owner used for a locally minted token when no --token is given.
    #[arg(long, env = "MNEMO_OWNER", default_value = "local", global = true)]
    pub owner: String,
    /// File holding the HS256 secret (created on first use by the server or `token issue`).
    #[arg(long, env = "MNEMO_JWT_SECRET_FILE", global = true)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,mnemo_bus=debug`.
    /// Default: `info` for servers, `warn` for client commands.
    #[arg(long, env = "MNEMO_LOG", global = true)]
    pub log: Option<String>,
}

/// Where the services find NATS and PostgreSQL, and which namespace is theirs.
#[derive(Args, Clone)]
pub struct Backend {
    #[arg(long, env = "MNEMO_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    #[arg(
        long,
        env = "MNEMO_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Prefixes streams, subjects, consumers and the SQL schema.
    #[arg(long, env = "MNEMO_NAMESPACE", default_value = "mnemo")]
    pub namespace: String,
    /// JetStream replicas for the stream and bucket (3 on a cluster).
    #[arg(long, env = "MNEMO_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run mnemo's services.
    Serve(Box<ServeArgs>),
    /// Manage bearer tokens.
    Token(TokenArgs),
    /// Upload study material (PDF, text, Markdown).
    Upload(UploadArgs),
    /// Your documents.
    Docs(DocsArgs),
    /// Follow the progress of one document, an upload batch, or all of yours.
    Progress(ProgressArgs),
    /// Extract a file's text locally, as the extractor service would.
    Extract(ExtractArgs),
    /// Internal: the extractor's sandboxed PDF worker (one JSON line per page).
    #[command(hide = true)]
    ExtractWorker { file: PathBuf },
    /// Check NATS, JetStream, PostgreSQL and the embedding runtime.
    Doctor(DoctorArgs),
    /// Search your documents (full text and meaning, with citations).
    Search(SearchArgs),
    /// Ask a question; the answer comes from your documents, with citations.
    Ask(AskArgs),
    /// Your flashcards: add, list, edit, suspend, resume, delete, or generate from a document.
    Cards(CardsArgs),
    /// Your documents by state, and how long each stage takes.
    Stats(StatsArgs),
    /// Operator tools for the read models.
    Projections(ProjectionsArgs),
    /// Events services gave up on (operators).
    Dlq(DlqArgs),
    /// Benchmarks (print a table).
    Bench(BenchArgs),
    /// Quality evaluations (print a table).
    Eval(EvalArgs),
    /// FSRS-6 scheduling, locally (nothing is sent to a server).
    Fsrs(FsrsArgs),
    /// Embedding models: which one serves search, switch it, fetch one from the hub.
    Model(ModelArgs),
    /// Operators: replay the event log into another model's vectors.
    Backfill(BackfillArgs),
    /// Your topics: create, rename, attach documents.
    Topics(TopicsArgs),
    /// Review your due cards in the terminal (or from stdin with --json).
    Review(ReviewArgs),
    /// Your study statistics.
    Study(StudyArgs),
    /// Audit: rebuild a learner's state from their events alone.
    Replay(ReplayArgs),
}

#[derive(Args)]
pub struct CardsArgs {
    #[command(subcommand)]
    pub command: CardsCommand,
}

/// A card's content on the command line.
#[derive(Args, Clone)]
pub struct CardContentArgs {
    #[arg(long)]
    pub front: Option<String>,
    #[arg(long)]
    pub back: Option<String>,
    /// Default: `default`.
    #[arg(long)]
    pub deck: Option<String>,
    /// The cited document (with --chunk and --page).
    #[arg(long, requires = "chunk")]
    pub source_document: Option<String>,
    #[arg(long, requires = "source_document")]
    pub chunk: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub page: u32,
}

#[derive(Subcommand)]
pub enum CardsCommand {
    /// Add a card (needs --front and --back).
    Add {
        #[command(flatten)]
        content: CardContentArgs,
        /// Choose the card's id (a UUID): adding it again is a no-op.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List your cards (with --due: only those due now).
    List {
        #[arg(long)]
        due: bool,
        /// Include deleted cards.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a card's front, back, deck or source (others stay).
    Edit {
        card_id: String,
        #[command(flatten)]
        content: CardContentArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop reviewing a card (it keeps its schedule).
    Suspend {
        card_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Review a suspended card again.
    Resume {
        card_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a card (its history stays in the events).
    Delete {
        card_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Make cards from one of your indexed documents (each cites its chunk and page).
    Generate {
        document_id: String,
        /// Deck of the new cards (default: the document's file name).
        #[arg(long)]
        deck: Option<String>,
        /// Most cards (1..=100).
        #[arg(long, default_value_t = 20)]
        max: u32,
        /// Ask the server's LLM (falls back to the offline generator).
        #[arg(long)]
        llm: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Choose the topic's id (a UUID).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rename a topic.
    Rename {
        topic_id: String,
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Attach one of your documents to a topic.
    Attach {
        topic_id: String,
        document_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ReviewArgs {
    /// Script mode: each due card is printed as one JSON line (front and
    /// back), then one line of stdin is read as its rating (1-4; `q` stops);
    /// each result is printed as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many reviews (0: until nothing is due).
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
}

#[derive(Args)]
pub struct StudyArgs {
    #[command(subcommand)]
    pub command: StudyCommand,
}

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Retention, reviews per day and streak.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(subcommand)]
    pub command: ReplayCommand,
}

#[derive(Subcommand)]
pub enum ReplayCommand {
    /// A learner's cards (with schedules) and stats as of an instant, from
    /// the events alone (AuditService). Only the learner or an admin token.
    Learner {
        owner: String,
        /// RFC 3339 instant, or `now`.
        #[arg(long, default_value = "now")]
        as_of: String,
        /// Compare the rebuild at now with the read model; exit 1 on any difference.
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a token for an owner, signed with the local secret.
    Issue {
        #[arg(long)]
        owner: String,
        /// Lifetime in seconds (default 30 days).
        #[arg(long, default_value_t = 30 * 24 * 3600)]
        ttl: u64,
        #[arg(long)]
        admin: bool,
        #[arg(long, env = "MNEMO_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum UntilStage {
    Uploaded,
    Extracting,
    Chunking,
    Embedding,
    Indexed,
}

#[derive(Args)]
pub struct UploadArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub topic: Option<String>,
    /// Draw live progress per file until each is done.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: stop following a file once it reaches this stage
    /// (failed and cancelled always stop).
    #[arg(long, value_enum, default_value = "indexed")]
    pub until: UntilStage,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    #[arg(long)]
    pub json: bool,
    /// With --watch: reconnect attempts in a row when the API goes away.
    #[arg(long, env = "MNEMO_WATCH_RECONNECTS", default_value_t = crate::cmd::watch::DEFAULT_RECONNECTS)]
    pub reconnects: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchModeArg {
    /// Full text and vectors, fused by reciprocal rank.
    Hybrid,
    Lexical,
    Vector,
}

#[derive(Args)]
pub struct SearchArgs {
    /// A question or keywords; or websearch syntax: "phrases", -exclusions, OR.
    pub query: String,
    /// Hits wanted (1..=100).
    #[arg(long, default_value_t = 10)]
    pub k: u32,
    /// Only this document (repeatable).
    #[arg(long)]
    pub document: Vec<String>,
    /// Only documents of this topic.
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: SearchModeArg,
    /// Wait until the index reflects this event sequence (e.g. a progress
    /// update's), so a just-indexed document is searchable.
    #[arg(long, default_value_t = 0)]
    pub min_sequence: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Every owner's figures (needs an admin token).
    #[arg(long)]
    pub all_owners: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Every dead letter: which service gave up on which event, and why.
    List {
        #[command(flatten)]
        backend: Backend,
        #[arg(long)]
        json: bool,
    },
    /// Start a new processing run for dead letters' documents, then clear them.
    Retry {
        #[command(flatten)]
        backend: Backend,
        /// Dead-letter sequences (from `mnemo dlq list`).
        #[arg(required_unless_present = "all")]
        sequence: Vec<u64>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "sequence")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ProjectionsArgs {
    #[command(subcommand)]
    pub command: ProjectionsCommand,
}

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Row count and MD5 of every read model (equal after a rebuild).
    Checksum {
        #[command(flatten)]
        backend: Backend,
        #[arg(long)]
        json: bool,
    },
    /// Which version of each projection serves queries, and the live checkpoint.
    List {
        #[command(flatten)]
        backend: Backend,
        #[arg(long)]
        json: bool,
    },
    /// Build version N+1 of a projection from sequence 1 beside version N,
    /// then swap it in atomically (queries never see a half-built table).
    Rebuild {
        /// `documents`, `chunks`, `stage_timings`, `learning`, several of
        /// them comma-separated (`documents,chunks`), or `all`.
        name: String,
        #[command(flatten)]
        backend: Backend,
        /// Start from sequence 1 even if an interrupted rebuild can resume.
        #[arg(long)]
        fresh: bool,
        /// Build (or resume) but leave the live version serving.
        #[arg(long)]
        no_swap: bool,
        /// Most event messages per transaction.
        #[arg(long, default_value_t = 4096)]
        batch: usize,
        /// PostgreSQL connections writing at once (documents split between them).
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Compute every chunk's lexemes again instead of taking the live
        /// version's (after a change of text-search configuration).
        #[arg(long)]
        recompute_lexemes: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct DocsArgs {
    #[command(subcommand)]
    pub command: DocsCommand,
}

#[derive(Subcommand)]
pub enum DocsCommand {
    /// List your documents.
    List {
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one document (strongly consistent, from its events).
    Get {
        document_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a document's processing.
    Cancel {
        document_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Process a document again from its stored upload.
    /// Start a new processing run from the stored upload: one document, a
    /// topic's, or all of yours. The old chunks stay searchable until the
    /// new run is indexed.
    Reprocess {
        #[arg(required_unless_present_any = ["topic", "all"], conflicts_with_all = ["topic", "all"])]
        document_id: Option<String>,
        /// Every document of this topic.
        #[arg(long, conflicts_with = "all")]
        topic: Option<String>,
        /// Every document.
        #[arg(long)]
        all: bool,
        /// Why (recorded in the event).
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["document_id", "batch", "all"])))]
pub struct ProgressArgs {
    /// The document to follow.
    pub document_id: Option<String>,
    /// Every document of this upload batch (`mnemo upload` prints its id).
    #[arg(long)]
    pub batch: Option<String>,
    /// All of your documents.
    #[arg(long)]
    pub all: bool,
    /// Resume after this stream sequence.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Keep following after every document is in a terminal stage.
    #[arg(long)]
    pub follow: bool,
    #[arg(long)]
    pub json: bool,
    /// Reconnect attempts in a row (with backoff) when the API goes away.
    #[arg(long, env = "MNEMO_WATCH_RECONNECTS", default_value_t = crate::cmd::watch::DEFAULT_RECONNECTS)]
    pub reconnects: u32,
}

#[derive(Args)]
pub struct ExtractArgs {
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub backend: Backend,
    #[arg(long)]
    pub json: bool,
}

/// `mnemo bench progress`.
#[derive(Args)]
pub struct ProgressBenchArgs {
    #[command(flatten)]
    pub backend: Backend,
    /// Concurrent Watch streams.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// What each watcher follows: its own document, its owner's batch,
    /// or all its owner's documents (one event then reaches every
    /// watcher of that owner).
    #[arg(long, value_enum, default_value = "document")]
    pub scope: BenchScope,
    /// Owners the documents (one per watcher) are spread over.
    #[arg(long, default_value_t = 10)]
    pub owners: usize,
    /// Events to append and time.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Events appended per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// HTTP/2 connections the watchers share.
    #[arg(long, default_value_t = 20)]
    pub connections: usize,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 16)]
    pub appenders: usize,
    #[arg(long)]
    pub json: bool,
}

/// A Watch scope, for `mnemo bench progress`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchScope {
    Document,
    Batch,
    All,
}

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Commands/s across many aggregates, and upload-accept latency.
    Append {
        #[command(flatten)]
        backend: Backend,
        /// Aggregates the commands spread over.
        #[arg(long, default_value_t = 1000)]
        aggregates: usize,
        /// Commands to time (after creating the aggregates).
        #[arg(long, default_value_t = 50_000)]
        commands: usize,
        /// Commands in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Uploads to time.
        #[arg(long, default_value_t = 200)]
        uploads: usize,
        /// A ~1 MB PDF to upload (default: the corpus file nearest 1 MB, else a generated one).
        #[arg(long)]
        pdf: Option<PathBuf>,
    },
    /// Event appended → progress update received, with many concurrent
    /// watchers over real gRPC (p50/p95/p99).
    Progress(ProgressBenchArgs),
    /// pdf-rs against pdftotext on a folder of PDFs: word F1 and pages/s.
    Extract {
        /// Folder of PDFs.
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Rebuilding the read models from sequence 1 on a synthetic event log:
    /// events/s into PostgreSQL.
    Replay {
        #[command(flatten)]
        backend: Backend,
        /// Documents in the synthetic log.
        #[arg(long, default_value_t = 5_000)]
        documents: usize,
        /// Owners the documents are spread over.
        #[arg(long, default_value_t = 10)]
        owners: usize,
        /// Chunks (and vectors) per document.
        #[arg(long, default_value_t = 8)]
        chunks: usize,
        /// Extraction progress events per document.
        #[arg(long, default_value_t = 8)]
        progress: usize,
        /// Event messages per transaction.
        #[arg(long, default_value_t = 4_096)]
        batch: usize,
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        json: bool,
    },
    /// Tokens per CPU-second of the embedding model on the texts of a jsonl
    /// corpus (title + text), the way Python's bare onnxruntime is measured
    /// (deploy/model/prepare.sh --bench), and the way the service batches.
    Embed {
        /// A jsonl corpus with `title`/`text` fields (e.g. SciFact's corpus.jsonl).
        corpus: PathBuf,
        /// The prepared embedding model (deploy/model/prepare.sh).
        #[arg(long, env = "MNEMO_MODEL_DIR")]
        model_dir: PathBuf,
        /// Documents read from the start of the corpus.
        #[arg(long, default_value_t = 200)]
        docs: usize,
        /// onnxruntime intra-op threads (1 matches the Python measurement).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed passes; the best is kept (as the Python bench does).
        #[arg(long, default_value_t = 2)]
        passes: usize,
        #[arg(long)]
        json: bool,
    },
    /// The vector index at scale (exact scan vs HNSW: build, memory, latency,
    /// recall@10) and the hybrid search path over PostgreSQL at 100,000 chunks.
    Search {
        #[command(flatten)]
        backend: Backend,
        /// Index sizes (vectors, one owner) to measure.
        #[arg(long, value_delimiter = ',', default_value = "20000,100000,1000000")]
        sizes: Vec<usize>,
        /// Queries timed per size and path.
        #[arg(long, default_value_t = 500)]
        queries: usize,
        /// SciFact abstracts embedded as the synthetic vectors' seeds.
        #[arg(long, default_value_t = 1000)]
        seeds: usize,
        /// SciFact corpus.jsonl (default: the shared copy).
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// SciFact queries (default: the shared queries.train.jsonl).
        #[arg(long)]
        query_file: Option<PathBuf>,
        /// The prepared embedding model (without: random seeds, and lexical-only hybrid queries).
        #[arg(long, env = "MNEMO_MODEL_DIR")]
        model_dir: Option<PathBuf>,
        #[command(flatten)]
        embed: EmbedArgs,
        /// Chunks loaded into PostgreSQL for the hybrid part (0: skip it).
        #[arg(long, default_value_t = 100_000)]
        hybrid_chunks: usize,
        #[command(flatten)]
        vectors: VectorArgs,
        /// How the graph stores vectors: f32, f16 or i8.
        #[arg(long, default_value = "f32")]
        quantization: QuantizationArg,
        /// Print EXPLAIN ANALYZE of the full-text query.
        #[arg(long)]
        explain: bool,
        /// Keep the benchmark's namespace (schema) for inspection.
        #[arg(long)]
        keep: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A folder through the real services end to end (each its own process),
    /// then the embedder alone on the same chunks; peak RSS per service.
    Pipeline {
        #[command(flatten)]
        backend: Backend,
        /// Folder of PDFs (and .txt/.md files) to ingest.
        dir: PathBuf,
        /// The prepared embedding model (deploy/model/prepare.sh).
        #[arg(long, env = "MNEMO_MODEL_DIR")]
        model_dir: PathBuf,
        #[command(flatten)]
        embed: EmbedArgs,
        /// Uploads in flight at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Keep the benchmark's namespace (streams, schema) for inspection.
        #[arg(long)]
        keep: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality on a BEIR dataset through the real pipeline:
    /// nDCG@10 and recall@100 for lexical, vector and hybrid search.
    Ir(IrArgs),
}

/// `mnemo eval ir`.
#[derive(Args)]
pub struct IrArgs {
    #[command(flatten)]
    pub backend: Backend,
    /// corpus.jsonl (`_id`, `title`, `text`).
    #[arg(long)]
    pub corpus: PathBuf,
    /// queries.jsonl (`_id`, `text`); only judged queries are scored.
    #[arg(long)]
    pub queries: PathBuf,
    /// qrels TSV (`query-id corpus-id score`).
    #[arg(long)]
    pub qrels: PathBuf,
    /// The prepared embedding model (deploy/model/prepare.sh).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Ingest only the first N corpus documents (a quick check).
    #[arg(long)]
    pub docs: Option<usize>,
    /// Score against a namespace kept by an earlier run (no ingest).
    #[arg(long)]
    pub reuse: Option<String>,
    /// Keep the namespace afterwards (for --reuse); without it, a fresh or
    /// reused namespace is deleted at the end.
    #[arg(long)]
    pub keep: bool,
    /// Uploads and queries in flight at once.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct FsrsArgs {
    #[command(subcommand)]
    pub command: FsrsCommand,
}

#[derive(Subcommand)]
pub enum FsrsCommand {
    /// Run review histories through FSRS-6 and print each review's outcome.
    ///
    /// Input (stdin, or FILE): a JSON list of
    /// {"id", "created", "reviews": [{"ts", "rating"}]}, timestamps as
    /// ISO-8601 (no offset = UTC) or epoch seconds, ratings 1..=4 or
    /// again/hard/good/easy. Prints, after each review, R at the review
    /// (before it), stability, difficulty, state, step, due and interval
    /// (with --json: one object per review, `interval` in days).
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub struct SimulateArgs {
    /// Read the histories from this file ("-": stdin).
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// One JSON object per review (JSON lines) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Desired retention, in (0, 1).
    #[arg(long, env = "MNEMO_FSRS_RETENTION", default_value_t = mnemo_domain::learn::fsrs::config::DEFAULT_DESIRED_RETENTION)]
    pub retention: f64,
    /// The 21 FSRS-6 weights, comma-separated (default: py-fsrs 6.3.2's).
    #[arg(long, env = "MNEMO_FSRS_PARAMS")]
    pub params: Option<String>,
    /// Learning steps, e.g. `1m,10m` (units s, m, h, d; `none` for none).
    #[arg(long, env = "MNEMO_FSRS_LEARNING_STEPS", default_value = "1m,10m")]
    pub learning_steps: String,
    /// Relearning steps after a lapse, e.g. `10m` (`none` for none).
    #[arg(long, env = "MNEMO_FSRS_RELEARNING_STEPS", default_value = "10m")]
    pub relearning_steps: String,
    /// Longest review interval, in days.
    #[arg(long, env = "MNEMO_FSRS_MAX_INTERVAL", default_value_t = mnemo_domain::learn::fsrs::config::DEFAULT_MAXIMUM_INTERVAL_DAYS)]
    pub max_interval: u32,
    /// Fuzz review intervals, reproducibly from this seed (default: no fuzz).
    #[arg(long, env = "MNEMO_FSRS_FUZZ_SEED")]
    pub fuzz_seed: Option<u64>,
}

/// `--quantization` values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantizationArg {
    F32,
    F16,
    I8,
}

impl From<QuantizationArg> for mnemo_search::vectors::Quantization {
    fn from(q: QuantizationArg) -> Self {
        match q {
            QuantizationArg::F32 => Self::F32,
            QuantizationArg::F16 => Self::F16,
            QuantizationArg::I8 => Self::I8,
        }
    }
}

/// `mnemo model`.
#[derive(Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download a fastembed text model from the Hugging Face hub into a
    /// prepared directory (needs internet and a build with `--features hub`;
    /// offline, deploy/model/prepare.sh prepares all-MiniLM-L6-v2). Prints
    /// the MNEMO_MODEL_DIR line to use it.
    Fetch {
        /// fastembed `EmbeddingModel` name, e.g. AllMiniLML6V2 (mean-pooled models only).
        #[arg(default_value = "AllMiniLML6V2")]
        name: String,
        /// Where prepared model directories live.
        #[arg(long, env = "MNEMO_MODELS_DIR", default_value = ".mnemo/models")]
        into: PathBuf,
    },
    /// Operators (admin token): the model whose vectors answer searches,
    /// and how much of the indexed material each model's vectors cover.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Operators (admin token): answer searches with another model's
    /// vectors from now on, without downtime. Refused until a backfill
    /// covers every indexed chunk, unless --force.
    Use {
        /// A model id, or its name without the hash (all-MiniLM-L6-v2-int8).
        model: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct BackfillArgs {
    #[command(subcommand)]
    pub command: BackfillCommand,
}

#[derive(Subcommand)]
pub enum BackfillCommand {
    /// Re-embed every indexed document's chunks with another model, from
    /// the event log (sequence 1), beside the current vectors. Ctrl-C stops;
    /// running it again resumes where it stopped.
    Embed {
        /// The other model, prepared (deploy/model/prepare.sh makes an int8 one).
        #[arg(long = "model-dir", env = "MNEMO_BACKFILL_MODEL_DIR")]
        model_dir: PathBuf,
        #[command(flatten)]
        backend: Backend,
        /// Documents re-embedded at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Keep going after catching up: backfill documents as they are indexed.
        #[arg(long)]
        follow: bool,
        /// Pause after this many documents (run again to resume).
        #[arg(long)]
        limit: Option<u64>,
        /// Start over from sequence 1 instead of resuming (e.g. after a
        /// dead-lettered document's cause is fixed); covered documents are skipped.
        #[arg(long)]
        restart: bool,
        /// Onnxruntime threads for the model (default: all cores).
        #[arg(long, env = "MNEMO_EMBED_THREADS")]
        threads: Option<usize>,
        /// One JSON progress object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct AskArgs {
    pub question: String,
    /// Sources to retrieve (1..=20).
    #[arg(long, default_value_t = 5)]
    pub k: u32,
    /// Only this document (repeatable).
    #[arg(long)]
    pub document: Vec<String>,
    /// Answer with the best sentences of the sources even if the server has an LLM.
    #[arg(long)]
    pub extractive: bool,
    /// Wait until the index reflects this event sequence.
    #[arg(long, default_value_t = 0)]
    pub min_sequence: u64,
    #[arg(long)]
    pub json: bool,
}
