//! `mnemo serve <service>` as the process an operator runs: the pipeline
//! services need NATS alone (only the API and the projector use
//! PostgreSQL), and each stops cleanly on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn nats_url() -> String {
    std::env::var("MNEMO_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Deletes the test's namespace (streams, consumers) when dropped.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let ns = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let (Ok(client), Ok(ns)) = (
                    async_nats::connect(nats_url()).await,
                    mnemo_bus::Namespace::new(&ns),
                ) {
                    let js = async_nats::jetstream::new(client);
                    let _ = mnemo_bus::setup::delete_namespace(&js, &ns).await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn pipeline_services_start_without_postgresql_and_stop_on_sigterm() {
    let ns = Namespace(format!(
        "t_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    // The chunker and embedder need the prepared model (deploy/local/test.sh
    // sources .mnemo/model.env); without it only the extractor is tried.
    let mut services = vec!["extractor"];
    if std::env::var_os("MNEMO_MODEL_DIR").is_some() {
        services.extend(["chunker", "embedder"]);
    }
    for service in services {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
            .args(["serve", service, "--namespace", &ns.0])
            // Nothing listens there: a service that connected would fail.
            .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
            .args(["--nats-url", &nats_url(), "--log", "info"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mnemo runs");
        let Some(stderr) = child.stderr.take() else {
            panic!("stderr is piped")
        };
        let mut lines = BufReader::new(stderr).lines();
        let running = tokio::time::timeout(Duration::from_secs(120), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("consumer running") && line.contains(service) {
                    return Ok(());
                }
                if line.contains("ERROR") {
                    return Err(line);
                }
            }
            Err("the service exited".to_owned())
        })
        .await;
        assert!(
            matches!(running, Ok(Ok(()))),
            "`mnemo serve {service}` did not start without PostgreSQL: {running:?}"
        );
        let pid = child.id().expect("still running");
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("stops within a minute of SIGTERM")
            .expect("exit status");
        assert!(
            status.success(),
            "`mnemo serve {service}` exited with {status}"
        );
    }
}
