//! `mnemo serve [all|api|extractor|chunker|embedder|projector]`: runs
//! services until SIGTERM or Ctrl-C.
//!
//! `all` runs every service in one process; each can also run alone (and in
//! N copies: they share their durable consumers). Every service is started
//! the same way — `mnemo_<service>::run(bus, config, shutdown)`, its config
//! built from its own flags (`<Service>Args`, flattened here) and the few
//! settings services share (the bus, the database, the model) — so this
//! file only chooses which run and wires the shutdown.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mnemo_bus::{Bus, Namespace, Role};
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::cli::{Backend, Global};

#[derive(Args)]
pub struct ServeArgs {
    #[arg(value_enum, default_value = "all")]
    pub service: Service,
    #[command(flatten)]
    pub backend: Backend,
    /// HS256 secret; overrides --jwt-secret-file.
    #[arg(long, env = "MNEMO_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten, next_help_heading = "API")]
    pub api: mnemo_api::ApiArgs,
    #[command(flatten, next_help_heading = "Extractor")]
    pub extractor: mnemo_extractor::ExtractorArgs,
    #[command(flatten, next_help_heading = "Chunker")]
    pub chunker: mnemo_chunker::ChunkerArgs,
    #[command(flatten, next_help_heading = "Embedder")]
    pub embedder: mnemo_embedder::EmbedderArgs,
    #[command(flatten, next_help_heading = "Projector")]
    pub projector: mnemo_projector::ProjectorArgs,
    /// Messages the extractor, chunker and embedder each read ahead of
    /// their workers to serve owners in turn, so one owner's big batch
    /// does not hold up another's upload (0: stream order, no read-ahead).
    #[arg(long, env = "MNEMO_READ_AHEAD", default_value_t = mnemo_bus::fair::FairShare::default().window)]
    pub read_ahead: usize,
    /// How much nicer than the API the extractor and chunker
    /// run (their async and blocking threads, and the extractor's worker
    /// processes): a batch's intake gives way to requests and to a
    /// learner's upload beside the batch (0: the same priority; relative
    /// to the process).
    #[arg(long, env = "MNEMO_PIPELINE_NICE", default_value_t = 19, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub pipeline_nice: i32,
    /// An owner's document beside another owner's work is extracted and
    /// chunked at the process's priority, not the pipeline's nice
    /// (`mnemo_bus::fair`'s express; false: everything at the nice).
    #[arg(long, env = "MNEMO_PIPELINE_EXPRESS", default_value_t = true, action = clap::ArgAction::Set)]
    pub pipeline_express: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics`: every service
    /// this process runs (consumers and their lag, gRPC calls by method
    /// and code, progress watchers; docs/operations.md, *Metrics*), and
    /// the probes `/healthz` (alive) and `/readyz` (every service started
    /// and connected; 503 while stopping). Off when not given.
    #[arg(long, env = "MNEMO_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten, next_help_heading = "Traces")]
    pub otlp: crate::telemetry::OtlpArgs,
}

impl ServeArgs {
    /// The pipeline services' read-ahead ([`mnemo_bus::fair`]).
    fn fair_share(&self) -> mnemo_bus::fair::FairShare {
        mnemo_bus::fair::FairShare {
            window: self.read_ahead,
            ..Default::default()
        }
    }

    /// The extractor's and chunker's read-ahead, their express work on
    /// `serve`'s own runtime (the process's priority).
    fn pipeline_fair_share(&self) -> mnemo_bus::fair::FairShare {
        let fair = self.fair_share();
        if self.pipeline_express {
            fair.with_express(Handle::current())
        } else {
            fair
        }
    }
}

/// The embedding model, shared by the chunker (its tokenizer), the
/// embedder and search: one setting each, so no chunk is ever truncated.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// The prepared embedding model (deploy/model/prepare.sh); needed by the
    /// chunker (its tokenizer) and the embedder, and by search for vectors.
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Longest chunk, in the model's word pieces with its special tokens:
    /// the model's max sequence length (256 for all-MiniLM-L6-v2).
    #[arg(long, env = "MNEMO_MAX_TOKENS", default_value_t = mnemo_domain::chunking::ChunkParams::default().max_tokens)]
    pub max_tokens: usize,
}

impl ModelArgs {
    fn model_dir(&self, who: &str) -> Result<PathBuf> {
        self.model_dir.clone().with_context(|| {
            format!("{who} needs the prepared model: run deploy/model/prepare.sh and source .mnemo/model.env (or pass --model-dir)")
        })
    }
}

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

impl Service {
    /// The name on the command line (`all`, `api`, `extractor`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Api => "api",
            Self::Extractor => "extractor",
            Self::Chunker => "chunker",
            Self::Embedder => "embedder",
            Self::Projector => "projector",
        }
    }
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C).
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives while the services are still
/// starting is kept and ends the wait at once, instead of killing the
/// process by the default action halfway through its start.
pub fn stop_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Histogram buckets, in seconds: a cached query's milliseconds to a
/// large PDF's minute.
const METRIC_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Records the metrics every crate emits (the `metrics` facade) and
/// serves them for Prometheus at `http://addr/metrics`, beside the
/// liveness and readiness probes (`crate::health`).
async fn serve_metrics(addr: std::net::SocketAddr, health: crate::health::Health) -> Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(METRIC_BUCKETS)
        .context("the metrics' buckets")?
        .install_recorder()
        .context("recording metrics")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("serving metrics on {addr} (is the port free?)"))?;
    tokio::spawn(crate::health::serve(listener, metrics, health));
    tracing::info!(%addr, "metrics at http://{addr}/metrics, probes at /healthz and /readyz");
    Ok(())
}

/// Loads a session of an embedding model off the async threads, with
/// `threads` intra-op threads (None: `--embed-threads`) running at `nice`.
async fn load_model(
    args: &ServeArgs,
    dir: PathBuf,
    threads: Option<usize>,
    nice: i32,
) -> Result<Arc<mnemo_embedder::Embedder>> {
    let mut config = args
        .embedder
        .config(dir)
        .with_max_length(args.model.max_tokens)
        .with_nice(nice);
    if let Some(t) = threads {
        config = config.with_threads(t);
    }
    let model = tokio::task::spawn_blocking(move || mnemo_embedder::Embedder::new(config))
        .await?
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    Ok(Arc::new(model))
}

/// The runtime the extractor and chunker run on: its threads
/// (async and blocking, and the processes they start) run `nice` below the
/// process's, so the API, the embedder's express session and queries come
/// first when a batch is taken in (`mnemo-bench fairness`, decision 019).
/// An owner's document beside another owner's batch is handled on the
/// main runtime instead (`mnemo_bus::fair`'s express), at the process's
/// priority.
struct Pipeline(Option<tokio::runtime::Runtime>);

impl Pipeline {
    fn start(nice: i32) -> Result<Self> {
        use mnemo_embedder::priority;
        // One level for every thread, however they start each other.
        let level = priority::this_threads_nice().map(|base| base.saturating_add(nice.max(0)));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("mnemo-pipeline")
            .enable_all()
            .on_thread_start(move || {
                if let Some(level) = level {
                    priority::nice_this_thread_to(level);
                }
            })
            .build()
            .context("starting the pipeline's threads")?;
        Ok(Self(Some(runtime)))
    }

    /// Connects a service's bus here, so its messages are read at the
    /// pipeline's priority; a failure stops `serve` before anything else
    /// starts, as on the main runtime.
    async fn connect<F>(&self, bus: F) -> Result<Bus>
    where
        F: std::future::Future<Output = Result<Bus>> + Send + 'static,
    {
        let runtime = self
            .0
            .as_ref()
            .context("the pipeline's threads have stopped")?;
        runtime
            .spawn(bus)
            .await
            .context("connecting to NATS panicked")?
    }

    /// Runs `service` here, as a task of `tasks`.
    fn spawn<F>(&self, tasks: &mut tokio::task::JoinSet<Result<()>>, service: F)
    where
        F: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let Some(runtime) = &self.0 else { return };
        let handle = runtime.spawn(service);
        tasks.spawn(async move { handle.await.context("the service panicked")? });
    }
}

impl Drop for Pipeline {
    /// A runtime may not be dropped on another's thread (it would block);
    /// by then its services have ended or `run` is returning an error, so
    /// what is left goes without waiting.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

pub async fn run(global: &Global, args: ServeArgs) -> Result<ExitCode> {
    let runs = |s: Service| args.service == Service::All || args.service == s;
    let pipeline = Pipeline::start(args.pipeline_nice)?;
    let ns = Namespace::new(&args.backend.namespace)?;
    // Each service signs in to NATS as its own role (`nats.conf`), even
    // when they share this process.
    let nats = args.backend.nats();
    let bus_for = |role: Role| {
        let (nats, ns, replicas) = (nats.clone(), ns.clone(), args.backend.replicas);
        async move {
            Bus::start(&nats, role, ns, replicas).await.with_context(|| {
                format!("connecting the {role} to NATS (is nats-server running with JetStream, and are the credentials right? try `mnemo doctor`)")
            })
        }
    };
    // Listening for SIGTERM starts before any service does (see
    // `stop_signal`).
    let mut stop = Box::pin(stop_signal());
    let health = crate::health::Health::new(
        [
            (Service::Projector, "projector"),
            (Service::Extractor, "extractor"),
            (Service::Chunker, "chunker"),
            (Service::Embedder, "embedder"),
            (Service::Api, "api"),
        ]
        .into_iter()
        .filter(|(s, _)| runs(*s))
        .map(|(_, name)| name)
        .collect(),
    );
    if let Some(addr) = args.metrics_listen {
        serve_metrics(addr, health.clone()).await?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    let database_url = &args.backend.database_url;

    // Only the services that read or write the read models need
    // PostgreSQL; the schema must exist before the API answers List.
    if runs(Service::Projector) || runs(Service::Api) {
        let config = args.projector.config(ns.clone(), database_url);
        mnemo_projector::runner::prepare(&config)
            .await
            .context("preparing PostgreSQL (try `mnemo doctor`)")?;
        if runs(Service::Projector) {
            let (bus, rx) = (bus_for(Role::Projector).await?, stop_rx.clone());
            health.started("projector", bus.client.clone());
            tasks.spawn(async move {
                mnemo_projector::run(bus, config, stopped(rx))
                    .await
                    .context("projector")
            });
        }
    }
    if runs(Service::Extractor) {
        let mut config = args.extractor.config();
        config.fair = args.pipeline_fair_share();
        let (bus, rx) = (
            pipeline.connect(bus_for(Role::Extractor)).await?,
            stop_rx.clone(),
        );
        health.started("extractor", bus.client.clone());
        pipeline.spawn(&mut tasks, async move {
            mnemo_extractor::run(bus, config, stopped(rx))
                .await
                .context("extractor")
        });
    }
    if runs(Service::Chunker) {
        let dir = args.model.model_dir("the chunker")?;
        let mut config = args.chunker.config(dir, args.model.max_tokens)?;
        config.fair = args.pipeline_fair_share();
        let (bus, rx) = (
            pipeline.connect(bus_for(Role::Chunker)).await?,
            stop_rx.clone(),
        );
        health.started("chunker", bus.client.clone());
        pipeline.spawn(&mut tasks, async move {
            mnemo_chunker::run(bus, config, stopped(rx))
                .await
                .context("chunker")
        });
    }
    // The embedder service's session (and its express one), and the API's
    // own for queries: a query never waits for a document's model call
    // (`mnemo-bench load`, docs/benchmarks.md).
    if runs(Service::Embedder) {
        let dir = args.model.model_dir("the embedder")?;
        // Documents are embedded nice; the express session (owners beside
        // another's batch) and queries are not (`mnemo_embedder::priority`).
        let nice = args.embedder.embed_nice;
        let model = load_model(&args, dir.clone(), None, nice).await?;
        tracing::info!(model = model.model_id(), "embedding model loaded");
        let express = if args.embedder.embed_express {
            Some(load_model(&args, dir, None, args.embedder.embed_express_nice).await?)
        } else {
            None
        };
        let mut config = args.embedder.service(model, express);
        config.fair = args.fair_share();
        let (bus, rx) = (bus_for(Role::Embedder).await?, stop_rx.clone());
        health.started("embedder", bus.client.clone());
        tasks.spawn(async move {
            mnemo_embedder::run(bus, config, stopped(rx))
                .await
                .context("embedder")
        });
    }
    if runs(Service::Api) {
        let secret = crate::secret::load(global, args.jwt_secret.as_deref(), true)?;
        // The API embeds queries with any of its models; one serves.
        let mut embedders: Vec<Arc<mnemo_embedder::Embedder>> = Vec::new();
        let threads = Some(args.api.search_threads);
        if let Some(dir) = &args.model.model_dir {
            let model = load_model(&args, dir.clone(), threads, 0).await?;
            tracing::info!(model = model.model_id(), "model loaded for search");
            embedders.push(model);
        }
        for dir in &args.api.extra_model_dir {
            let extra = load_model(&args, dir.clone(), threads, 0).await?;
            tracing::info!(model = extra.model_id(), "extra model loaded for search");
            embedders.push(extra);
        }
        let config = args.api.config(database_url, secret, embedders)?;
        let (bus, rx) = (bus_for(Role::Api).await?, stop_rx.clone());
        health.started("api", bus.client.clone());
        tasks.spawn(async move {
            mnemo_api::run(bus, config, stopped(rx))
                .await
                .context("gRPC API")
        });
    }

    let mut code = ExitCode::SUCCESS;
    tokio::select! {
        _ = &mut stop => tracing::info!("stopping"),
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
    health.stopping();
    let _ = stop_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!(error = %format!("{e:#}"), "service failed while stopping");
            code = ExitCode::FAILURE;
        }
    }
    drop(pipeline);
    Ok(code)
}
