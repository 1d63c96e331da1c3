//! `mnemo-bench progress`: how long an appended event takes to reach the
//! progress watchers, with many of them watching at once.
//!
//! An in-process API serves W concurrent Watch streams over real gRPC (on a
//! few HTTP/2 connections, as many clients behind a proxy would). Events are
//! appended through the command executor at a fixed rate, round-robin over
//! the documents; each watcher notes when each update arrives. The latency
//! of a delivery is from the append's acknowledgement (the event is in the
//! stream) to the watcher holding the update, and also from the moment the
//! command was issued. Everything runs in a throwaway namespace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use mnemo_api::auth::Authenticator;
use mnemo_api::{ApiConfig, ApiState};
use mnemo_bus::{Bus, CommandExecutor, Namespace};
use mnemo_domain::document::aggregate_id;
use mnemo_domain::{Document, DocumentCommand, DocumentId, OwnerId};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::watch_request::Scope;

use crate::append::{bench_upload, executor};
use crate::timing::{ms, percentile};
use mnemo::cli::Backend;

/// What `bench progress` is asked to do.
#[derive(Args)]
pub struct ProgressBench {
    #[command(flatten)]
    pub backend: Backend,
    /// Concurrent Watch streams.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// What each watcher follows: its own document, its owner's batch,
    /// or all its owner's documents (one event then reaches every
    /// watcher of that owner).
    #[arg(long, value_enum, default_value = "document")]
    pub scope: BenchScope,
    /// Owners the documents (one per watcher) are spread over.
    #[arg(long, default_value_t = 10)]
    pub owners: usize,
    /// Events to append and time.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Events appended per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// HTTP/2 connections the watchers share.
    #[arg(long, default_value_t = 20)]
    pub connections: usize,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 16)]
    pub appenders: usize,
    #[arg(long)]
    pub json: bool,
}

/// A Watch scope, for `bench progress`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchScope {
    Document,
    Batch,
    All,
}

/// One document of the benchmark.
struct Doc {
    aggregate: String,
    owner: usize,
    id: DocumentId,
}

pub async fn run(bench: ProgressBench) -> Result<()> {
    let ns = Namespace::new(format!(
        "bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))?;
    let bus = bench.backend.operator_bus(ns.clone()).await?;
    let result = measure(&bench, &bus).await;
    mnemo_bus::setup::delete_namespace(&bus.jetstream, &ns).await?;
    result
}

async fn measure(bench: &ProgressBench, bus: &Bus) -> Result<()> {
    let owners = bench.owners.max(1);
    let watchers = bench.watchers.max(1);
    let exec = executor(bus, 1_000_000);
    let docs = create(&exec, watchers.max(owners), owners).await?;

    // The API, as `mnemo serve api` runs it.
    let secret = uuid::Uuid::new_v4().simple().to_string().into_bytes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = ApiConfig::new(addr, &bench.backend.database_url, secret.clone());
    // The benchmark measures fan-out, not the per-owner cap: every watcher
    // may be one owner's.
    config.limits.max_watchers_per_owner = watchers;
    config.limits.max_streams_per_connection = watchers.try_into().unwrap_or(u32::MAX);
    config.limits.rate = mnemo_api::rate::RateConfig {
        per_second: u32::MAX,
        burst: u32::MAX,
    };
    let state = Arc::new(ApiState::new(bus.clone(), config).await?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mnemo_api::serve(state.clone(), listener, async {
        let _ = stop_rx.await;
    }));

    let auth = Authenticator::new(&secret);
    let mut channels = Vec::new();
    for _ in 0..bench.connections.max(1) {
        channels.push(
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await
                .context("connecting to the benchmark's API")?,
        );
    }
    let mut clients = Vec::new();
    for o in 0..owners {
        let token = auth.issue(&OwnerId::new(format!("bench-{o}"))?, 3600, false)?;
        clients.push(tonic::metadata::MetadataValue::try_from(format!(
            "Bearer {token}"
        ))?);
    }

    // Every watcher subscribes before anything is timed (Watch answers
    // once the watcher is registered with the hub).
    let received = Arc::new(AtomicUsize::new(0));
    let after = state.progress.position().unwrap_or(0);
    let mut expected_per_event = vec![0usize; docs.len()];
    let mut opening = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let owner = w % owners;
        let scope = match bench.scope {
            BenchScope::Document => Scope::DocumentId(docs[w % docs.len()].id.to_string()),
            BenchScope::Batch => Scope::BatchId(format!("bench-{owner}")),
            BenchScope::All => Scope::All(pb::AllDocuments {}),
        };
        for (i, d) in docs.iter().enumerate() {
            let sees = match bench.scope {
                BenchScope::Document => i == w % docs.len(),
                _ => d.owner == owner,
            };
            expected_per_event[i] += usize::from(sees);
        }
        let bearer = clients[owner].clone();
        let mut client = pb::progress_service_client::ProgressServiceClient::with_interceptor(
            channels[w % channels.len()].clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", bearer.clone());
                Ok(r)
            },
        );
        opening.push(async move {
            client
                .watch(pb::WatchRequest {
                    scope: Some(scope),
                    from_sequence: after,
                    follow: true,
                })
                .await
                .map(|r| r.into_inner())
                .context("opening a watcher")
        });
    }
    // A batch or all-documents watcher reads its owner's history first: open
    // a few at a time.
    let streams: Vec<_> = futures::stream::iter(opening)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        let received = received.clone();
        tasks.spawn(async move {
            let mut seen = Vec::new();
            // Ends with UNAVAILABLE when the API stops.
            while let Ok(Some(u)) = stream.message().await {
                seen.push((u.sequence, Instant::now()));
                received.fetch_add(1, Ordering::Relaxed);
            }
            seen
        });
    }

    // Warm up (connections, caches): one event per document, untimed.
    let warm: usize = expected_per_event.iter().sum();
    let mut pages = vec![0u32; docs.len()];
    for (i, d) in docs.iter().enumerate() {
        pages[i] += 1;
        exec.execute(&d.aggregate, progress(pages[i]), &HashMap::new())
            .await?;
    }
    wait_for(&received, warm, Duration::from_secs(60)).await?;

    // The timed run: events at a fixed rate from a few appenders.
    let appenders = bench.appenders.max(1);
    let interval = Duration::from_secs_f64(1.0 / bench.rate.max(1) as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let pages = Arc::new(std::sync::Mutex::new(pages));
    let docs = Arc::new(docs);
    let mut senders = tokio::task::JoinSet::new();
    for a in 0..appenders {
        let (exec, docs, pages) = (exec.clone(), docs.clone(), pages.clone());
        let events = bench.events;
        senders.spawn(async move {
            let mut sent = Vec::new();
            for e in (a..events).step_by(appenders) {
                tokio::time::sleep_until(start + interval * e as u32).await;
                let i = e % docs.len();
                let page = {
                    let mut p = pages.lock().unwrap_or_else(|p| p.into_inner());
                    p[i] += 1;
                    p[i]
                };
                let issued = Instant::now();
                let done = exec
                    .execute(&docs[i].aggregate, progress(page), &HashMap::new())
                    .await?;
                let acked = Instant::now();
                let Some((_, seq)) = done.appended else {
                    bail!("a progress command appended nothing");
                };
                sent.push((seq, i, issued, acked));
            }
            anyhow::Ok(sent)
        });
    }
    let began = Instant::now();
    let mut sent: HashMap<u64, (usize, Instant, Instant)> = HashMap::new();
    while let Some(r) = senders.join_next().await {
        for (seq, i, issued, acked) in r?? {
            sent.insert(seq, (i, issued, acked));
        }
    }
    let append_secs = began.elapsed().as_secs_f64();
    let expected: usize = sent.values().map(|(i, ..)| expected_per_event[*i]).sum();
    wait_for(&received, warm + expected, Duration::from_secs(120)).await?;
    let _ = stop_tx.send(());
    let mut from_ack = Vec::with_capacity(expected);
    let mut from_issue = Vec::with_capacity(expected);
    while let Some(seen) = tasks.join_next().await {
        for (seq, at) in seen? {
            if let Some((_, issued, acked)) = sent.get(&seq) {
                from_ack.push(at.saturating_duration_since(*acked));
                from_issue.push(at.saturating_duration_since(*issued));
            }
        }
    }
    server.await??;
    from_ack.sort();
    from_issue.sort();
    report(
        bench,
        &docs,
        sent.len(),
        append_secs,
        &from_ack,
        &from_issue,
    );
    Ok(())
}

fn progress(page: u32) -> DocumentCommand {
    DocumentCommand::RecordExtractionProgress {
        run: 1,
        pages_done: page,
        pages_total: 1_000_000,
    }
}

/// `n` documents spread over `owners`, each owner's in batch `bench-<owner>`.
async fn create(
    exec: &Arc<CommandExecutor<Document>>,
    n: usize,
    owners: usize,
) -> Result<Vec<Doc>> {
    let docs: Vec<Doc> = (0..n)
        .map(|i| {
            let owner = i % owners;
            let id = DocumentId::new();
            let token_owner = OwnerId::new(format!("bench-{owner}"))?;
            Ok(Doc {
                aggregate: aggregate_id(&token_owner, &id),
                owner,
                id,
            })
        })
        .collect::<Result<_>>()?;
    let mut set = tokio::task::JoinSet::new();
    for chunk in docs.chunks(n.div_ceil(16)) {
        let exec = exec.clone();
        let chunk: Vec<(String, usize, DocumentId)> = chunk
            .iter()
            .map(|d| (d.aggregate.clone(), d.owner, d.id))
            .collect();
        set.spawn(async move {
            for (aggregate, owner, document_id) in chunk {
                let upload = bench_upload(
                    document_id,
                    OwnerId::new(format!("bench-{owner}"))?,
                    format!("bench-{document_id}.pdf"),
                    &format!("bench-{owner}"),
                );
                exec.execute(&aggregate, upload, &HashMap::new()).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(docs)
}

/// Waits until `counter` reaches `n` (updates delivered), up to `limit`.
async fn wait_for(counter: &AtomicUsize, n: usize, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while counter.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} updates arrived within {limit:?}",
                counter.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn report(
    bench: &ProgressBench,
    docs: &[Doc],
    events: usize,
    append_secs: f64,
    from_ack: &[Duration],
    from_issue: &[Duration],
) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let scope = match bench.scope {
        BenchScope::Document => "document",
        BenchScope::Batch => "batch",
        BenchScope::All => "all",
    };
    let rate = events as f64 / append_secs.max(1e-9);
    if bench.json {
        let q = |v: &[Duration], p| percentile(v, p).as_secs_f64() * 1000.0;
        println!(
            "{}",
            serde_json::json!({
                "cores": cores,
                "watchers": bench.watchers,
                "scope": scope,
                "owners": bench.owners,
                "documents": docs.len(),
                "connections": bench.connections,
                "events": events,
                "rate_per_s": rate,
                "deliveries": from_ack.len(),
                "appended_to_received_ms": {"p50": q(from_ack, 0.5), "p95": q(from_ack, 0.95), "p99": q(from_ack, 0.99), "max": q(from_ack, 1.0)},
                "issued_to_received_ms": {"p50": q(from_issue, 0.5), "p95": q(from_issue, 0.95), "p99": q(from_issue, 0.99), "max": q(from_issue, 1.0)},
            })
        );
        return;
    }
    println!(
        "mnemo bench progress — {cores} cores; {} watchers ({scope} scope) on {} connections, {} documents of {} owners; {events} events at {rate:.0}/s",
        bench.watchers,
        bench.connections,
        docs.len(),
        bench.owners
    );
    println!();
    println!("| latency | deliveries | p50 | p95 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (what, v) in [
        ("event appended → client received", from_ack),
        ("command issued → client received", from_issue),
    ] {
        println!(
            "| {what} | {} | {} | {} | {} | {} |",
            v.len(),
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.95)),
            ms(percentile(v, 0.99)),
            ms(percentile(v, 1.0)),
        );
    }
}
