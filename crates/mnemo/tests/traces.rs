//! Traces (issue 20): with `--otlp-endpoint`, one trace follows an upload
//! from the client's request through the API, the extractor, the chunker
//! and the embedder to the projector's `indexed`, each service a process
//! of its own, exported over OTLP/gRPC to a collector inside the test.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Service, TestNamespace};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::document_service_client::DocumentServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::sync::watch;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP trace collector: every span exported to it, as they arrive.
#[derive(Clone)]
struct Collector(Arc<watch::Sender<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                });
            }
        }
        self.0.send_modify(|all| all.extend(received));
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts the collector on a free loopback port; its URL and what it got.
async fn collector() -> (String, watch::Receiver<Vec<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = watch::channel(Vec::new());
    let service = TraceServiceServer::new(Collector(Arc::new(tx)));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), rx)
}

/// Drops the namespace's read-model schema at the end of the test.
struct Schema(mnemo_bus::Namespace, String);

impl Drop for Schema {
    fn drop(&mut self) {
        let (ns, url) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(mnemo_projector::db::drop_schema(&url, &ns))
                .ok()
        })
        .join();
    }
}

/// Checks that `spans` hold one trace `trace` from the client's span
/// `client` to the projector's `index`: every stage a child of a span of
/// the stage before it, each exported by its own process. What is missing
/// (spans arrive in batches, each process on its own clock) is the error.
fn follows_the_upload(spans: &[Received], trace: &str, client: &str) -> Result<(), String> {
    let mut by_service: HashMap<&str, Vec<&Received>> = HashMap::new();
    for s in spans.iter().filter(|s| s.trace_id == trace) {
        by_service.entry(s.service.as_str()).or_default().push(s);
    }
    let ids = |service: &str| -> Vec<&str> {
        by_service
            .get(service)
            .map(|v| v.iter().map(|s| s.span_id.as_str()).collect())
            .unwrap_or_default()
    };
    let child_of = |service: &str, name: &str, parents: &[&str]| -> Result<(), String> {
        let found = by_service
            .get(service)
            .into_iter()
            .flatten()
            .any(|s| s.name == name && parents.contains(&s.parent_span_id.as_str()));
        found
            .then_some(())
            .ok_or_else(|| format!("no `{name}` span of {service} is a child of {parents:?}"))
    };
    // The API continues the client's context ...
    child_of("mnemo-api", "request", &[client])?;
    child_of("mnemo-api", "upload", &ids("mnemo-api"))?;
    // ... and every stage is the child of a span of the one before it,
    // each in its own process; the stages' own spans are inside their
    // deliveries.
    for (stage, before, own) in [
        ("mnemo-extractor", "mnemo-api", Some("extract")),
        ("mnemo-chunker", "mnemo-extractor", Some("chunk")),
        ("mnemo-embedder", "mnemo-chunker", Some("embed")),
    ] {
        child_of(stage, "deliver", &ids(before))?;
        if let Some(own) = own {
            child_of(stage, own, &ids(stage))?;
        }
    }
    child_of("mnemo-projector", "index", &ids("mnemo-embedder"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_an_upload_through_every_service_to_indexed() {
    assert!(
        std::env::var_os("MNEMO_MODEL_DIR").is_some(),
        "the chunker and embedder need the prepared model (deploy/local/test.sh sources .mnemo/model.env)"
    );
    let database_url = std::env::var("MNEMO_DATABASE_URL")
        .expect("MNEMO_DATABASE_URL (deploy/local/test.sh sources .mnemo/services.env)");
    let ns = TestNamespace::new();
    mnemo_projector::runner::prepare(&mnemo_projector::ProjectorConfig::new(
        ns.0.clone(),
        &database_url,
    ))
    .await
    .expect("the read-model schema");
    let _schema = Schema(ns.0.clone(), database_url.clone());
    let (endpoint, mut spans) = collector().await;

    let secret_dir = tempfile::tempdir().expect("a dir");
    let secret_file = secret_dir.path().join("jwt-secret");
    let secret = mnemo::secret::create_file(&secret_file).expect("a JWT secret");
    let api_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        l.local_addr().expect("addr").to_string()
    };
    let secret_path = secret_file.display().to_string();
    let common = [
        "--otlp-endpoint",
        endpoint.as_str(),
        "--jwt-secret-file",
        &secret_path,
    ];
    let mut services = Vec::new();
    for name in ["projector", "extractor", "chunker", "embedder"] {
        let mut s = Service::start(name, &ns, &common);
        let started = s.wait_for_log(&["running"], Duration::from_secs(120)).await;
        assert!(started.is_ok(), "`mnemo serve {name}`: {started:?}");
        services.push(s);
    }
    let mut api = Service::start(
        "api",
        &ns,
        &[&common[..], &["--listen", &api_addr]].concat(),
    );
    let listening = api
        .wait_for_log(&["gRPC API listening"], Duration::from_secs(120))
        .await;
    assert!(listening.is_ok(), "`mnemo serve api`: {listening:?}");

    // The client's own trace: the API's request span is its child.
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let client_span = "00f067aa0ba902b7";
    let token = mnemo_api::auth::Authenticator::new(&secret)
        .issue(
            &mnemo_domain::OwnerId::new("alice").expect("owner"),
            600,
            false,
        )
        .expect("a token");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{api_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("the API answers");
    let mut documents = DocumentServiceClient::new(channel);
    let text = b"# Traces\n\nThe kakapo note: one trace from upload to indexed.\n";
    let parts = vec![
        pb::UploadRequest {
            part: Some(pb::upload_request::Part::Metadata(pb::UploadMetadata {
                filename: "traces.md".into(),
                new_document: true,
                ..Default::default()
            })),
        },
        pb::UploadRequest {
            part: Some(pb::upload_request::Part::Chunk(text.to_vec())),
        },
    ];
    let mut request = tonic::Request::new(futures::stream::iter(parts));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{client_span}-01")
            .parse()
            .expect("ascii"),
    );
    documents.upload(request).await.expect("uploaded");

    // Each service exports its spans as the document passes through.
    let followed = tokio::time::timeout(
        Duration::from_secs(180),
        spans.wait_for(|all| follows_the_upload(all, &trace, client_span).is_ok()),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !followed {
        let all = spans.borrow();
        panic!(
            "{:?}; spans of trace {trace}: {:#?}",
            follows_the_upload(&all, &trace, client_span).err(),
            all.iter()
                .filter(|s| s.trace_id == trace)
                .collect::<Vec<_>>()
        );
    }

    api.signal("TERM");
    for s in &services {
        s.signal("TERM");
    }
    let status = tokio::time::timeout(Duration::from_secs(60), api.child.wait())
        .await
        .expect("the API stops within a minute of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "`mnemo serve api` exited with {status}");
}

/// A collector URL that cannot be used stops `serve` at once with a clear
/// error that does not repeat the URL (it may carry credentials); a sample
/// ratio outside 0–1 is refused by the command line.
#[tokio::test]
async fn a_bad_collector_url_or_ratio_stops_serve_with_a_clear_error() {
    let ns = TestNamespace::new();
    let url = "http://user:hunter2@[::not a url";
    let mut s = Service::start("extractor", &ns, &["--otlp-endpoint", url]);
    let line = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = s.log.next_line().await {
            if line.starts_with("error:") {
                return line;
            }
        }
        panic!("`mnemo serve` ended without an error line")
    })
    .await
    .expect("`mnemo serve` stops at once");
    assert!(
        line.contains("--otlp-endpoint is not a usable collector URL"),
        "{line}"
    );
    assert!(
        !line.contains("hunter2"),
        "the URL's secret is in the error: {line}"
    );
    let status = s.child.wait().await.expect("exit status");
    assert!(!status.success());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(["serve", "extractor", "--otlp-sample-ratio", "2"])
        .output()
        .expect("mnemo runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a ratio between 0 and 1"));
}
