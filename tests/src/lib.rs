//! Test harness for mnemo's end-to-end tests.
//!
//! [`TestEnv::start`] gives each test its own namespace (`t_<random>`) on the
//! real NATS and PostgreSQL — its own stream, blob bucket, consumers and SQL
//! schema — and runs the API (on `127.0.0.1:0`) and the projector in-process.
//! Dropping the env stops them and deletes the namespace, so tests run in
//! parallel and leave nothing behind. [`TestEnv::stop_api`] /
//! [`TestEnv::start_api`] / [`TestEnv::restart_api`] stop the API as SIGTERM
//! would and start a fresh one on the same address and namespace.
//!
//! Each in-process service signs in to NATS as its own role (`nats.conf`)
//! and the test itself as the operator (it declares and deletes the
//! namespace), so the suite runs every role's permissions; [`PrivateNats`]
//! is a secured server of the test's own from the repo's `nats.conf`.
//!
//! `MNEMO_NATS_URL` and `MNEMO_NATS_CREDS` (exported by
//! `deploy/local/test.sh` from what `bootstrap.sh` started: the project's
//! secured nats-server) and `MNEMO_TEST_DATABASE_URL` point the tests at
//! the servers; without them, an open NATS on 4222.

pub mod fake_llm;
pub mod rebuild_watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mnemo_api::auth::Authenticator;
use mnemo_api::{ApiConfig, ApiState};
use mnemo_bus::{
    Bus, CommandExecutor, JetStreamEventStore, Namespace, NatsOptions, RetryPolicy, Role,
};
use mnemo_domain::{Document, OwnerId};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::document_service_client::DocumentServiceClient;
use mnemo_proto::v1::progress_service_client::ProgressServiceClient;
use mnemo_proto::v1::qa_service_client::QaServiceClient;
use mnemo_proto::v1::search_service_client::SearchServiceClient;
use mnemo_proto::v1::stats_service_client::StatsServiceClient;
use mnemo_proto::v1::upload_request::Part;
use mnemo_proto::v1::upload_service_client::UploadServiceClient;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub fn nats_url() -> String {
    std::env::var("MNEMO_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The suite's NATS: [`nats_url`] with the credentials directory in
/// `MNEMO_NATS_CREDS` (none: an open server) and the key file in
/// `MNEMO_KEY_FILE` (deploy/local/test.sh exports both).
pub fn nats() -> NatsOptions {
    NatsOptions::open(nats_url())
        .with_creds(std::env::var_os("MNEMO_NATS_CREDS").map(PathBuf::from))
        .with_key_file(std::env::var_os("MNEMO_KEY_FILE").map(PathBuf::from))
}

/// The repository's `nats.conf`.
pub fn repo_nats_conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../nats.conf")
}

pub fn database_url() -> String {
    std::env::var("MNEMO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh namespace name for one test.
pub fn fresh_namespace() -> Namespace {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Namespace::new(format!("t_{}", &id[..12])).expect("generated namespace is valid")
}

/// The prepared model: MNEMO_MODEL_DIR, else `<repo>/.mnemo/models/all-MiniLM-L6-v2`
/// (deploy/model/prepare.sh; deploy/local/test.sh runs it). The embedder
/// finds onnxruntime through ORT_DYLIB_PATH, which test.sh exports.
pub fn model_dir() -> PathBuf {
    std::env::var_os("MNEMO_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.mnemo/models/all-MiniLM-L6-v2")
        })
}

/// The second model, for backfills: MNEMO_BACKFILL_MODEL_DIR, else
/// `<repo>/.mnemo/models/all-MiniLM-L6-v2-int8` (prepare.sh quantizes it).
pub fn backfill_model_dir() -> PathBuf {
    std::env::var_os("MNEMO_BACKFILL_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.mnemo/models/all-MiniLM-L6-v2-int8")
        })
}

/// The extractor's config in tests: the pdf-rs worker is this package's
/// `mnemo-extract-worker` binary (the test binary cannot re-run itself as
/// `mnemo extract-worker`). Cargo builds it before the integration tests,
/// next to their `deps/` directory.
pub fn extractor_config() -> mnemo_extractor::ExtractorConfig {
    let exe = std::env::current_exe().expect("the test binary's path");
    let worker = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("mnemo-extract-worker"))
        .find(|p| p.is_file())
        .expect("mnemo-extract-worker is built with the tests (cargo test -p mnemo-tests)");
    mnemo_extractor::ExtractorConfig {
        pdf_worker: Some(mnemo_extractor::pdf_worker::PdfWorker {
            program: worker,
            args: Vec::new(),
        }),
        ..Default::default()
    }
}

/// The shared PDF corpus: `MNEMO_CORPUS_DIR` if set, else
/// `../shared/corpus/pdf` beside the repository (whatever the checkout is
/// called, e.g. a worktree), never a machine's absolute path.
pub fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MNEMO_CORPUS_DIR") {
        return PathBuf::from(dir);
    }
    // This crate is `<repo>/tests`.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pdf")
}

/// Bytes of a corpus PDF. Falls back to a small hand-written PDF (and says
/// so) where the shared corpus is absent.
pub fn corpus_pdf(name: &str) -> Vec<u8> {
    match std::fs::read(corpus_dir().join(name)) {
        Ok(b) => b,
        Err(_) => {
            eprintln!("corpus file {name} not found; using a generated PDF");
            minimal_pdf()
        }
    }
}

/// A tiny valid one-page PDF with one line of text.
pub fn minimal_pdf() -> Vec<u8> {
    let body = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R/Resources<</Font<</F1 5 0 R>>>>>>endobj\n4 0 obj<</Length 44>>stream\nBT /F1 12 Tf 72 720 Td (Hello mnemo) Tj ET\nendstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n";
    body.to_vec()
}

pub type Documents = DocumentServiceClient<InterceptedService<Channel, BearerInterceptor>>;
pub type Progress = ProgressServiceClient<InterceptedService<Channel, BearerInterceptor>>;
pub type StatsClient = StatsServiceClient<InterceptedService<Channel, BearerInterceptor>>;
pub type SearchClient = SearchServiceClient<InterceptedService<Channel, BearerInterceptor>>;
pub type Uploads = UploadServiceClient<InterceptedService<Channel, BearerInterceptor>>;
pub type QaClient = QaServiceClient<InterceptedService<Channel, BearerInterceptor>>;

#[derive(Clone)]
pub struct BearerInterceptor(Option<String>);

impl BearerInterceptor {
    /// Sends `token` as the bearer of every call.
    pub fn new(token: String) -> Self {
        Self(Some(token))
    }
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            let v = format!("Bearer {t}")
                .parse()
                .map_err(|_| tonic::Status::internal("bad token"))?;
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }
}

/// Options for [`TestEnv::start_with`].
#[derive(Clone)]
pub struct EnvOptions {
    pub max_upload_bytes: u64,
    pub run_api: bool,
    pub run_projector: bool,
    /// Also run the extractor, chunker and embedder (needs the prepared model).
    pub run_pipeline: bool,
    /// The API's per-watcher progress queue (None: the default).
    pub watch_queue: Option<usize>,
    /// The API's limits (None: the defaults).
    pub limits: Option<mnemo_api::config::Limits>,
    /// The pipeline's extractor config (default: [`extractor_config`]).
    pub extractor: Option<mnemo_extractor::ExtractorConfig>,
    /// The API's chat model for answers and cards (None: offline only).
    pub llm: Option<Arc<dyn mnemo_qa::Llm>>,
    /// More models the API can embed queries with (`UseModel` switches to
    /// them), as `serve --extra-model-dir` loads them.
    pub extra_models: Vec<Arc<mnemo_embedder::Embedder>>,
    /// Another NATS than the suite's (e.g. a [`PrivateNats`] the test
    /// restarts); None: [`nats`].
    pub nats: Option<NatsOptions>,
    /// TLS on the API's port (None: plaintext).
    pub tls: Option<mnemo_api::config::TlsFiles>,
    /// JetStream replicas of the namespace's streams (3 on a cluster).
    pub replicas: usize,
    /// Another PostgreSQL than the suite's (e.g. a [`PrivatePostgres`] the
    /// test restarts); None: [`database_url`].
    pub database_url: Option<String>,
    /// Bytes of owners' search state the API holds (None: the default).
    pub search_budget: Option<usize>,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            max_upload_bytes: mnemo_api::config::DEFAULT_MAX_UPLOAD_BYTES,
            run_api: true,
            run_projector: true,
            run_pipeline: false,
            watch_queue: None,
            limits: None,
            extractor: None,
            llm: None,
            extra_models: Vec::new(),
            nats: None,
            tls: None,
            replicas: 1,
            database_url: None,
            search_budget: None,
        }
    }
}

/// A nats-server of the test's own, secured as the project runs it: the
/// repo's `nats.conf` with a fresh nkey per role (seeds in a temp dir),
/// JetStream in a store dir of its own, free loopback ports. The test can
/// kill it and start it again on the same port and store — what an
/// operator's restart or crash does.
pub struct PrivateNats {
    port: u16,
    monitor_port: u16,
    store: tempfile::TempDir,
    creds: tempfile::TempDir,
    /// Each role's public key, by the environment variable that carries it.
    public_keys: Vec<(String, String)>,
    /// The config it runs: the repo's, or one derived from it in here.
    conf: PathBuf,
    /// A second deployment's credentials ([`PrivateNats::with_second_deployment`]).
    other: Option<(tempfile::TempDir, tempfile::TempDir)>,
    child: Option<std::process::Child>,
}

/// The repo's `nats.conf` with its `MNEMO` account copied as `OTHER`, keys
/// from `OTHER_NKEY_<ROLE>`: the recipe docs/security.md gives for two
/// deployments that must not see each other.
pub fn two_deployments_conf(repo_conf: &str) -> String {
    let start = repo_conf
        .find("  MNEMO {")
        .expect("nats.conf defines the MNEMO account");
    let mut depth = 0;
    let mut end = None;
    for (i, c) in repo_conf[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = Some(start + i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let end = end.expect("the MNEMO block ends");
    let other = repo_conf[start..end]
        .replacen("MNEMO {", "OTHER {", 1)
        .replace("$MNEMO_NKEY_", "$OTHER_NKEY_");
    format!("{}\n{other}{}", &repo_conf[..end], &repo_conf[end..])
}

/// Fresh nkeys for every role: the seeds' directory, and each public key
/// by the environment variable nats.conf reads it from.
fn role_credentials() -> (tempfile::TempDir, Vec<(String, String)>) {
    let creds = tempfile::tempdir().expect("a credentials dir");
    let public_keys = mnemo_bus::credentials::ensure_credentials(creds.path())
        .expect("role credentials")
        .into_iter()
        .map(|(role, key)| (role.public_key_env(), key))
        .collect();
    (creds, public_keys)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivateNats {
    pub fn start() -> Self {
        let mut nats = Self::prepare();
        nats.spawn();
        nats
    }

    /// Also runs a second deployment, account `OTHER`, with credentials of
    /// its own ([`Self::other_nats`]).
    pub fn with_second_deployment() -> Self {
        let mut nats = Self::prepare();
        let creds = tempfile::tempdir().expect("a credentials dir");
        let keys = mnemo_bus::credentials::ensure_credentials(creds.path()).expect("credentials");
        nats.public_keys.extend(
            keys.into_iter()
                .map(|(role, key)| (role.public_key_env().replacen("MNEMO_", "OTHER_", 1), key)),
        );
        let dir = tempfile::tempdir().expect("a config dir");
        let repo = std::fs::read_to_string(repo_nats_conf()).expect("the repo's nats.conf");
        nats.conf = dir.path().join("nats.conf");
        std::fs::write(&nats.conf, two_deployments_conf(&repo)).expect("the derived config");
        nats.other = Some((creds, dir));
        nats.spawn();
        nats
    }

    fn prepare() -> Self {
        let (creds, public_keys) = role_credentials();
        Self {
            port: free_port(),
            monitor_port: free_port(),
            store: tempfile::tempdir().expect("a store dir"),
            creds,
            public_keys,
            conf: repo_nats_conf(),
            other: None,
            child: None,
        }
    }

    /// The second deployment's URL and credentials (same server).
    pub fn other_nats(&self) -> NatsOptions {
        let (creds, _) = self.other.as_ref().expect("started with_second_deployment");
        NatsOptions::open(self.url())
            .with_creds(Some(creds.path().to_path_buf()))
            .with_key_file(nats().key_file)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The URL with the directory of every role's seed.
    pub fn nats(&self) -> NatsOptions {
        NatsOptions::open(self.url())
            .with_creds(Some(self.creds.path().to_path_buf()))
            .with_key_file(nats().key_file)
    }

    fn spawn(&mut self) {
        let mut command = std::process::Command::new(
            std::env::var("MNEMO_NATS_SERVER").unwrap_or_else(|_| "nats-server".into()),
        );
        command
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(self.public_keys.iter().map(|(env, k)| (env, k)))
            .arg("-c")
            .arg(&self.conf)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string(), "-sd"])
            .arg(self.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = command
            .spawn()
            .expect("nats-server runs (deploy/local/bootstrap.sh installs it)");
        self.child = Some(child);
        // Ready once it accepts connections.
        let ready = (0..200).any(|_| {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
            false
        });
        assert!(ready, "the private nats-server listens on {}", self.port);
    }

    /// Kills the server (SIGKILL: nothing flushed on the way out).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of the test's own: `initdb` in a temp dir, run as
/// the `postgres` system user on a free loopback port (no fsync), its
/// superuser signed in with a random password (SCRAM): another local user
/// gets nothing from it.
/// Unlike the machine's, a test may crash it (`pg_ctl stop -m immediate`,
/// what a killed server leaves) and start it again on the same data.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
}

impl PrivatePostgres {
    /// Makes the cluster and starts it.
    pub fn start() -> Self {
        let bin = std::env::var_os("MNEMO_PG_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .filter(|p| p.join("initdb").is_file())
                    .collect();
                found.sort();
                found.pop()
            })
            .expect(
                "PostgreSQL's server binaries (/usr/lib/postgresql/<version>/bin, or MNEMO_PG_BIN)",
            );
        let dir = tempfile::tempdir().expect("a dir");
        let chown = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown runs");
        assert!(chown.success(), "the dir is given to the postgres user");
        let pg = Self {
            dir,
            bin,
            port: free_port(),
            password: uuid::Uuid::new_v4().simple().to_string(),
        };
        let pwfile = pg.dir.path().join("pw");
        std::fs::write(&pwfile, &pg.password).expect("the password file");
        let chown = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(&pwfile)
            .status()
            .expect("chown runs");
        assert!(chown.success());
        pg.as_postgres(
            "initdb",
            &[
                "-A",
                "scram-sha-256",
                "-U",
                "postgres",
                "--no-sync",
                "--pwfile",
            ],
            &[pwfile.clone(), "-D".into(), pg.data()],
        );
        let _ = std::fs::remove_file(pwfile);
        pg.start_again();
        pg
    }

    /// Where the services connect.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `<bin>/<tool> args… paths…` as the postgres user.
    fn as_postgres(&self, tool: &str, args: &[&str], paths: &[PathBuf]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .args(paths)
            .output()
            .expect("runuser runs");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Starts the server (again) on its port and data; returns once it
    /// accepts connections (`pg_ctl -w`).
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.as_postgres(
            "pg_ctl",
            &["-w", "-o", &options, "-l"],
            &[
                self.dir.path().join("log"),
                "-D".into(),
                self.data(),
                "start".into(),
            ],
        );
    }

    /// Stops the server at once, as a crash does: no checkpoint, every
    /// connection cut; the next start recovers from the WAL.
    pub fn crash(&self) {
        self.as_postgres(
            "pg_ctl",
            &["-w", "-m", "immediate", "-D"],
            &[self.data(), "stop".into()],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }
}

/// A NATS JetStream cluster of the test's own: `n` nats-servers, each in a
/// network namespace of its own, on a bridge the test makes (the
/// benchmark range 198.18.0.0/15, never a real network). Each runs the
/// repository's `nats.conf` (the same fresh nkeys for every node), routed
/// to the others, JetStream in a store dir each. A node can be killed and
/// started again on its address and store (a crash and a restart), or cut
/// off the network and put back (a partition and its healing). Needs
/// CAP_NET_ADMIN (root), as CI has; everything is removed when dropped.
pub struct NatsCluster {
    creds: tempfile::TempDir,
    public_keys: Vec<(String, String)>,
    /// Held for the bridge: it goes after the nodes (fields drop after `drop`).
    _net: TestNet,
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    name: String,
    /// Its network namespace.
    netns: String,
    /// Its address on the bridge.
    ip: String,
    /// The bridge's end of its veth pair: down is a partition.
    link: String,
    store: tempfile::TempDir,
    child: Option<std::process::Child>,
}

/// A bridge in the test's network namespace, with an address on it, that
/// the nodes' namespaces are attached to. It owns them: dropped, it kills
/// what runs in them and deletes them and the bridge. Names carry the
/// test process's pid, so what a killed run left is swept by the next.
struct TestNet {
    /// `<pid hex><counter hex>`: in the bridge's and links' names.
    id: String,
    bridge: String,
    /// `198.18.N`: the bridge is `.1`, node i is `.(11 + i)`.
    subnet: String,
    /// The namespaces made so far.
    hosts: Vec<String>,
}

/// Runs `ip args…`; panics with its error output if it fails.
fn ip(args: &[&str]) {
    let out = ip_output(args);
    assert!(
        out.status.success(),
        "ip {}: {} (the cluster tests make network namespaces: they need CAP_NET_ADMIN)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn ip_output(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` runs (Debian's iproute2)")
}

/// Kills whatever runs in network namespace `netns` and deletes it.
fn remove_netns(netns: &str) {
    let pids = ip_output(&["netns", "pids", netns]);
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .output();
    }
    let _ = ip_output(&["netns", "del", netns]);
}

impl TestNet {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        Self::sweep();
        let pid = std::process::id();
        let count = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{pid:x}{:x}", count % 16);
        // A /24 of the benchmark range no interface has yet.
        let subnet = (0..256u32)
            .map(|k| format!("198.18.{}", (pid + count + k) & 0xff))
            .find(|subnet| {
                let taken = ip_output(&["-o", "addr", "show", "to", &format!("{subnet}.0/24")]);
                taken.status.success() && taken.stdout.is_empty()
            })
            .expect("a free /24 in 198.18.0.0/16");
        let net = Self {
            bridge: format!("mnb{id}"),
            subnet,
            id,
            hosts: Vec::new(),
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.subnet),
            "dev",
            &net.bridge,
        ]);
        ip(&["link", "set", &net.bridge, "up"]);
        net
    }

    /// Removes the namespaces and bridges of test processes that are gone
    /// (killed before their `Drop` ran).
    fn sweep() {
        let gone = |pid: &str| {
            pid.parse::<u32>()
                .is_ok_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        };
        let list = ip_output(&["netns", "list"]);
        for name in String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
        {
            let pid = name
                .strip_prefix("mnemo-")
                .and_then(|r| r.split('-').next());
            if pid.is_some_and(gone) {
                remove_netns(name);
            }
        }
        let links = ip_output(&["-o", "link", "show", "type", "bridge"]);
        for name in String::from_utf8_lossy(&links.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(str::trim))
        {
            // `mnb<pid hex><counter hex>`
            let Some(id) = name.strip_prefix("mnb").filter(|id| id.len() >= 2) else {
                continue;
            };
            let pid = u32::from_str_radix(&id[..id.len() - 1], 16);
            if pid.is_ok_and(|p| gone(&p.to_string())) {
                let _ = ip_output(&["link", "del", name]);
            }
        }
    }

    /// Attaches a fresh namespace as host `i`: its name, address and the
    /// bridge's end of its link.
    fn host(&mut self, i: usize) -> (String, String, String) {
        let netns = format!("mnemo-{}-{}-{i}", std::process::id(), self.id);
        let link = format!("mnv{}{i}", self.id);
        let addr = format!("{}.{}", self.subnet, 11 + i);
        ip(&["netns", "add", &netns]);
        self.hosts.push(netns.clone());
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["link", "set", &link, "master", &self.bridge, "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        (netns, addr, link)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for netns in &self.hosts {
            remove_netns(netns);
        }
        let _ = ip_output(&["link", "del", &self.bridge]);
    }
}

/// The ports every node listens on in its namespace.
const CLIENT_PORT: u16 = 4222;
const MONITOR_PORT: u16 = 8222;
const ROUTE_PORT: u16 = 6222;

impl NatsCluster {
    /// Starts `n` nodes and waits until JetStream has a meta leader.
    pub async fn start(n: usize) -> Self {
        let (creds, public_keys) = role_credentials();
        let mut net = TestNet::new();
        let nodes = (0..n)
            .map(|i| {
                let (netns, ip, link) = net.host(i);
                ClusterNode {
                    name: format!("n{}", i + 1),
                    netns,
                    ip,
                    link,
                    store: tempfile::tempdir().expect("a store dir"),
                    child: None,
                }
            })
            .collect();
        let mut cluster = Self {
            creds,
            public_keys,
            _net: net,
            nodes,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.until_jetstream_answers().await;
        cluster
    }

    /// Every node's URL (the client fails over between them), with every
    /// role's seed and the suite's key file.
    pub fn nats(&self) -> NatsOptions {
        let url = self
            .nodes
            .iter()
            .map(|n| format!("nats://{}:{CLIENT_PORT}", n.ip))
            .collect::<Vec<_>>()
            .join(",");
        NatsOptions::open(url)
            .with_creds(Some(self.creds.path().to_path_buf()))
            .with_key_file(nats().key_file)
    }

    /// The index of the node named `name` (a stream's leader, say).
    pub fn node(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its address and store.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.until_jetstream_answers().await;
    }

    /// Cuts node `i` off the network: its peers and its clients reach it
    /// no more, and it reaches nobody (packets are dropped, nothing is
    /// refused: each side finds out by its own timeouts).
    pub fn partition(&self, i: usize) {
        ip(&["link", "set", &self.nodes[i].link, "down"]);
    }

    /// Puts node `i` back on the network.
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.nodes[i].link, "up"]);
    }

    fn spawn(&mut self, i: usize) {
        let routes = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://{}:{ROUTE_PORT}", n.ip))
            .collect::<Vec<_>>()
            .join(",");
        let node = &self.nodes[i];
        let server = std::env::var("MNEMO_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = std::process::Command::new("ip")
            .env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(self.public_keys.iter().map(|(env, k)| (env, k)))
            .args(["netns", "exec", &node.netns, &server, "-c"])
            .arg(repo_nats_conf())
            .args(["--name", &node.name, "-a", &node.ip, "-p"])
            .arg(CLIENT_PORT.to_string())
            .args(["-m", &MONITOR_PORT.to_string()])
            .args(["--cluster_name", "mnemo_test", "--cluster"])
            .arg(format!("nats://{}:{ROUTE_PORT}", node.ip))
            .args(["--routes", &routes, "-sd"])
            .arg(node.store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs (deploy/local/bootstrap.sh installs it)");
        self.nodes[i].child = Some(child);
    }

    /// Waits (on the server's answers, bounded) until JetStream answers
    /// account requests through every running node: a meta leader exists.
    async fn until_jetstream_answers(&self) {
        let options = self.nats();
        let answered = eventually(Duration::from_secs(60), || {
            let options = options.clone();
            async move {
                let Ok(client) =
                    mnemo_bus::setup::connect_once(&options, Role::Operator, "cluster check").await
                else {
                    return false;
                };
                match client.request("$JS.API.INFO", bytes::Bytes::new()).await {
                    Ok(m) => serde_json::from_slice::<serde_json::Value>(&m.payload)
                        .map(|v| v.get("error").is_none())
                        .unwrap_or(false),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(answered, "the cluster's JetStream answers");
    }
}

impl Drop for NatsCluster {
    /// The servers first; the network goes with `_net` after.
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// One test's world: namespace, bus, and optionally the API and projector.
pub struct TestEnv {
    pub ns: Namespace,
    /// The operator's connection (the test's own).
    pub bus: Bus,
    /// Where NATS is and every role's credential.
    pub nats: NatsOptions,
    /// JetStream replicas of the namespace's streams.
    pub replicas: usize,
    /// The read models' PostgreSQL.
    pub database_url: String,
    /// The API's connection (signed in as `api`).
    api_bus: Option<Bus>,
    pub addr: Option<SocketAddr>,
    pub auth: Authenticator,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What it takes to start the API (again), and the running one.
    api_setup: Option<ApiSetup>,
    api: Option<RunningApi>,
}

/// Everything the in-process API is started from; kept for restarts.
struct ApiSetup {
    database_url: String,
    secret: Vec<u8>,
    max_upload_bytes: u64,
    watch_queue: Option<usize>,
    limits: Option<mnemo_api::config::Limits>,
    index: Arc<mnemo_search::Indexes>,
    /// The served model first, then the extra ones.
    models: Vec<Arc<mnemo_embedder::Embedder>>,
    llm: Option<Arc<dyn mnemo_qa::Llm>>,
    tls: Option<mnemo_api::config::TlsFiles>,
}

struct RunningApi {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Longest an API may take to stop before a test calls its shutdown hung.
pub const API_STOP_LIMIT: Duration = Duration::from_secs(15);

impl ApiSetup {
    /// Serves a fresh `ApiState` (so a fresh progress hub) on `listener`.
    async fn start(&self, bus: &Bus, listener: tokio::net::TcpListener) -> RunningApi {
        let addr = listener.local_addr().expect("addr");
        let mut config = ApiConfig::new(addr, self.database_url.clone(), self.secret.clone());
        config.max_upload_bytes = self.max_upload_bytes;
        config.tls = self.tls.clone();
        // Longer than a test waits for the API to stop: streams that held
        // the graceful shutdown open would fail the test, not be cut.
        config.shutdown_grace = API_STOP_LIMIT * 2;
        // Tests poll the API freely: the rate limit is tested on its own
        // (a test that sets `limits` gets exactly those).
        config.limits.rate = mnemo_api::rate::RateConfig {
            per_second: 1_000_000,
            burst: 1_000_000,
        };
        if let Some(limits) = &self.limits {
            config.limits = limits.clone();
        }
        if let Some(q) = self.watch_queue {
            config.watch_queue = q;
        }
        let state = ApiState::new(bus.clone(), config)
            .await
            .expect("api state")
            .with_search(mnemo_api::search::SearchState {
                queries: Default::default(),
                index: self.index.clone(),
                embedders: self.models.clone(),
                fusion: Default::default(),
            });
        let state = match &self.llm {
            Some(llm) => state.with_llm(llm.clone()),
            None => state,
        };
        let state = Arc::new(state);
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = mnemo_api::serve(state, listener, stopped).await {
                eprintln!("api failed: {e}");
            }
        });
        RunningApi { stop, task }
    }
}

impl TestEnv {
    pub async fn start() -> Self {
        Self::start_with(EnvOptions::default()).await
    }

    pub async fn start_with(opts: EnvOptions) -> Self {
        let ns = fresh_namespace();
        let nats = opts.nats.clone().unwrap_or_else(nats);
        // The test is the operator: it declares the namespace (and deletes
        // it when dropped); each service signs in as its own role.
        let replicas = opts.replicas;
        let bus = Bus::start(&nats, Role::Operator, ns.clone(), replicas)
            .await
            .expect("NATS with JetStream must run (deploy/local/bootstrap.sh)");
        let as_role = |role: Role| {
            let (nats, ns) = (nats.clone(), ns.clone());
            async move {
                Bus::start(&nats, role, ns, replicas)
                    .await
                    .unwrap_or_else(|e| panic!("the {role} signs in to NATS: {e}"))
            }
        };
        let database_url = opts.database_url.clone().unwrap_or_else(database_url);
        let projector_config = mnemo_projector::ProjectorConfig::new(ns.clone(), &database_url);
        mnemo_projector::runner::prepare(&projector_config)
            .await
            .expect("PostgreSQL must run (deploy/local/bootstrap.sh)");
        let secret = uuid::Uuid::new_v4().simple().to_string().into_bytes();
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if opts.run_projector {
            let (b, rx) = (as_role(Role::Projector).await, stop.subscribe());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = mnemo_projector::run(b, projector_config, stopped(rx)).await {
                    eprintln!("projector failed: {e}");
                }
            }));
        }
        // With the pipeline, the API also searches with the same model.
        let mut search_model = None;
        if opts.run_pipeline {
            let model = load_model();
            search_model = Some(model.clone());
            let (b, rx) = (as_role(Role::Extractor).await, stop.subscribe());
            let config = opts.extractor.clone().unwrap_or_else(extractor_config);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = mnemo_extractor::run(b, config, stopped(rx)).await {
                    eprintln!("extractor failed: {e}");
                }
            }));
            tasks.extend(spawn_chunker_and_embedder(
                &as_role(Role::Chunker).await,
                &as_role(Role::Embedder).await,
                model,
                &stop,
            ));
        }
        let mut addr = None;
        let (mut api_setup, mut api, mut api_bus) = (None, None, None);
        if opts.run_api {
            let bus = as_role(Role::Api).await;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr = listener.local_addr().ok();
            let vectors = mnemo_search::VectorIndex::new(384);
            let vectors = match &search_model {
                Some(m) => vectors.for_model(m.model_id()),
                None => vectors,
            };
            let index = Arc::new(mnemo_search::Indexes::with_budget(
                vectors,
                mnemo_search::TermIndex::default(),
                opts.search_budget.unwrap_or(mnemo_search::DEFAULT_BUDGET),
            ));
            let (b, rx) = (bus.clone(), stop.subscribe());
            let (follow_index, url) = (index.clone(), database_url.clone());
            tasks.push(tokio::spawn(async move {
                tokio::select! {
                    r = mnemo_search::follow(b, url, follow_index) => {
                        if let Err(e) = r {
                            eprintln!("search index failed: {e}");
                        }
                    }
                    _ = stopped(rx) => {}
                }
            }));
            let setup = ApiSetup {
                database_url: database_url.clone(),
                secret: secret.clone(),
                max_upload_bytes: opts.max_upload_bytes,
                watch_queue: opts.watch_queue,
                limits: opts.limits.clone(),
                index,
                models: search_model.into_iter().chain(opts.extra_models).collect(),
                llm: opts.llm.clone(),
                tls: opts.tls.clone(),
            };
            api = Some(setup.start(&bus, listener).await);
            api_setup = Some(setup);
            api_bus = Some(bus);
        }
        Self {
            ns,
            bus,
            nats,
            replicas,
            database_url,
            api_bus,
            addr,
            auth: Authenticator::new(&secret),
            stop,
            tasks,
            api_setup,
            api,
        }
    }

    /// Stops the in-process API the way `mnemo serve` stops on SIGTERM and
    /// returns how long that took; fails the test if it takes longer than
    /// [`API_STOP_LIMIT`] (a graceful shutdown held open by streams).
    pub async fn stop_api(&mut self) -> Duration {
        let api = self.api.take().expect("the API is running");
        let started = tokio::time::Instant::now();
        let _ = api.stop.send(true);
        tokio::time::timeout(API_STOP_LIMIT, api.task)
            .await
            .expect("the API stops within the limit (open streams must end)")
            .expect("the API task");
        started.elapsed()
    }

    /// The API's search indexes (which owners are held, how far they are).
    pub fn search_index(&self) -> Arc<mnemo_search::Indexes> {
        let setup = self.api_setup.as_ref().expect("this env runs an API");
        setup.index.clone()
    }

    /// Starts the API again on the same address and namespace (a new
    /// process would look the same: nothing but the streams is shared).
    pub async fn start_api(&mut self) {
        assert!(self.api.is_none(), "the API is already running");
        let addr = self.addr.expect("this env runs an API");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("the API's address is free again");
        let setup = self.api_setup.as_ref().expect("this env runs an API");
        let bus = self.api_bus.as_ref().expect("this env runs an API");
        self.api = Some(setup.start(bus, listener).await);
    }

    /// [`stop_api`](Self::stop_api), then [`start_api`](Self::start_api).
    pub async fn restart_api(&mut self) -> Duration {
        let took = self.stop_api().await;
        self.start_api().await;
        took
    }

    /// A connection to this env's namespace signed in as `role`.
    pub async fn bus_as(&self, role: Role) -> Bus {
        Bus::start(&self.nats, role, self.ns.clone(), self.replicas)
            .await
            .unwrap_or_else(|e| panic!("the {role} signs in to NATS: {e}"))
    }

    /// A token for `owner`, signed with this env's secret.
    /// `owner`'s data key (made if they have none yet), to open what is
    /// sealed with it.
    pub async fn owner_key(&self, owner: &str) -> mnemo_bus::OwnerKey {
        self.bus
            .keys
            .for_writing(&OwnerId::new(owner).expect("owner").token())
            .await
            .expect("the owner's key")
    }

    pub fn token(&self, owner: &str) -> String {
        self.auth
            .issue(&OwnerId::new(owner).expect("owner"), 3600, false)
            .expect("token")
    }

    pub async fn channel(&self) -> Channel {
        let addr = self.addr.expect("this env runs no API");
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the test API")
    }

    /// A DocumentService client for `owner` (None: no token at all).
    pub async fn documents_with(&self, token: Option<String>) -> Documents {
        DocumentServiceClient::with_interceptor(self.channel().await, BearerInterceptor(token))
    }

    pub async fn documents(&self, owner: &str) -> Documents {
        self.documents_with(Some(self.token(owner))).await
    }

    /// An UploadService client (uploads in one message) for `owner`.
    pub async fn uploads(&self, owner: &str) -> Uploads {
        UploadServiceClient::with_interceptor(
            self.channel().await,
            BearerInterceptor(Some(self.token(owner))),
        )
    }

    pub async fn progress(&self, owner: &str) -> Progress {
        ProgressServiceClient::with_interceptor(
            self.channel().await,
            BearerInterceptor(Some(self.token(owner))),
        )
    }

    /// `owner`'s progress client and a Watch of all their documents from
    /// the first event, following.
    pub async fn watch_everything(
        &self,
        owner: &str,
    ) -> (Progress, tonic::Streaming<pb::ProgressUpdate>) {
        let mut progress = self.progress(owner).await;
        let updates = progress
            .watch(watch_all(0, true))
            .await
            .expect("a watch of every document")
            .into_inner();
        (progress, updates)
    }

    /// A ProgressService client whose connection lets only `window` bytes
    /// be in flight towards it: a client that reads slowly, or not at all.
    pub async fn progress_with_window(&self, owner: &str, window: u32) -> Progress {
        let addr = self.addr.expect("this env runs no API");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .initial_stream_window_size(window)
            .initial_connection_window_size(window)
            .connect()
            .await
            .expect("connect to the test API");
        ProgressServiceClient::with_interceptor(channel, BearerInterceptor(Some(self.token(owner))))
    }

    pub async fn search(&self, owner: &str) -> SearchClient {
        SearchServiceClient::with_interceptor(
            self.channel().await,
            BearerInterceptor(Some(self.token(owner))),
        )
    }

    /// A SearchService client with an operator's (admin) token.
    pub async fn search_admin(&self) -> SearchClient {
        let token = self
            .auth
            .issue(&OwnerId::new("ops").expect("owner"), 3600, true)
            .expect("token");
        SearchServiceClient::with_interceptor(self.channel().await, BearerInterceptor(Some(token)))
    }

    pub async fn qa(&self, owner: &str) -> QaClient {
        QaServiceClient::with_interceptor(
            self.channel().await,
            BearerInterceptor(Some(self.token(owner))),
        )
    }

    pub async fn stats(&self, owner: &str) -> StatsClient {
        StatsServiceClient::with_interceptor(
            self.channel().await,
            BearerInterceptor(Some(self.token(owner))),
        )
    }

    /// A StatsService client with an operator's (admin) token.
    pub async fn stats_admin(&self) -> StatsClient {
        let token = self
            .auth
            .issue(&OwnerId::new("ops").expect("owner"), 3600, true)
            .expect("token");
        StatsServiceClient::with_interceptor(self.channel().await, BearerInterceptor(Some(token)))
    }

    /// An executor on this namespace, as a pipeline service would have.
    pub fn executor(&self, cache: usize, retry: RetryPolicy) -> CommandExecutor<Document> {
        CommandExecutor::new(JetStreamEventStore::new(&self.bus, "doc", cache), (), retry)
    }

    /// Publishes bytes that are no event (no headers) on `subject` of the
    /// event stream, as any client could; returns their stream sequence.
    pub async fn publish_garbage(&self, subject: String) -> u64 {
        self.bus
            .jetstream
            .publish(subject, "not an event".into())
            .await
            .expect("publish")
            .await
            .expect("publish ack")
            .sequence
    }

    /// Number of messages in this namespace's event stream.
    pub async fn event_count(&self) -> u64 {
        let mut s = self.bus.events.clone();
        s.info().await.expect("stream info").state.messages
    }
}

/// Upload requests for `bytes`: metadata first, then 64 KiB chunks.
pub fn upload_requests(filename: &str, bytes: &[u8], key: &str) -> Vec<pb::UploadRequest> {
    upload_requests_with(
        pb::UploadMetadata {
            filename: filename.into(),
            idempotency_key: key.into(),
            // Tests upload the same bytes as separate documents; the
            // default (the same bytes are the same document) has its own
            // test (api.rs).
            new_document: true,
            ..Default::default()
        },
        bytes,
    )
}

/// Upload requests for `bytes` under `metadata`.
pub fn upload_requests_with(metadata: pb::UploadMetadata, bytes: &[u8]) -> Vec<pb::UploadRequest> {
    let mut v = vec![pb::UploadRequest {
        part: Some(Part::Metadata(metadata)),
    }];
    v.extend(bytes.chunks(64 * 1024).map(|c| pb::UploadRequest {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    v
}

/// Uploads `bytes` as `filename`.
pub async fn upload(
    client: &mut Documents,
    filename: &str,
    bytes: &[u8],
) -> Result<pb::UploadResponse, tonic::Status> {
    client
        .upload(futures::stream::iter(upload_requests(filename, bytes, "")))
        .await
        .map(|r| r.into_inner())
}

/// Command metadata with a fixed command id (for dedup tests).
pub fn metadata_with_id(id: &str) -> HashMap<String, String> {
    HashMap::from([(
        mnemo_bus::envelope::meta::COMMAND_ID.to_owned(),
        id.to_owned(),
    )])
}

/// A valid one-page PDF whose page draws nothing: no text layer at all
/// (what a scan without OCR is to a text extractor).
pub fn blank_pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n".to_vec()
}

/// A Watch of one document.
pub fn watch_document(document_id: &str, from_sequence: u64, follow: bool) -> pb::WatchRequest {
    pb::WatchRequest {
        scope: Some(pb::watch_request::Scope::DocumentId(document_id.into())),
        from_sequence,
        follow,
    }
}

/// A Watch of one upload batch.
pub fn watch_batch(batch_id: &str, from_sequence: u64, follow: bool) -> pb::WatchRequest {
    pb::WatchRequest {
        scope: Some(pb::watch_request::Scope::BatchId(batch_id.into())),
        from_sequence,
        follow,
    }
}

/// A Watch of all of the caller's documents.
pub fn watch_all(from_sequence: u64, follow: bool) -> pb::WatchRequest {
    pb::WatchRequest {
        scope: Some(pb::watch_request::Scope::All(pb::AllDocuments {})),
        from_sequence,
        follow,
    }
}

/// Rebuilds every read model of `env` from sequence 1 and asserts the
/// checksums equal the live ones (`db` is the live read models, up to
/// date). Returns a fresh session on the swapped-in tables.
pub async fn assert_rebuild_equals_live(
    env: &TestEnv,
    db: &tokio_postgres::Client,
) -> tokio_postgres::Client {
    let live = mnemo_projector::checksum::checksums(db).await.unwrap();
    mnemo_projector::rebuild::rebuild(
        &env.bus,
        &env.database_url,
        &mnemo_projector::Projection::ALL,
        &Default::default(),
        |_| {},
    )
    .await
    .unwrap();
    let db = mnemo_projector::db::connect(&env.database_url, &env.ns)
        .await
        .unwrap();
    assert_eq!(
        mnemo_projector::checksum::checksums(&db).await.unwrap(),
        live
    );
    db
}

/// Asserts no chunk is stored twice and at least `documents` are; returns
/// how many there are.
pub async fn assert_chunks_once(db: &tokio_postgres::Client, documents: usize) -> i64 {
    let r = db
        .query_one(
            "SELECT count(*), count(DISTINCT (document_id, ordinal)) FROM chunks",
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct): (i64, i64) = (r.get(0), r.get(1));
    assert!(
        rows >= documents as i64,
        "{rows} chunks for {documents} documents"
    );
    assert_eq!(rows, distinct, "no chunk is stored twice");
    rows
}

/// What a learner's Watch showed, checked as it comes: no document's
/// progress goes backwards, none fails; which are indexed, the last
/// sequence seen.
#[derive(Default)]
pub struct ProgressSeen {
    fraction: std::collections::BTreeMap<String, f64>,
    pub indexed: std::collections::BTreeSet<String>,
    pub last: u64,
}

impl ProgressSeen {
    pub fn observe(&mut self, u: &pb::ProgressUpdate) {
        self.last = self.last.max(u.sequence);
        if u.document_id.is_empty() {
            return;
        }
        let before = self
            .fraction
            .insert(u.document_id.clone(), u.fraction)
            .unwrap_or(0.0);
        assert!(
            u.fraction >= before,
            "{} went back: {before} → {}",
            u.document_id,
            u.fraction
        );
        assert_ne!(u.stage, pb::Stage::Failed as i32, "{u:?}");
        if u.stage == pb::Stage::Indexed as i32 {
            self.indexed.insert(u.document_id.clone());
        }
    }
}

impl ProgressSeen {
    /// Reads `updates` until every one of `documents` is indexed. A stream
    /// that ends (the API's hub recovering from a failover) is watched
    /// again from the last sequence seen, as clients do. `Err` when no
    /// update comes for `quiet`.
    pub async fn until_indexed(
        &mut self,
        progress: &mut Progress,
        updates: &mut tonic::Streaming<pb::ProgressUpdate>,
        documents: &std::collections::BTreeSet<String>,
        quiet: Duration,
    ) -> Result<(), String> {
        while !documents.is_subset(&self.indexed) {
            match tokio::time::timeout(quiet, updates.message()).await {
                Ok(Ok(Some(u))) => self.observe(&u),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    *updates = progress
                        .watch(watch_all(self.last, true))
                        .await
                        .map_err(|e| format!("watching again: {e}"))?
                        .into_inner();
                }
                Err(_) => {
                    return Err(format!(
                        "stuck: {} of {} indexed",
                        documents.intersection(&self.indexed).count(),
                        documents.len()
                    ))
                }
            }
        }
        Ok(())
    }
}

/// Once the projector has applied everything up to `last`: every one of
/// `documents` has its chunks stored once, and a rebuild of every read
/// model from the log equals the live ones.
pub async fn assert_caught_up_and_rebuilt(env: &TestEnv, last: u64, documents: usize) {
    let db = mnemo_projector::db::connect(&env.database_url, &env.ns)
        .await
        .unwrap();
    mnemo_projector::runner::wait_for(&db, &env.ns, last, Duration::from_secs(60))
        .await
        .unwrap();
    assert_chunks_once(&db, documents).await;
    assert_rebuild_equals_live(env, &db).await;
}

/// The event stream's last sequence now.
pub async fn last_sequence(bus: &Bus) -> u64 {
    bus.events
        .clone()
        .info()
        .await
        .expect("the event stream's info")
        .state
        .last_sequence
}

/// A hybrid search for `query`, `k` hits, as of stream sequence `seen`.
pub fn hybrid_search(query: &str, k: u32, seen: u64) -> pb::SearchRequest {
    pb::SearchRequest {
        query: query.into(),
        k,
        document_ids: vec![],
        topic: String::new(),
        mode: pb::SearchMode::Hybrid as i32,
        min_sequence: seen,
    }
}

/// Follows `owner`'s document through its Watch stream to the terminal
/// update (indexed, failed or cancelled) and returns it; fails the test if
/// the pipeline stops moving for two minutes.
pub async fn terminal_update(env: &TestEnv, owner: &str, document_id: &str) -> pb::ProgressUpdate {
    let mut progress = env.progress(owner).await;
    let mut stream = progress
        .watch(watch_document(document_id, 0, false))
        .await
        .expect("watch")
        .into_inner();
    let mut last = None;
    while let Some(u) = tokio::time::timeout(Duration::from_secs(120), stream.message())
        .await
        .expect("the pipeline keeps moving")
        .expect("the watch stream")
    {
        last = Some(u);
    }
    last.expect("updates")
}

/// Waits for `owner`'s document to be indexed (failing the test otherwise);
/// returns the stream sequence of its DocumentIndexed, for `min_sequence`.
pub async fn indexed(env: &TestEnv, owner: &str, document_id: &str) -> u64 {
    let last = terminal_update(env, owner, document_id).await;
    assert_eq!(last.stage, pb::Stage::Indexed as i32, "{last:?}");
    last.sequence
}

/// Waits for a condition on facts (not time), up to `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            let _ = api.stop.send(true);
            api.task.abort();
        }
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
        // Cleanup needs async I/O but Drop is sync: use a private runtime on
        // a plain thread so this works inside or outside a tokio runtime.
        let (ns, nats, url) = (
            self.ns.clone(),
            self.nats.clone(),
            self.database_url.clone(),
        );
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                delete_namespace(&nats, &ns).await;
                if let Err(e) = mnemo_projector::db::drop_schema(&url, &ns).await {
                    eprintln!("could not drop schema {ns}: {e}");
                }
            });
        })
        .join();
    }
}

/// Deletes a namespace's streams as the operator (bounded: a server that
/// is gone leaves nothing to delete).
pub async fn delete_namespace(nats: &NatsOptions, ns: &Namespace) {
    let connect =
        mnemo_bus::setup::connect_once(nats, mnemo_bus::Role::Operator, "mnemo-tests cleanup");
    if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(10), connect).await {
        let js = async_nats::jetstream::new(client);
        let _ = mnemo_bus::setup::delete_namespace(&js, ns).await;
    }
}

/// A second projector on an env's namespace (stopped on drop).
pub struct TestEnvProjector {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TestEnvProjector {
    pub async fn start(env: &TestEnv) -> Self {
        let (stop, rx) = watch::channel(false);
        let config = mnemo_projector::ProjectorConfig::new(env.ns.clone(), &env.database_url);
        let bus = env.bus_as(Role::Projector).await;
        let task = tokio::spawn(async move {
            let mut rx = rx;
            let _ = mnemo_projector::run(bus, config, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        });
        Self { stop, task }
    }
}

impl Drop for TestEnvProjector {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// A second chunker + embedder on an env's namespace (stopped on drop).
pub struct TestEnvPipeline {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestEnvPipeline {
    pub async fn start(env: &TestEnv) -> Self {
        let (stop, _) = watch::channel(false);
        let tasks = spawn_chunker_and_embedder(
            &env.bus_as(Role::Chunker).await,
            &env.bus_as(Role::Embedder).await,
            load_model(),
            &stop,
        );
        Self { stop, tasks }
    }
}

/// A second copy of every service on an env's namespace (the env runs
/// the first): extractor, chunker, embedder, projector (a standby while
/// the first holds the lock) and an API with its own search index and
/// progress hub, on a port of its own. Stopped on drop.
pub struct SecondCopies {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    api: Option<RunningApi>,
    /// The second API's address.
    pub addr: SocketAddr,
}

impl SecondCopies {
    pub async fn start(env: &TestEnv) -> Self {
        let setup = env.api_setup.as_ref().expect("the env runs an API");
        let (stop, _) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let model = load_model();
        let mut tasks = spawn_chunker_and_embedder(
            &env.bus_as(Role::Chunker).await,
            &env.bus_as(Role::Embedder).await,
            model.clone(),
            &stop,
        );
        let (b, rx) = (env.bus_as(Role::Extractor).await, stop.subscribe());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = mnemo_extractor::run(b, extractor_config(), stopped(rx)).await {
                eprintln!("second extractor failed: {e}");
            }
        }));
        let (b, rx) = (env.bus_as(Role::Projector).await, stop.subscribe());
        let config = mnemo_projector::ProjectorConfig::new(env.ns.clone(), &env.database_url);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = mnemo_projector::run(b, config, stopped(rx)).await {
                eprintln!("second projector failed: {e}");
            }
        }));
        // The second API: its own index (and follower), hub and port.
        let bus = env.bus_as(Role::Api).await;
        let index = Arc::new(mnemo_search::Indexes::new(
            mnemo_search::VectorIndex::new(384).for_model(model.model_id()),
            mnemo_search::TermIndex::default(),
        ));
        let (b, rx, follow) = (bus.clone(), stop.subscribe(), index.clone());
        let url = env.database_url.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                r = mnemo_search::follow(b, url, follow) => {
                    if let Err(e) = r {
                        eprintln!("second search index failed: {e}");
                    }
                }
                _ = stopped(rx) => {}
            }
        }));
        let second = ApiSetup {
            database_url: setup.database_url.clone(),
            secret: setup.secret.clone(),
            max_upload_bytes: setup.max_upload_bytes,
            watch_queue: setup.watch_queue,
            limits: setup.limits.clone(),
            index,
            models: setup.models.clone(),
            llm: setup.llm.clone(),
            tls: setup.tls.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let api = Some(second.start(&bus, listener).await);
        Self {
            stop,
            tasks,
            api,
            addr,
        }
    }

    /// A channel to the second API.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the second API")
    }
}

impl Drop for SecondCopies {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(api) = self.api.take() {
            let _ = api.stop.send(true);
            api.task.abort();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// The prepared model (fails the test if `deploy/model/prepare.sh` has not run).
fn load_model() -> Arc<mnemo_embedder::Embedder> {
    load_model_from(model_dir())
}

/// A prepared model from `dir` (fails the test when it is missing).
pub fn load_model_from(dir: PathBuf) -> Arc<mnemo_embedder::Embedder> {
    Arc::new(
        mnemo_embedder::Embedder::new(mnemo_embedder::EmbedderConfig::local(dir))
            .unwrap_or_else(|e| panic!("{}", e.report())),
    )
}

/// A chunker and an embedder (on their own connections), until `stop` says true.
fn spawn_chunker_and_embedder(
    chunker_bus: &Bus,
    embedder_bus: &Bus,
    model: Arc<mnemo_embedder::Embedder>,
    stop: &watch::Sender<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (b, rx) = (chunker_bus.clone(), stop.subscribe());
    let chunker = tokio::spawn(async move {
        let config = mnemo_chunker::ChunkerConfig::new(model_dir());
        if let Err(e) = mnemo_chunker::run(b, config, stopped(rx)).await {
            eprintln!("chunker failed: {e}");
        }
    });
    let (b, rx) = (embedder_bus.clone(), stop.subscribe());
    let embedder = tokio::spawn(async move {
        let config = mnemo_embedder::EmbedderServiceConfig::new(model);
        if let Err(e) = mnemo_embedder::run(b, config, stopped(rx)).await {
            eprintln!("embedder failed: {e}");
        }
    });
    vec![chunker, embedder]
}

impl Drop for TestEnvPipeline {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
