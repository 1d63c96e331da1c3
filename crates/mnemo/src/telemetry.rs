//! Logs and traces: where each process's `tracing` spans and events go.
//!
//! - *Logs* go to stderr, filtered by `--log` (the binary's `init`).
//! - *Traces* go to an OpenTelemetry collector over OTLP/gRPC when `mnemo
//!   serve --otlp-endpoint` is given; off by default. Each service's spans
//!   continue the trace context the events carry ([`mnemo_bus::trace`]), so
//!   one trace follows an upload from the API through the extractor, the
//!   chunker and the embedder to the projector's `indexed`, across
//!   processes. docs/operations.md, *Traces*.
//!
//! The exporter runs on a runtime of its own (one thread): the SDK's batch
//! processor exports from a plain thread, and tonic's channel needs a
//! reactor; the service's runtimes never wait on the collector.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// `mnemo serve`'s trace export.
#[derive(Args, Clone, Debug, Default)]
pub struct OtlpArgs {
    /// Export traces over OTLP/gRPC to this collector, e.g.
    /// `http://127.0.0.1:4317`: one trace per upload, from the API through
    /// every service to indexed (docs/operations.md, *Traces*). Off when
    /// not given.
    #[arg(long, env = "MNEMO_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Share of traces exported (0 to 1), decided by the trace id alone,
    /// the same in every process: a trace is exported whole or not at
    /// all, whatever sampled flag a caller's `traceparent` carries.
    #[arg(long, env = "MNEMO_OTLP_SAMPLE_RATIO", default_value_t = 1.0, value_parser = ratio)]
    pub otlp_sample_ratio: f64,
    /// The `service.name` the spans are exported under (default:
    /// `mnemo-<service>`, e.g. `mnemo-extractor`).
    #[arg(long, env = "MNEMO_OTLP_SERVICE_NAME")]
    pub otlp_service_name: Option<String>,
}

fn ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s} is not a ratio between 0 and 1")),
    }
}

/// What must outlive the command: the trace exporter, flushed by
/// [`Telemetry::shutdown`].
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter (blocking:
    /// run it off the async runtime, e.g. in `spawn_blocking`).
    pub fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: could not flush the last traces: {e}");
            }
        }
    }
}

impl Drop for Telemetry {
    /// Without [`Telemetry::shutdown`], buffered spans are dropped; the
    /// exporter's runtime goes without blocking (a runtime dropped inside
    /// an async context would panic).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sets up logging to stderr, filtered by `filter` (an `EnvFilter`
/// directive; an invalid one means `info`), and, with an endpoint in
/// `otlp`, trace export under `service`'s name.
pub fn init(filter: &str, otlp: Option<(&OtlpArgs, &str)>) -> Result<Telemetry> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log written to a file (a service's
    // stderr under a supervisor, the benchmarks' logs) stays plain text that
    // tools can read.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_filter(filter);
    let mut telemetry = Telemetry::default();
    let traces = match otlp {
        Some((args, service)) if args.otlp_endpoint.is_some() => {
            let (provider, runtime) = provider(args, service)?;
            let tracer = provider.tracer("mnemo");
            telemetry = Telemetry {
                provider: Some(provider),
                runtime: Some(runtime),
            };
            // Spans at info and above, whatever `--log` says: the stage
            // spans (`request`, `upload`, `deliver`, `extract`, `chunk`,
            // `embed`, `index`) are info.
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(LevelFilter::INFO),
            )
        }
        _ => None,
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("cannot set up logging")?;
    Ok(telemetry)
}

fn provider(
    args: &OtlpArgs,
    service: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime)> {
    let endpoint = args.otlp_endpoint.clone().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .context("cannot start the trace exporter's runtime")?;
    let exporter = {
        // tonic's channel is made (lazily connected) on a reactor.
        let _on = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(std::time::Duration::from_secs(10))
            .build()
    };
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(_) => {
            // Dropped inside the async main, a runtime panics.
            runtime.shutdown_background();
            // Neither the URL nor the parser's words (which quote it): a
            // URL may carry credentials.
            anyhow::bail!(
                "--otlp-endpoint is not a usable collector URL (e.g. http://127.0.0.1:4317)"
            );
        }
    };
    let name = args
        .otlp_service_name
        .clone()
        .unwrap_or_else(|| format!("mnemo-{service}"));
    let resource = Resource::builder()
        .with_service_name(name)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            format!("{}-{}", hostname(), std::process::id()),
        ))
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(OnItsRuntime {
            exporter: Arc::new(exporter),
            runtime: runtime.handle().clone(),
        })
        .with_sampler(sampler(args.otlp_sample_ratio))
        .with_resource(resource)
        .build();
    Ok((provider, runtime))
}

/// By the trace id alone, the same way in every process: a trace is
/// exported whole or not at all, and a caller's `traceparent` flag cannot
/// force (or hide) its requests past the ratio.
fn sampler(ratio: f64) -> Sampler {
    Sampler::TraceIdRatioBased(ratio)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The OTLP exporter, run on the exporter's own runtime: the batch
/// processor calls `export` from its plain thread.
#[derive(Debug)]
struct OnItsRuntime {
    exporter: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

impl SpanExporter for OnItsRuntime {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let exporter = self.exporter.clone();
        let task = self
            .runtime
            .spawn(async move { exporter.export(batch).await });
        async move {
            task.await.map_err(|e| {
                OTelSdkError::InternalFailure(format!("the export task failed: {e}"))
            })?
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, while the provider is built: the only owner.
        if let Some(exporter) = Arc::get_mut(&mut self.exporter) {
            exporter.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        Tracer as _,
    };

    /// Whether a span that continues a caller's context with `flags` is
    /// recorded and exported under `ratio`.
    fn sampled(ratio: f64, flags: TraceFlags) -> bool {
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler(ratio))
            .build();
        let caller = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            flags,
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(caller);
        let span = provider.tracer("test").start_with_context("request", &cx);
        span.span_context().is_sampled()
    }

    #[test]
    fn a_callers_sampled_flag_neither_forces_nor_hides_a_trace() {
        // Flagged sampled, past a ratio of 0: not exported.
        assert!(!sampled(0.0, TraceFlags::SAMPLED));
        // Flagged not sampled, under a ratio of 1: exported all the same.
        assert!(sampled(1.0, TraceFlags::default()));
        assert!(sampled(1.0, TraceFlags::SAMPLED));
    }
}
