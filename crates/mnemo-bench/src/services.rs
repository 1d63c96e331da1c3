//! mnemo's services as child processes, for benchmarks and evaluations that
//! run the real thing in a throwaway namespace: finding the `mnemo` binary,
//! starting, measuring (peak RSS, CPU), connecting to and stopping them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use mnemo::cli::Global;
use mnemo::client::{connect, Clients};
use tokio::process::{Child, Command};

/// The `mnemo` binary whose `serve …` and `extract-worker` the benchmarks
/// start: the processes that run in production, not copies linked into
/// this one. Beside `mnemo-bench` (same build), or `MNEMO_BIN`.
pub(crate) fn mnemo_binary() -> Result<PathBuf> {
    mnemo::binary::sibling("mnemo", "MNEMO_BIN")
}

/// One service child process.
pub(crate) struct ServiceProcess {
    pub name: &'static str,
    pub child: Child,
}

impl ServiceProcess {
    /// Peak resident set size so far, in bytes (Linux `VmHWM`).
    pub fn peak_rss(&self) -> Option<u64> {
        let pid = self.child.id()?;
        peak_rss_of(pid)
    }

    /// Asks the service to stop (SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// CPU seconds (user + system) a process has used so far, its waited-for
/// children included (the extractor's `pdftotext`s).
pub(crate) fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14–17 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Some(ticks as f64 / 100.0) // USER_HZ is 100 on Linux
}

pub(crate) fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A throwaway namespace for one run: declared by the operator, with its
/// read-model schema; [`Scratch::delete`] removes both.
pub(crate) struct Scratch {
    pub ns: mnemo_bus::Namespace,
    bus: mnemo_bus::Bus,
    database_url: String,
}

impl Scratch {
    /// A namespace `<prefix>_<random>`.
    pub async fn new(backend: &mnemo::cli::Backend, prefix: &str) -> Result<Self> {
        let ns = mnemo_bus::Namespace::new(format!(
            "{prefix}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))?;
        let bus = backend.operator_bus(ns.clone()).await?;
        mnemo_projector::runner::prepare(&mnemo_projector::ProjectorConfig::new(
            ns.clone(),
            &backend.database_url,
        ))
        .await?;
        Ok(Self {
            ns,
            bus,
            database_url: backend.database_url.clone(),
        })
    }

    /// Deletes the streams, bucket and schema.
    pub async fn delete(self) -> Result<()> {
        mnemo_bus::setup::delete_namespace(&self.bus.jetstream, &self.ns).await?;
        mnemo_projector::db::drop_schema(&self.database_url, &self.ns).await?;
        Ok(())
    }
}

/// A free TCP port on loopback for the API child.
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Connects to the API child at `port` with `token`, retrying while it
/// starts; fails early if a service already exited.
pub(crate) async fn connect_when_ready(
    global: &Global,
    port: u16,
    token: String,
    services: &mut [ServiceProcess],
) -> Result<Clients> {
    let mut client_global = global.clone();
    client_global.server = format!("http://127.0.0.1:{port}");
    client_global.token = Some(token);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match connect(&client_global).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                for s in services.iter_mut() {
                    if let Ok(Some(status)) = s.child.try_wait() {
                        bail!("`mnemo serve {}` exited early: {status}", s.name);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Benchmarks measure throughput, not the per-owner rate limit: their
/// servers let one owner call as often as it likes.
pub(crate) const UNLIMITED_RATE: [(&str, &str); 2] = [
    ("MNEMO_RATE_PER_OWNER", "1000000"),
    ("MNEMO_RATE_BURST", "1000000"),
];

/// `mnemo serve <each of services>` in namespace `ns` (declared by the
/// caller as the operator), the API on a free port, with a fresh JWT secret
/// in a 0600 file (no secret in a child's environment). Holds the children,
/// the API's port, and a token for `owner` valid for a week.
pub(crate) struct Served {
    pub services: Vec<ServiceProcess>,
    pub port: u16,
    pub token: String,
    /// Signs more owners' tokens ([`Served::token_for`]).
    auth: mnemo_api::auth::Authenticator,
    /// Starts a service (again) as the first ones were ([`Served::spawn`]).
    spawner: Spawner,
    /// Holds the secret file for as long as the servers run.
    _secret_dir: tempfile::TempDir,
}

/// `serve all`: every service in one process.
pub(crate) const ALL_IN_ONE: [&str; 1] = ["all"];
/// Every service in a process of its own.
pub(crate) const EACH_ALONE: [&str; 5] = ["projector", "extractor", "chunker", "embedder", "api"];

/// How the services are started: the binary and its environment.
struct Spawner {
    exe: PathBuf,
    env: Vec<(String, String)>,
}

impl Spawner {
    fn spawn(&self, name: &'static str, extra: &[(&str, String)]) -> Result<ServiceProcess> {
        use anyhow::Context;
        let child = Command::new(&self.exe)
            .args(["serve", name])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `mnemo serve {name}`"))?;
        Ok(ServiceProcess { name, child })
    }
}

impl Served {
    /// Starts `services`; `env` is more environment for the children
    /// (flags under test, e.g. `MNEMO_READ_AHEAD`).
    pub async fn start(
        global: &Global,
        backend: &mnemo::cli::Backend,
        ns: &mnemo_bus::Namespace,
        model_dir: &std::path::Path,
        owner: &str,
        services: &[&'static str],
        env: &[(&str, String)],
    ) -> Result<Self> {
        let port = free_port()?;
        let secret_dir = tempfile::tempdir()?;
        let secret_file = secret_dir.path().join("jwt-secret");
        let secret = String::from_utf8(mnemo::secret::create_file(&secret_file)?)?;
        let mut all: Vec<(String, String)> = backend
            .nats_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned()))
            .collect();
        all.extend([
            ("MNEMO_DATABASE_URL".into(), backend.database_url.clone()),
            ("MNEMO_NAMESPACE".into(), ns.as_str().to_owned()),
            ("MNEMO_LISTEN".into(), format!("127.0.0.1:{port}")),
            (
                "MNEMO_JWT_SECRET_FILE".into(),
                secret_file.display().to_string(),
            ),
            ("MNEMO_MODEL_DIR".into(), model_dir.display().to_string()),
        ]);
        all.extend(
            UNLIMITED_RATE
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        all.push((
            "MNEMO_LOG".into(),
            global.log.clone().unwrap_or_else(|| "warn".into()),
        ));
        let spawner = Spawner {
            exe: mnemo_binary()?,
            env: all,
        };
        let mut started = Vec::new();
        for &name in services {
            started.push(spawner.spawn(name, &[])?);
        }
        let auth = mnemo_api::auth::Authenticator::new(secret.as_bytes());
        let owner = mnemo_domain::OwnerId::new(owner.to_owned())?;
        let token = auth.issue(&owner, 7 * 24 * 3600, false)?;
        Ok(Self {
            services: started,
            port,
            token,
            auth,
            spawner,
            _secret_dir: secret_dir,
        })
    }

    /// Starts one more `mnemo serve <name>` as the first ones were (a
    /// restart after a fault, another copy), with more environment for
    /// this copy (its own `MNEMO_METRICS_LISTEN`, say).
    pub fn spawn_with(
        &self,
        name: &'static str,
        extra: &[(&str, String)],
    ) -> Result<ServiceProcess> {
        self.spawner.spawn(name, extra)
    }

    /// A token for another owner, valid for a week.
    pub fn token_for(&self, owner: &str) -> Result<String> {
        let owner = mnemo_domain::OwnerId::new(owner.to_owned())?;
        Ok(self.auth.issue(&owner, 7 * 24 * 3600, false)?)
    }
}
