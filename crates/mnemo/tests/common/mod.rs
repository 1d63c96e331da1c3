//! What the process-level tests share: a namespace of their own on the
//! machine's NATS (deleted afterwards), `mnemo serve` children, and facts
//! to wait on.

#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

pub fn nats_url() -> String {
    std::env::var("MNEMO_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The suite's NATS: [`nats_url`] with the credentials in `MNEMO_NATS_CREDS`
/// (deploy/local/test.sh exports both; the `mnemo` children inherit them).
pub fn nats() -> mnemo_bus::NatsOptions {
    mnemo_bus::NatsOptions::open(nats_url())
        .with_creds(std::env::var_os("MNEMO_NATS_CREDS").map(PathBuf::from))
        .with_key_file(std::env::var_os("MNEMO_KEY_FILE").map(PathBuf::from))
}

/// Runs `work` on a private runtime on a plain thread (for `new` and
/// `Drop`, which are sync and may run inside a runtime).
fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(rt.block_on(work))
    })
    .join()
    .ok()
    .flatten()
}

/// A corpus PDF, from `MNEMO_CORPUS_DIR` or `<repo>/../shared/corpus/pdf`.
pub fn corpus_pdf(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("MNEMO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pdf")
        });
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

/// A fresh namespace, declared by the operator (services may not create
/// streams) and deleted (streams, consumers, blobs) when dropped.
pub struct TestNamespace(pub mnemo_bus::Namespace);

impl TestNamespace {
    pub fn new() -> Self {
        let name = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let ns = mnemo_bus::Namespace::new(&name).expect("a valid namespace");
        let declare = ns.clone();
        on_own_runtime(async move {
            mnemo_bus::Bus::start(&nats(), mnemo_bus::Role::Operator, declare, 1)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .expect("a runtime")
        .expect("the operator declares the namespace on NATS");
        Self(ns)
    }

    pub fn name(&self) -> &str {
        self.0.as_str()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let ns = self.0.clone();
        on_own_runtime(async move {
            let nats = nats();
            let connect = mnemo_bus::setup::connect_once(
                &nats,
                mnemo_bus::Role::Operator,
                "mnemo tests cleanup",
            );
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(10), connect).await {
                let js = async_nats::jetstream::new(client);
                let _ = mnemo_bus::setup::delete_namespace(&js, &ns).await;
            }
        });
    }
}

/// A `mnemo serve <service>` child with its stderr (the log) to read.
pub struct Service {
    pub child: Child,
    pub log: Lines<BufReader<ChildStderr>>,
}

impl Service {
    /// Starts `mnemo serve <service> --namespace <ns>` with `extra` flags.
    pub fn start(service: &str, ns: &TestNamespace, extra: &[&str]) -> Self {
        Self::start_at(&nats_url(), service, ns, extra)
    }

    /// [`Service::start`] against the NATS at `url`.
    pub fn start_at(url: &str, service: &str, ns: &TestNamespace, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
            .args(["serve", service, "--namespace", ns.name()])
            .args(["--nats-url", url, "--log", "info"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mnemo runs");
        let Some(stderr) = child.stderr.take() else {
            panic!("stderr is piped")
        };
        Self {
            child,
            log: BufReader::new(stderr).lines(),
        }
    }

    /// Reads the log until a line has every one of `words` (Ok), an ERROR
    /// line or the end comes first (Err, with it), or `limit` passes.
    pub async fn wait_for_log(&mut self, words: &[&str], limit: Duration) -> Result<(), String> {
        let found = tokio::time::timeout(limit, async {
            while let Ok(Some(line)) = self.log.next_line().await {
                if words.iter().all(|w| line.contains(w)) {
                    return Ok(());
                }
                if line.contains("ERROR") {
                    return Err(line);
                }
            }
            Err("the service exited".to_owned())
        })
        .await;
        found.unwrap_or_else(|_| Err(format!("no log line with {words:?} within {limit:?}")))
    }

    /// Sends `signal` (`TERM`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running");
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid}");
    }
}
