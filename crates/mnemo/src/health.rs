//! The operator's port of `mnemo serve` (`--metrics-listen ADDR`):
//! Prometheus metrics, liveness and readiness, for Prometheus and for an
//! orchestrator's probes (deploy/).
//!
//! - `GET /metrics`: every metric this process records (docs/operations.md,
//!   *Metrics*).
//! - `GET /healthz`: liveness, 200 while the process serves this port at
//!   all (a hung runtime does not answer).
//! - `GET /readyz`: readiness, 200 once every service this process runs
//!   has started (signed in to NATS, model loaded) and each one's NATS
//!   connection is up; 503 with the reasons otherwise, and from the moment
//!   the process is asked to stop (so a rolling restart sends no new work
//!   to a stopping copy).
//!
//! Owns: this port and what the probes answer. Must not: serve anything a
//! learner reaches (the gRPC port does), or say ready before work can flow.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::get;

/// What `/readyz` answers from: the services expected, those started.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Mutex<State>>,
}

struct State {
    expected: Vec<&'static str>,
    started: Vec<(&'static str, async_nats::Client)>,
    stopping: bool,
}

impl Health {
    /// Readiness for a process that runs `expected` (service names).
    pub fn new(expected: Vec<&'static str>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                expected,
                started: Vec::new(),
                stopping: false,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `service` has started; `client` is its NATS connection.
    pub fn started(&self, service: &'static str, client: async_nats::Client) {
        self.lock().started.push((service, client));
    }

    /// The process was asked to stop: not ready from now on.
    pub fn stopping(&self) {
        self.lock().stopping = true;
    }

    /// Ready or not, and why.
    pub fn readiness(&self) -> (bool, String) {
        use async_nats::connection::State as Nats;
        let state = self.lock();
        if state.stopping {
            return (false, "not ready: stopping".into());
        }
        let mut problems = Vec::new();
        for service in &state.expected {
            match state.started.iter().find(|(s, _)| s == service) {
                None => problems.push(format!("{service}: starting")),
                Some((_, client)) if client.connection_state() != Nats::Connected => {
                    problems.push(format!("{service}: NATS disconnected"))
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            (true, format!("ready: {}", state.expected.join(", ")))
        } else {
            (false, format!("not ready: {}", problems.join("; ")))
        }
    }
}

/// Serves the port on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    health: Health,
) {
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "alive\n" }))
        .route(
            "/readyz",
            get(move || {
                let health = health.clone();
                async move {
                    let (ready, why) = health.readiness();
                    let code = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (code, format!("{why}\n"))
                }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics and health port stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_every_service_started_nor_once_stopping() {
        let health = Health::new(vec!["extractor", "chunker"]);
        let (ready, why) = health.readiness();
        assert!(!ready);
        assert_eq!(why, "not ready: extractor: starting; chunker: starting");
        health.stopping();
        assert_eq!(health.readiness(), (false, "not ready: stopping".into()));
        assert_eq!(Health::new(vec![]).readiness(), (true, "ready: ".into()));
    }
}
