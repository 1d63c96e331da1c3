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

/// A corpus PDF, from `MNEMO_CORPUS_DIR` or `<repo>/../shared/corpus/pdf`.
pub fn corpus_pdf(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("MNEMO_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pdf")
        });
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

/// A fresh namespace, deleted (streams, consumers, blobs) when dropped.
pub struct TestNamespace(pub mnemo_bus::Namespace);

impl TestNamespace {
    pub fn new() -> Self {
        let name = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Self(mnemo_bus::Namespace::new(&name).expect("a valid namespace"))
    }

    pub fn name(&self) -> &str {
        self.0.as_str()
    }
}

impl Drop for TestNamespace {
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
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let js = async_nats::jetstream::new(client);
                    let _ = mnemo_bus::setup::delete_namespace(&js, &ns).await;
                }
            });
        })
        .join();
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_mnemo"))
            .args(["serve", service, "--namespace", ns.name()])
            .args(["--nats-url", &nats_url(), "--log", "info"])
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
