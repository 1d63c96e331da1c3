//! `mnemo serve [all|api|extractor|chunker|embedder|projector]`: runs
//! services until SIGTERM or Ctrl-C.
//!
//! `all` runs every service in one process; each can also run alone (and in
//! N copies: they share their durable consumers).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use mnemo_api::{ApiConfig, ApiState};
use mnemo_bus::{Bus, Namespace};
use mnemo_projector::ProjectorConfig;
use tokio::sync::watch;

use crate::cli::{Global, ServeArgs, Service};

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
