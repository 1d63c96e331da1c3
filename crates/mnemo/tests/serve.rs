//! `mnemo serve <service>` as the process an operator runs: the pipeline
//! services need NATS alone (only the API and the projector use
//! PostgreSQL), and each stops cleanly on SIGTERM.

mod common;

use std::time::Duration;

use common::{Service, TestNamespace};

#[tokio::test]
async fn pipeline_services_start_without_postgresql_and_stop_on_sigterm() {
    let ns = TestNamespace::new();
    // The chunker and embedder need the prepared model (deploy/local/test.sh
    // sources .mnemo/model.env); without it only the extractor is tried.
    let mut services = vec!["extractor"];
    if std::env::var_os("MNEMO_MODEL_DIR").is_some() {
        services.extend(["chunker", "embedder"]);
    }
    for service in services {
        // Nothing listens there: a service that connected would fail.
        let mut s = Service::start(
            service,
            &ns,
            &["--database-url", "postgres://nobody@127.0.0.1:1/none"],
        );
        let running = s
            .wait_for_log(&["consumer running", service], Duration::from_secs(120))
            .await;
        assert!(
            running.is_ok(),
            "`mnemo serve {service}` did not start without PostgreSQL: {running:?}"
        );
        s.signal("TERM");
        let status = tokio::time::timeout(Duration::from_secs(60), s.child.wait())
            .await
            .expect("stops within a minute of SIGTERM")
            .expect("exit status");
        assert!(
            status.success(),
            "`mnemo serve {service}` exited with {status}"
        );
    }
}

/// `--metrics-listen` (issue 20): Prometheus text at `/metrics`, with the
/// consumer's state from JetStream as soon as it runs.
#[tokio::test]
async fn a_service_serves_its_metrics_for_prometheus() {
    // (and its probes, below)
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ns = TestNamespace::new();
    let addr = free_addr();
    let mut s = Service::start(
        "extractor",
        &ns,
        &[
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "--metrics-listen",
            &addr,
        ],
    );
    s.wait_for_log(&["consumer running", "extractor"], Duration::from_secs(120))
        .await
        .expect("the extractor runs");
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("the metrics port answers");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut page = String::new();
    tcp.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    for line in [
        "mnemo_consumer_running{service=\"extractor\"} 1",
        "mnemo_consumer_pending{service=\"extractor\"} 0",
        "mnemo_consumer_ack_pending{service=\"extractor\"} 0",
        "mnemo_dlq_messages 0",
    ] {
        assert!(page.contains(line), "{line} missing from:\n{page}");
    }
    for (path, status, body) in [
        ("/healthz", "HTTP/1.1 200", "alive"),
        ("/readyz", "HTTP/1.1 200", "ready: extractor"),
    ] {
        let page = get(&addr, path).await;
        assert!(
            page.starts_with(status) && page.contains(body),
            "{path}: {page}"
        );
    }
    s.signal("TERM");
    let _ = s.child.wait().await;
}

/// `GET path` on `addr`, the whole answer (status line, headers, body).
async fn get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the port answers");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut page = String::new();
    tcp.read_to_string(&mut page).await.unwrap();
    page
}

/// A service that cannot reach NATS is alive but not ready, and says why:
/// what an orchestrator's probes need to keep traffic off it.
#[tokio::test]
async fn a_service_without_nats_is_alive_but_not_ready() {
    let ns = TestNamespace::new();
    let addr = free_addr();
    let mut s = Service::start_at(
        "nats://127.0.0.1:1",
        "extractor",
        &ns,
        &["--metrics-listen", &addr],
    );
    s.wait_for_log(&["probes at /healthz"], Duration::from_secs(60))
        .await
        .expect("the port is served before NATS answers");
    let alive = get(&addr, "/healthz").await;
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
    let ready = get(&addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("not ready: extractor: starting"), "{ready}");
    s.signal("TERM");
    let _ = s.child.wait().await;
}

/// A loopback address with a port nobody listens on.
fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}
