//! Wiring: state shared by the services, and the tonic server with health
//! and reflection (so `grpcurl`/`buf curl` work without the protos).

use std::future::Future;
use std::sync::Arc;

use mnemo_bus::{BlobStore, Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::Document;
use mnemo_projector::ProjectorError;
use mnemo_proto::v1::account_service_server::AccountServiceServer;
use mnemo_proto::v1::audit_service_server::AuditServiceServer;
use mnemo_proto::v1::document_service_server::DocumentServiceServer;
use mnemo_proto::v1::learning_service_server::LearningServiceServer;
use mnemo_proto::v1::progress_service_server::ProgressServiceServer;
use mnemo_proto::v1::qa_service_server::QaServiceServer;
use mnemo_proto::v1::search_service_server::SearchServiceServer;
use mnemo_proto::v1::stats_service_server::StatsServiceServer;
use mnemo_proto::v1::upload_service_server::UploadServiceServer;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::auth::Authenticator;
use crate::documents::{DocumentApi, UploadApi};
use crate::learning::audit::AuditApi;
use crate::learning::LearningApi;
use crate::progress::ProgressApi;
use crate::progress_hub::ProgressHub;
use crate::qa::{QaApi, QaState};
use crate::search::SearchApi;
use crate::stats::StatsApi;
use crate::{ApiConfig, ApiError};

/// HTTP/2 flow-control window per stream (the connection gets twice this).
pub const UPLOAD_WINDOW: u32 = 4 * 1024 * 1024;

/// PostgreSQL clients for read-model queries, each reconnected when it
/// drops: up to `connections` sessions, opened as calls need them.
///
/// One session runs its queries one after another, however many callers
/// pipeline into it: with one, every call waited behind everyone's queries
/// and the API's reads had one core of PostgreSQL (`mnemo-bench load`,
/// docs/benchmarks.md). A caller gets the session fewest callers hold now
/// (an unopened one counts as none), so a burst spreads over the pool and
/// a quiet server opens only one. Sessions stay open once opened.
pub struct ReadDb {
    url: String,
    namespace: mnemo_bus::Namespace,
    sessions: Vec<Mutex<Option<Arc<Client>>>>,
}

/// Read-model sessions an API opens at most, by default.
pub const DEFAULT_READ_CONNECTIONS: usize = 4;

impl ReadDb {
    /// A pool of at most `connections` sessions (at least one).
    pub fn new(url: &str, namespace: mnemo_bus::Namespace, connections: usize) -> Self {
        Self {
            url: url.to_owned(),
            namespace,
            sessions: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// A live client: the least held session, (re)connected if it must be.
    pub async fn client(&self) -> Result<Arc<Client>, ProjectorError> {
        let mut least = (usize::MAX, 0);
        for (i, session) in self.sessions.iter().enumerate() {
            // Held by someone else's connect right now: count it as busy.
            let holders = session.try_lock().map_or(usize::MAX - 1, |s| match &*s {
                Some(c) if !c.is_closed() => Arc::strong_count(c) - 1,
                _ => 0,
            });
            if holders < least.0 {
                least = (holders, i);
            }
            if holders == 0 {
                break;
            }
        }
        let mut guard = self.sessions[least.1].lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(mnemo_projector::db::connect(&self.url, &self.namespace).await?);
        *guard = Some(c.clone());
        Ok(c)
    }
}

/// What every service of the API shares.
pub struct ApiState {
    pub bus: Bus,
    pub config: ApiConfig,
    pub executor: CommandExecutor<Document>,
    pub blobs: BlobStore,
    pub db: ReadDb,
    /// Hybrid search; None when the server runs without it.
    pub search: Option<crate::search::SearchState>,
    /// Where Watch calls get live events; live while [`serve`] runs.
    pub progress: ProgressHub,
    /// Questions and cards (`QaService`); answers need `search`.
    pub qa: QaState,
    /// Where admin reads of another owner's data are recorded.
    pub access: crate::learning::access::AccessLog,
    /// Per-owner storage quotas and the uploads in flight.
    pub quotas: crate::quota::Quotas,
}

impl ApiState {
    pub async fn new(bus: Bus, config: ApiConfig) -> Result<Self, mnemo_bus::BusError> {
        let store = JetStreamEventStore::<Document>::new(&bus, "doc", config.aggregate_cache);
        let executor = CommandExecutor::new(store, (), RetryPolicy::default());
        let blobs = bus.blob_store().await?;
        let db = ReadDb::new(
            &config.database_url,
            bus.namespace.clone(),
            config.read_connections,
        );
        let progress =
            ProgressHub::with_limit(config.watch_queue, config.limits.max_watchers_per_owner);
        let qa = QaState::new(&bus, config.aggregate_cache);
        let access = crate::learning::access::AccessLog::new(&bus);
        let quotas = crate::quota::Quotas::new(config.limits.quota);
        Ok(Self {
            quotas,
            bus,
            config,
            executor,
            blobs,
            db,
            search: None,
            progress,
            qa,
            access,
        })
    }

    /// A client for read-model queries, or the status to answer with.
    pub async fn read_db(&self) -> Result<Arc<Client>, tonic::Status> {
        self.db
            .client()
            .await
            .map_err(|e| crate::status::from_db_error(&e))
    }

    /// Read-your-writes: waits (at most `max_consistency_wait`) until the
    /// document read models have applied `min_sequence`; UNAVAILABLE (retry
    /// shortly) when they do not get there. Zero: no wait.
    pub async fn wait_for_read_models(
        &self,
        db: &Client,
        min_sequence: u64,
    ) -> Result<(), tonic::Status> {
        if min_sequence == 0 {
            return Ok(());
        }
        let at = mnemo_projector::runner::wait_for(
            db,
            &self.bus.namespace,
            min_sequence,
            self.config.max_consistency_wait,
        )
        .await
        .map_err(|e| crate::status::from_db_error(&e))?;
        if at < min_sequence {
            return Err(tonic::Status::unavailable(format!(
                "the read model is at sequence {at}, not yet {min_sequence}; retry shortly"
            )));
        }
        Ok(())
    }

    /// Enables `SearchService` with this index and model.
    pub fn with_search(mut self, search: crate::search::SearchState) -> Self {
        self.search = Some(search);
        self
    }

    /// Answers and cards with this chat model (extractive/offline without).
    pub fn with_llm(mut self, llm: std::sync::Arc<dyn mnemo_qa::Llm>) -> Self {
        self.qa.llm = Some(llm);
        self
    }
}

/// Serves on an already bound listener until `shutdown` resolves.
///
/// The progress hub runs alongside and stops first, so that open Watch
/// streams end (telling clients where to resume) instead of holding the
/// graceful shutdown open; calls still open after `shutdown_grace` are cut.
pub async fn serve(
    state: Arc<ApiState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ApiError> {
    let auth = Authenticator::with_config(state.config.auth.clone())
        .map_err(|e| ApiError::Config(e.to_string()))?;
    // An identity provider's keys by URL: fetched before the first call
    // (a provider that is down is said loudly, and tried again), then kept
    // current for as long as the API serves.
    if let Err(e) = auth.fetch_jwks().await {
        tracing::error!(error = %e, "cannot fetch the identity provider's keys yet; its tokens are refused until a fetch succeeds");
    }
    let refresher = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.refresh_jwks().await })
    };
    let _refresher = AbortOnDrop(refresher);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<DocumentServiceServer<DocumentApi>>()
        .await;
    health.set_serving::<UploadServiceServer<UploadApi>>().await;
    health
        .set_serving::<ProgressServiceServer<ProgressApi>>()
        .await;
    health.set_serving::<StatsServiceServer<StatsApi>>().await;
    health.set_serving::<SearchServiceServer<SearchApi>>().await;
    health.set_serving::<QaServiceServer<QaApi>>().await;
    health
        .set_serving::<LearningServiceServer<LearningApi>>()
        .await;
    health.set_serving::<AuditServiceServer<AuditApi>>().await;
    health
        .set_serving::<AccountServiceServer<crate::account::AccountApi>>()
        .await;
    // Reflection in both versions: v1, and v1alpha for the many tools
    // (older grpcurl, Postman, ...) that still ask for it.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mnemo_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_v1alpha = reflection_builder().build_v1alpha()?;
    // Every call: the token first (who), then that owner's rate for the
    // service (how often).
    let rate = crate::rate::RateLimits::new(state.config.limits.rate);
    let _forget = AbortOnDrop(tokio::spawn(rate.clone().keep_small()));
    let guard = |service: &'static str| {
        let (auth, rate) = (auth.clone(), rate.clone());
        move |r: tonic::Request<()>| {
            let r = auth.intercept(r)?;
            rate.check(&r, service)?;
            Ok(r)
        }
    };
    let documents = DocumentServiceServer::with_interceptor(
        DocumentApi::new(state.clone()),
        guard("documents"),
    );
    // UploadFile's one message carries a whole file (the browser's
    // upload): its service alone takes more than 4 MiB (the metadata's
    // few bytes on top of the file's limit, which upload_file checks).
    let upload_message = usize::try_from(state.config.limits.max_upload_message_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(16 * 1024);
    let uploads = tonic::service::interceptor::InterceptedService::new(
        UploadServiceServer::new(UploadApi::new(state.clone()))
            .max_decoding_message_size(upload_message),
        guard("documents"),
    );
    let progress =
        ProgressServiceServer::with_interceptor(ProgressApi::new(state.clone()), guard("progress"));
    let stats = StatsServiceServer::with_interceptor(StatsApi::new(state.clone()), guard("stats"));
    let search =
        SearchServiceServer::with_interceptor(SearchApi::new(state.clone()), guard("search"));
    let learning =
        LearningServiceServer::with_interceptor(LearningApi::new(state.clone()), guard("learning"));
    let audit = AuditServiceServer::with_interceptor(AuditApi::new(state.clone()), guard("audit"));
    let account = AccountServiceServer::with_interceptor(
        crate::account::AccountApi::new(state.clone()),
        guard("account"),
    );
    let qa = QaServiceServer::with_interceptor(QaApi::new(state.clone()), guard("questions"));
    let pump = crate::progress_hub::pump::start(state.progress.clone(), &state.bus)
        .await
        .map_err(ApiError::Progress)?;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let hub = state.progress.clone();
    let shutdown = async move {
        shutdown.await;
        hub.stop();
        let _ = stopping_tx.send(());
    };
    let grace = state.config.shutdown_grace;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, namespace = %state.bus.namespace, tls = state.config.tls.is_some(), "gRPC API listening");
    }
    // Uploads stream megabytes: HTTP/2's default 64 KiB windows would make
    // every MiB wait on a dozen window updates.
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &state.config.tls {
        let mut config = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&tls.cert, &tls.key));
        if let Some(ca) = &tls.client_ca {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(ca));
        }
        builder = builder.tls_config(config)?;
    }
    // The gRPC services, and the web app for every other path (web.rs).
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(documents)
        .add_service(uploads)
        .add_service(progress)
        .add_service(stats)
        .add_service(search)
        .add_service(qa)
        .add_service(learning)
        .add_service(audit)
        .add_service(account);
    let routes = tonic::service::Routes::from(
        routes
            .routes()
            .into_axum_router()
            .fallback(crate::web::serve),
    );
    if !crate::web::is_built() {
        tracing::warn!("this binary has no web app (run web/build.sh, then build mnemo again)");
    }
    let server = builder
        // Browsers speak gRPC-Web over HTTP/1.1 or HTTP/2: outermost, so
        // every layer inside sees plain gRPC and its answers are translated.
        .accept_http1(true)
        .layer(crate::web::GrpcWebForBrowsersLayer)
        .layer(crate::metrics::layer())
        .layer(crate::request_id::RequestIdLayer)
        .layer(
            crate::call_limits::CallLimitsLayer::new(
                state.config.limits.max_calls,
                state.config.limits.call_timeout,
            )
            .with_whole_uploads(state.config.limits.max_upload_file_calls),
        )
        .initial_stream_window_size(Some(UPLOAD_WINDOW))
        .initial_connection_window_size(Some(2 * UPLOAD_WINDOW))
        // One client's share of the server: calls per connection beyond
        // this wait for HTTP/2 to allow them; a dead peer is found by pings.
        .max_concurrent_streams(Some(state.config.limits.max_streams_per_connection))
        .http2_keepalive_interval(Some(state.config.limits.keepalive))
        .http2_keepalive_timeout(Some(state.config.limits.keepalive))
        .tcp_keepalive(Some(state.config.limits.keepalive))
        .add_routes(routes)
        // Nagle + delayed ACKs would add ~40 ms to small responses.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        );
    tokio::pin!(server);
    let cut_off = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        done = &mut server => done?,
        _ = cut_off => tracing::warn!(?grace, "calls still open after the shutdown grace; closing them"),
    }
    drop(pump);
    Ok(())
}

/// Stops a background task when the server it belongs to returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
