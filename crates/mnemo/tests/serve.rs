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
