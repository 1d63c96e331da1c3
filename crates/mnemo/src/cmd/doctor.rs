//! `mnemo doctor`: checks what mnemo needs and says what to do about each.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use mnemo_bus::{Namespace, Role};

use crate::cli::{Backend, Global};

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub backend: Backend,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    fix: String,
}

fn check(
    name: &'static str,
    level: Level,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
        fix: fix.into(),
    }
}

const BOOTSTRAP: &str = "run deploy/local/bootstrap.sh (installs and starts NATS and PostgreSQL)";

/// Whether the server lets anyone in, from the INFO line it greets every
/// client with (`auth_required`): no sign-in is attempted.
async fn nats_auth_check(
    nats: &mnemo_bus::NatsOptions,
    seeds: &[async_nats::ServerAddr],
    out: &mut Vec<Check>,
) {
    use tokio::io::AsyncBufReadExt;
    let Some(seed) = seeds.first() else {
        return;
    };
    let greeting = tokio::time::timeout(Duration::from_secs(3), async {
        let tcp = tokio::net::TcpStream::connect((seed.host(), seed.port()))
            .await
            .ok()?;
        let mut line = String::new();
        tokio::io::BufReader::new(tcp)
            .read_line(&mut line)
            .await
            .ok()?;
        let info: serde_json::Value =
            serde_json::from_str(line.strip_prefix("INFO ")?.trim()).ok()?;
        Some(info["auth_required"].as_bool().unwrap_or(false))
    })
    .await
    .ok()
    .flatten();
    let (level, detail, fix) = match (greeting, &nats.creds) {
        (None, _) => return,
        (Some(true), Some(creds)) => (
            Level::Ok,
            format!(
                "anonymous clients refused; signing in with {}",
                creds.display()
            ),
            "",
        ),
        (Some(true), None) => (
            Level::Fail,
            "the server wants a credential and none is given".to_owned(),
            "pass --nats-creds (MNEMO_NATS_CREDS): .mnemo/nats-creds after bootstrap.sh",
        ),
        (Some(false), _) => (
            Level::Warn,
            "the server accepts anonymous clients: anyone who reaches it owns the event log"
                .to_owned(),
            "run nats-server with the repo's nats.conf (bootstrap.sh does)",
        ),
    };
    out.push(check("nats auth", level, detail, fix));
}

async fn nats_checks(args: &DoctorArgs, out: &mut Vec<Check>) {
    let nats = args.backend.nats();
    let url = &nats.url;
    let seeds = match mnemo_bus::setup::seed_urls(url) {
        Ok(s) => s,
        Err(e) => {
            out.push(check("nats", Level::Fail, e.to_string(), "fix --nats-url"));
            return;
        }
    };
    nats_auth_check(&nats, &seeds, out).await;
    // The operator's credential when a directory holds them all.
    let options = match nats.connect_options(Role::Operator, "mnemo doctor") {
        Ok(o) => o,
        Err(e) => {
            out.push(check(
                "nats credentials",
                Level::Fail,
                e.to_string(),
                "make them with `mnemo nats credentials --dir DIR` (bootstrap.sh does)",
            ));
            return;
        }
    };
    let client = match tokio::time::timeout(
        Duration::from_secs(5),
        options
            .connection_timeout(Duration::from_secs(3))
            .connect(seeds.as_slice()),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.push(check("nats", Level::Fail, format!("{url}: {e}"), BOOTSTRAP));
            return;
        }
        Err(_) => {
            out.push(check(
                "nats",
                Level::Fail,
                format!("{url}: no answer in 5 s (or the credential was refused)"),
                BOOTSTRAP,
            ));
            return;
        }
    };
    let info = client.server_info();
    out.push(check(
        "nats",
        Level::Ok,
        format!("{url} (nats-server {})", info.version),
        "",
    ));
    // A raw $JS.API.INFO request: the typed account call of async-nats
    // expects fields that nats-server 2.9 does not send.
    let account = client
        .request("$JS.API.INFO", bytes::Bytes::new())
        .await
        .map_err(|e| e.to_string())
        .and_then(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).map_err(|e| e.to_string())
        });
    match account {
        Ok(v) if v.get("error").is_none() => out.push(check(
            "jetstream",
            Level::Ok,
            format!(
                "enabled; {} streams, {} bytes stored",
                v["streams"].as_u64().unwrap_or(0),
                v["storage"].as_u64().unwrap_or(0)
            ),
            "",
        )),
        other => {
            let why = match other {
                Ok(v) => v["error"]["description"]
                    .as_str()
                    .unwrap_or("disabled")
                    .to_owned(),
                Err(e) => e,
            };
            out.push(check(
                "jetstream",
                Level::Fail,
                why,
                "start nats-server with JetStream (-js, or the repo's nats.conf)",
            ));
            return;
        }
    }
    let js = async_nats::jetstream::new(client);
    if let Ok(ns) = Namespace::new(&args.backend.namespace) {
        match js.get_stream(ns.event_stream()).await {
            Ok(mut s) => {
                let msgs = s.info().await.map(|i| i.state.messages).unwrap_or(0);
                out.push(check(
                    "event stream",
                    Level::Ok,
                    format!("{} ({msgs} messages)", ns.event_stream()),
                    "",
                ))
            }
            Err(_) => out.push(check(
                "event stream",
                Level::Warn,
                format!("{} does not exist yet", ns.event_stream()),
                "it is created by the first `mnemo serve`",
            )),
        }
    }
}

/// A URL as it may be shown: any password in it masked.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

async fn postgres_checks(args: &DoctorArgs, out: &mut Vec<Check>) {
    let full_url = &args.backend.database_url;
    let url = &without_password(full_url);
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        mnemo_projector::db::connect_url(full_url, "mnemo doctor"),
    )
    .await;
    let client = match connected {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            out.push(check(
                "postgresql",
                Level::Fail,
                format!("{url}: {e}"),
                BOOTSTRAP,
            ));
            return;
        }
        Err(_) => {
            out.push(check(
                "postgresql",
                Level::Fail,
                format!("{url}: no answer in 5 s"),
                BOOTSTRAP,
            ));
            return;
        }
    };
    let version = client
        .query_one("SHOW server_version", &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_default();
    out.push(check(
        "postgresql",
        Level::Ok,
        format!("PostgreSQL {version}"),
        "",
    ));
    let schema = args.backend.namespace.clone();
    let applied = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'schema_migrations'",
            &[&schema],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
        .unwrap_or(0);
    if applied > 0 {
        out.push(check(
            "read models",
            Level::Ok,
            format!("schema {schema} migrated"),
            "",
        ));
    } else {
        out.push(check(
            "read models",
            Level::Warn,
            format!("schema {schema} not created yet"),
            "it is created by the first `mnemo serve`",
        ));
    }
}

const PREPARE: &str = "run deploy/model/prepare.sh, then `source .mnemo/model.env`";

/// Loads onnxruntime and the model for real, and embeds one sentence.
fn embedding_checks(out: &mut Vec<Check>) {
    // Not configured at all is a warning: only the embedder needs it.
    let level_if_unset = |var: &str| {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            Level::Fail
        } else {
            Level::Warn
        }
    };
    match mnemo_embedder::check_runtime() {
        Ok(info) => out.push(check(
            "onnxruntime",
            Level::Ok,
            format!("{} ({})", info.version, info.dylib.display()),
            "",
        )),
        Err(e) => {
            out.push(check(
                "onnxruntime",
                level_if_unset("ORT_DYLIB_PATH"),
                e.report(),
                PREPARE,
            ));
            return;
        }
    }
    let loaded = mnemo_embedder::EmbedderConfig::from_env()
        .and_then(mnemo_embedder::Embedder::new)
        .and_then(|m| {
            let v = m.embed(&["mnemo doctor".to_owned()])?;
            Ok((m.model_id().to_owned(), v.first().map_or(0, Vec::len)))
        });
    match loaded {
        Ok((id, dims)) => out.push(check(
            "embedding model",
            Level::Ok,
            format!("{id}, {dims}-d"),
            "",
        )),
        Err(e) => out.push(check(
            "embedding model",
            level_if_unset("MNEMO_MODEL_DIR"),
            e.report(),
            PREPARE,
        )),
    }
}

/// The API at `--server` (TLS and a bare `host:port` as every client
/// command takes them): it must answer and report its document service
/// serving. Not answering fails the check, so scripts can wait on it.
async fn api_check(global: &Global, out: &mut Vec<Check>) {
    let ep = match crate::client::endpoint(global) {
        Ok(ep) => ep.connect_timeout(Duration::from_secs(2)),
        Err(e) => {
            out.push(check("api", Level::Fail, format!("{e:#}"), "fix --server"));
            return;
        }
    };
    let channel = match ep.connect().await {
        Ok(c) => c,
        Err(_) => {
            out.push(check(
                "api",
                Level::Fail,
                format!("nothing answers at {}", global.server),
                "start it with `mnemo serve all` (or point --server at it)",
            ));
            return;
        }
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        health.check(tonic_health::pb::HealthCheckRequest {
            service: "mnemo.v1.DocumentService".into(),
        }),
    )
    .await;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    match asked {
        Ok(Ok(r)) if r.get_ref().status == serving => out.push(check(
            "api",
            Level::Ok,
            format!("{} serves mnemo", global.server),
            "",
        )),
        Ok(Ok(_)) => out.push(check(
            "api",
            Level::Fail,
            format!("{} answers but is not serving documents yet", global.server),
            "wait for it to start, or read its log",
        )),
        Ok(Err(status)) => out.push(check(
            "api",
            Level::Fail,
            format!(
                "{} answers but not as mnemo: {}",
                global.server,
                crate::client::describe(&status)
            ),
            "point --server at mnemo's API",
        )),
        Err(_) => out.push(check(
            "api",
            Level::Fail,
            format!("{} did not answer a health check within 5 s", global.server),
            "",
        )),
    }
}

/// Which isolation the extractor's PDF readers get on this machine.
fn sandbox_check(out: &mut Vec<Check>) {
    use mnemo_extractor::isolation::{Isolation, SandboxMode};
    match Isolation::resolve(SandboxMode::Auto) {
        Ok(i @ Isolation::Bubblewrap { .. }) => {
            out.push(check("PDF sandbox", Level::Ok, i.describe(), ""))
        }
        Ok(i) => out.push(check(
            "PDF sandbox",
            Level::Warn,
            i.describe(),
            "install bubblewrap (deploy/local/bootstrap.sh does)",
        )),
        Err(e) => out.push(check("PDF sandbox", Level::Fail, e, "")),
    }
}

/// The key file every learner's data key is wrapped under: given, private,
/// and a key (whether it is the namespace's, a service checks at start).
fn key_file_check(args: &DoctorArgs, out: &mut Vec<Check>) {
    let fix = "mnemo keys init FILE for a new deployment, or restore the deployment's key file; \
               give it as --key-file / MNEMO_KEY_FILE";
    let Some(path) = &args.backend.key_file else {
        out.push(check("key file", Level::Fail, "none given", fix));
        return;
    };
    match mnemo_bus::keys::KeyFile::load(path) {
        Ok(keys) => out.push(check(
            "key file",
            Level::Ok,
            format!(
                "{} (key-encryption key {})",
                path.display(),
                mnemo_bus::keys::KeyEncryptionKey::id(keys.kek())
            ),
            "",
        )),
        Err(e) => out.push(check("key file", Level::Fail, e.to_string(), fix)),
    }
}

pub async fn run(global: &Global, args: DoctorArgs) -> Result<ExitCode> {
    let mut checks = Vec::new();
    nats_checks(&args, &mut checks).await;
    key_file_check(&args, &mut checks);
    postgres_checks(&args, &mut checks).await;
    sandbox_check(&mut checks);
    // Loading a model is blocking work.
    let mut embedding = tokio::task::spawn_blocking(|| {
        let mut v = Vec::new();
        embedding_checks(&mut v);
        v
    })
    .await
    .unwrap_or_default();
    checks.append(&mut embedding);
    api_check(global, &mut checks).await;
    let failed = checks.iter().any(|c| c.level == Level::Fail);
    if args.json {
        let v: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.name,
                    "status": match c.level { Level::Ok => "ok", Level::Warn => "warn", Level::Fail => "fail" },
                    "detail": c.detail,
                    "fix": c.fix,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "ok": !failed, "checks": v }));
    } else {
        for c in &checks {
            let mark = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("[{mark}] {:<16} {}", c.name, c.detail);
            if !c.fix.is_empty() {
                println!("       {:<16} -> {}", "", c.fix);
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_password_is_never_shown() {
        assert_eq!(
            super::without_password("postgres://mnemo:s3cret@db:5432/mnemo?sslmode=require"),
            "postgres://mnemo:***@db:5432/mnemo?sslmode=require"
        );
        assert_eq!(
            super::without_password("postgres://mnemo@db/mnemo"),
            "postgres://mnemo@db/mnemo"
        );
    }
}
