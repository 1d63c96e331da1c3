//! `mnemo bench chaos`: every service killed (SIGKILL) and stopped
//! (SIGTERM) mid-run, `--trials` times each, while documents flow, and a
//! fresh copy started each time as a supervisor would; then a rolling
//! restart of every service under load (issue 20).
//!
//! Each service runs as a process of its own (`serve <service>`), in a
//! fresh namespace. Per service and signal, each trial:
//! 1. uploads `--docs` documents (a client that retries on `UNAVAILABLE`,
//!    with an idempotency key, as a real client does);
//! 2. waits a little (0–400 ms, varied by trial, so the fault lands in
//!    different stages);
//! 3. sends the signal and times the exit, then starts a fresh copy.
//!
//! The takeover: a standby projector beside the active one, the active
//! one SIGKILLed as a document is uploaded, five times; that document's
//! time to indexed against one with nothing killed.
//!
//! The rolling restart starts each service's new copy, waits for its
//! `/readyz`, then stops the old one (the API, which owns the port, is
//! stopped first), while a client keeps uploading.
//!
//! Target: every document ends indexed (none fails because of a fault)
//! with exactly its chunks (none missing, none twice), and every
//! SIGTERM'd service exits within its ack wait (30 s).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use mnemo::cli::{Backend, Global};
use mnemo::client::Clients;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;

use crate::services::{connect_when_ready, free_port, Scratch, Served, ServiceProcess, EACH_ALONE};

#[derive(Args)]
pub struct ChaosBench {
    #[command(flatten)]
    pub backend: Backend,
    /// The embedding model directory (the services' --model-dir).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: std::path::PathBuf,
    /// Faults per service and signal.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// Documents uploaded before each fault.
    #[arg(long, default_value_t = 3)]
    pub docs: usize,
    /// Bytes of text in each document (about 4 bytes a token).
    #[arg(long, default_value_t = 3_000)]
    pub doc_bytes: usize,
    /// The services to fault, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = EACH_ALONE.map(String::from))]
    pub services: Vec<String>,
    /// Skip the rolling restart.
    #[arg(long)]
    pub no_rolling: bool,
    /// Longest wait for every document to end.
    #[arg(long, default_value = "20min", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

const OWNER: &str = "chaos";
/// The longest a SIGTERM'd service may take: the ack wait.
const STOP_BUDGET: Duration = Duration::from_secs(30);

/// One service and signal's trials.
struct Faults {
    service: &'static str,
    signal: &'static str,
    exits: Vec<Duration>,
    /// From the new copy's start to its `/readyz`.
    ready: Vec<Duration>,
    documents: usize,
}

pub async fn run(global: &Global, bench: ChaosBench) -> Result<ExitCode> {
    let mut targets = Vec::new();
    for s in &bench.services {
        let Some(&name) = EACH_ALONE.iter().find(|n| **n == s.as_str()) else {
            bail!("--services: {s} is not one of {}", EACH_ALONE.join(", "));
        };
        targets.push(name);
    }
    let scratch = Scratch::new(&bench.backend, "chaos").await?;
    let ns = scratch.ns.clone();
    let mut served = Served::start(
        global,
        &bench.backend,
        &ns,
        &bench.model_dir,
        OWNER,
        &EACH_ALONE,
        &[],
    )
    .await?;
    let result = run_in(global, &bench, &targets, &mut served, &scratch).await;
    for s in std::mem::take(&mut served.services) {
        s.stop().await;
    }
    scratch.delete().await?;
    result
}

async fn run_in(
    global: &Global,
    bench: &ChaosBench,
    targets: &[&'static str],
    served: &mut Served,
    scratch: &Scratch,
) -> Result<ExitCode> {
    let port = served.port;
    let clients =
        connect_when_ready(global, port, served.token.clone(), &mut served.services).await?;
    let batch = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let mut uploaded = 0usize;
    let mut faults = Vec::new();
    for &service in targets {
        for signal in ["KILL", "TERM"] {
            let mut f = Faults {
                service,
                signal,
                exits: Vec::new(),
                ready: Vec::new(),
                documents: 0,
            };
            for trial in 0..bench.trials {
                for _ in 0..bench.docs {
                    let name = format!("doc-{uploaded}");
                    upload_retrying(&clients.documents, &name, &batch, bench.doc_bytes).await?;
                    uploaded += 1;
                    f.documents += 1;
                }
                // Into the pipeline: the fault lands in another stage each time.
                tokio::time::sleep(Duration::from_millis(100 * (trial as u64 % 5))).await;
                let (exit, ready) = fault(served, service, signal).await?;
                f.exits.push(exit);
                f.ready.push(ready);
            }
            eprintln!(
                "  {service} {signal}: {} trials, {} documents, {:.0} s in",
                bench.trials,
                f.documents,
                started.elapsed().as_secs_f64()
            );
            faults.push(f);
        }
    }
    let takeover = if bench.services.iter().any(|s| s == "projector") {
        Some(takeover(bench, served, &clients, &batch, &mut uploaded).await?)
    } else {
        None
    };
    let rolling = if bench.no_rolling {
        None
    } else {
        Some(rolling_restart(bench, served, &clients, &batch, &mut uploaded).await?)
    };
    eprintln!("  following {uploaded} documents to their end");
    let failed =
        crate::fairness::follow_batch(clients.progress.clone(), &batch, uploaded, bench.timeout)
            .await
            .context("following the documents to their end")?;
    let (chunks, mismatched) = chunk_mismatches(bench, scratch).await?;

    println!("| service | signal | trials | documents | exit after the signal: p50 | max | new copy ready: p50 | max |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut stops_ok = true;
    for f in &faults {
        let (exit_p50, exit_max) = p50_max(&f.exits);
        let (ready_p50, ready_max) = p50_max(&f.ready);
        if f.signal == "TERM" {
            stops_ok &= exit_max <= STOP_BUDGET;
        }
        println!(
            "| {} | SIG{} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            f.service,
            f.signal,
            f.exits.len(),
            f.documents,
            exit_p50.as_secs_f64(),
            exit_max.as_secs_f64(),
            ready_p50.as_secs_f64(),
            ready_max.as_secs_f64()
        );
    }
    if let Some(t) = &takeover {
        let (idle, _) = p50_max(&t.idle);
        let (after, after_max) = p50_max(&t.after_kill);
        println!();
        println!(
            "projector takeover (a standby beside the active one, the active SIGKILLed, {} times): an upload made at the kill is indexed in {:.2} s (max {:.2} s), against {:.2} s with nothing killed: the standby takes over in about {:.2} s",
            t.after_kill.len(),
            after.as_secs_f64(),
            after_max.as_secs_f64(),
            idle.as_secs_f64(),
            after.saturating_sub(idle).as_secs_f64()
        );
    }
    if let Some(r) = &rolling {
        println!();
        println!(
            "rolling restart of {} services under load: {} documents uploaded during it, {:.1} s",
            EACH_ALONE.len(),
            r.documents,
            r.took.as_secs_f64()
        );
    }
    println!();
    println!(
        "{uploaded} documents: {} indexed, {failed} failed; {chunks} chunks, {mismatched} documents whose chunks do not add up; {:.0} s in all",
        uploaded as u64 - failed,
        started.elapsed().as_secs_f64()
    );
    Ok(crate::timing::verdict(
        "target (every document indexed with exactly its chunks, every SIGTERM'd service out within 30 s)",
        failed == 0 && mismatched == 0 && stops_ok,
    ))
}

/// Sends `signal` to `service`, waits for it to exit, and starts a fresh
/// copy in its place; how long the exit took, and the new copy to be
/// ready (`/readyz`: the next fault hits a running service, not one still
/// starting).
async fn fault(
    served: &mut Served,
    service: &'static str,
    signal: &str,
) -> Result<(Duration, Duration)> {
    let mut old = take(served, service)?;
    let exit = signal_and_wait(&mut old, signal).await?;
    let started = Instant::now();
    let probe = format!("127.0.0.1:{}", free_port()?);
    served
        .services
        .push(served.spawn_with(service, &[("MNEMO_METRICS_LISTEN", probe.clone())])?);
    until_ready(&probe).await?;
    Ok((exit, started.elapsed()))
}

/// Takes the oldest copy of `service` out of the running ones.
fn take(served: &mut Served, service: &str) -> Result<ServiceProcess> {
    let i = served
        .services
        .iter()
        .position(|s| s.name == service)
        .with_context(|| format!("{service} is not running"))?;
    Ok(served.services.remove(i))
}

async fn signal_and_wait(process: &mut ServiceProcess, signal: &str) -> Result<Duration> {
    let pid = process
        .child
        .id()
        .with_context(|| format!("{} already exited", process.name))?;
    let sent = Instant::now();
    let status = tokio::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .await?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    match tokio::time::timeout(STOP_BUDGET * 2, process.child.wait()).await {
        Ok(exited) => {
            let exited = exited?;
            if signal == "TERM" && !exited.success() {
                bail!("{} exited with {exited} after SIGTERM", process.name);
            }
            Ok(sent.elapsed())
        }
        Err(_) => {
            let _ = process.child.kill().await;
            bail!(
                "{} did not exit within {:?} of SIG{signal}",
                process.name,
                STOP_BUDGET * 2
            )
        }
    }
}

struct Takeover {
    /// Upload to indexed, nothing killed.
    idle: Vec<Duration>,
    /// Upload to indexed, the active projector SIGKILLed at the upload.
    after_kill: Vec<Duration>,
}

/// A standby projector beside the active one; the active one SIGKILLed
/// as a document is uploaded, five times (each time a new standby).
async fn takeover(
    bench: &ChaosBench,
    served: &mut Served,
    clients: &Clients,
    batch: &str,
    uploaded: &mut usize,
) -> Result<Takeover> {
    let mut idle = Vec::new();
    let mut after_kill = Vec::new();
    let upload_and_wait = |n: usize| {
        let name = format!("doc-{n}");
        async move {
            let started = Instant::now();
            let id = upload_retrying(&clients.documents, &name, batch, bench.doc_bytes).await?;
            crate::fairness::wait_indexed(clients, &id).await?;
            anyhow::Ok(started.elapsed())
        }
    };
    for _ in 0..5 {
        let probe = format!("127.0.0.1:{}", free_port()?);
        let standby = served.spawn_with("projector", &[("MNEMO_METRICS_LISTEN", probe.clone())])?;
        served.services.push(standby);
        until_ready(&probe).await?;
        idle.push(upload_and_wait(*uploaded).await?);
        *uploaded += 1;
        // The active copy is the older one: first in the list.
        let mut active = take(served, "projector")?;
        let indexed = upload_and_wait(*uploaded);
        let (killed, indexed) = tokio::join!(signal_and_wait(&mut active, "KILL"), indexed);
        killed?;
        after_kill.push(indexed?);
        *uploaded += 1;
    }
    Ok(Takeover { idle, after_kill })
}

struct Rolling {
    documents: usize,
    took: Duration,
}

/// Replaces every service by a new copy while a client uploads.
async fn rolling_restart(
    bench: &ChaosBench,
    served: &mut Served,
    clients: &Clients,
    batch: &str,
    uploaded: &mut usize,
) -> Result<Rolling> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let first = *uploaded;
    let load = {
        let (documents, batch) = (clients.documents.clone(), batch.to_owned());
        let doc_bytes = bench.doc_bytes;
        tokio::spawn(async move {
            let mut n = first;
            while !*stopped.borrow_and_update() {
                upload_retrying(&documents, &format!("doc-{n}"), &batch, doc_bytes).await?;
                n += 1;
            }
            anyhow::Ok(n)
        })
    };
    let started = Instant::now();
    for service in EACH_ALONE {
        let mut old = take(served, service)?;
        if service == "api" {
            // One port: the old copy goes first; clients retry meanwhile.
            signal_and_wait(&mut old, "TERM").await?;
            let probe = format!("127.0.0.1:{}", free_port()?);
            let new = served.spawn_with(service, &[("MNEMO_METRICS_LISTEN", probe.clone())])?;
            served.services.push(new);
            until_ready(&probe).await?;
        } else {
            // Another copy first, ready, then the old one stops.
            let probe = format!("127.0.0.1:{}", free_port()?);
            let new = served.spawn_with(service, &[("MNEMO_METRICS_LISTEN", probe.clone())])?;
            served.services.push(new);
            until_ready(&probe).await?;
            signal_and_wait(&mut old, "TERM").await?;
        }
        eprintln!("  rolling restart: {service} replaced");
    }
    let _ = stop.send(true);
    let n = load.await??;
    *uploaded = n;
    Ok(Rolling {
        documents: n - first,
        took: started.elapsed(),
    })
}

/// Waits until `GET /readyz` at `addr` answers 200 (a minute at most).
async fn until_ready(addr: &str) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut backoff = mnemo_bus::Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        if let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await {
            let request = format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            let mut answer = String::new();
            let answered = conn.write_all(request.as_bytes()).await.is_ok()
                && conn.read_to_string(&mut answer).await.is_ok();
            if answered
                && (answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
            {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr}/readyz never answered 200");
        }
        tokio::time::sleep(backoff.next_delay().unwrap_or(Duration::from_secs(1))).await;
    }
}

/// Uploads `name` (its own idempotency key, so a retry after a lost answer
/// is the same document), trying again while the API is away.
async fn upload_retrying(
    documents: &mnemo::client::Documents,
    name: &str,
    batch: &str,
    doc_bytes: usize,
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut backoff = mnemo_bus::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let requests = vec![
            pb::UploadRequest {
                part: Some(Part::Metadata(pb::UploadMetadata {
                    filename: format!("{name}.md"),
                    batch_id: batch.to_owned(),
                    idempotency_key: name.to_owned(),
                    ..Default::default()
                })),
            },
            pb::UploadRequest {
                part: Some(Part::Chunk(crate::fairness::text(name, doc_bytes))),
            },
        ];
        let mut documents = documents.clone();
        match documents.upload(futures::stream::iter(requests)).await {
            Ok(r) => return Ok(r.into_inner().document_id),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Unknown
                        | tonic::Code::Cancelled
                        | tonic::Code::Aborted
                ) && Instant::now() < deadline =>
            {
                tokio::time::sleep(backoff.next_delay().unwrap_or(Duration::from_secs(2))).await;
            }
            Err(s) => bail!("uploading {name}: {:?} {}", s.code(), s.message()),
        }
    }
}

/// Chunks in the read model, and how many documents' chunks do not add
/// up: stored chunks of the document's run other than its `chunks_total`
/// (one missing or one too many). The chunks table's key (chunk id, run)
/// keeps a redelivered batch from storing a chunk twice; this checks
/// what the key cannot: that every document got exactly its chunks.
async fn chunk_mismatches(bench: &ChaosBench, scratch: &Scratch) -> Result<(i64, i64)> {
    let db = mnemo_projector::db::connect(&bench.backend.database_url, &scratch.ns).await?;
    let r = db
        .query_one(
            "SELECT (SELECT count(*) FROM chunks),
                    (SELECT count(*) FROM documents d
                     WHERE d.chunks_total <> (SELECT count(*) FROM chunks c
                                              WHERE c.document_id = d.document_id
                                                AND c.run = d.run))",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}

/// The median and the largest of some durations.
fn p50_max(values: &[Duration]) -> (Duration, Duration) {
    let mut v = values.to_vec();
    v.sort();
    (
        v.get(v.len() / 2).copied().unwrap_or_default(),
        v.last().copied().unwrap_or_default(),
    )
}
