//! `mnemo-bench append`: how fast commands append, and how fast uploads are
//! accepted.
//!
//! Runs in a throwaway namespace (`bench_<random>`) on the configured NATS and
//! PostgreSQL, and deletes it afterwards.
//!
//! 1. *Commands/s*: N aggregates are created, then each of C workers issues
//!    commands round-robin over its own aggregates. Every command loads its
//!    aggregate (from the cache, as in a long-running service), decides, and
//!    appends with the expected-sequence check. The same is repeated with the
//!    cache off (every load walks the aggregate's history with direct gets).
//! 2. *Upload accepted*: an in-process API receives a ~1 MB PDF, made unique
//!    per upload so every one is hashed and stored; the time is from the
//!    first byte sent to the response (blob stored and event appended).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use mnemo::cli::Backend;
use mnemo_api::auth::Authenticator;
use mnemo_api::{ApiConfig, ApiState};
use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, Namespace, RetryPolicy};
use mnemo_domain::content::ContentType;
use mnemo_domain::document::{aggregate_id, UploadedDocument};
use mnemo_domain::{Document, DocumentCommand, DocumentId, OwnerId, Sha256Hex};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;

use crate::timing::{ms, percentile};

/// What `bench append` is asked to do.
#[derive(Args)]
pub struct AppendBench {
    #[command(flatten)]
    pub backend: Backend,
    /// Aggregates the commands spread over.
    #[arg(long, default_value_t = 1000)]
    pub aggregates: usize,
    /// Commands to time (after creating the aggregates).
    #[arg(long, default_value_t = 50_000)]
    pub commands: usize,
    /// Commands in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Uploads to time.
    #[arg(long, default_value_t = 200)]
    pub uploads: usize,
    /// A ~1 MB PDF to upload (default: the corpus file nearest 1 MB, else a generated one).
    #[arg(long)]
    pub pdf: Option<PathBuf>,
}

pub async fn run(bench: AppendBench) -> Result<ExitCode> {
    let ns = Namespace::new(format!(
        "bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))?;
    let result = append(
        &bench.backend,
        &ns,
        bench.aggregates,
        bench.commands,
        bench.concurrency,
        bench.uploads,
        bench.pdf,
    )
    .await;
    let bus = bench.backend.operator_bus(ns.clone()).await?;
    mnemo_bus::setup::delete_namespace(&bus.jetstream, &ns).await?;
    mnemo_projector::db::drop_schema(&bench.backend.database_url, &ns).await?;
    result.map(|_| ExitCode::SUCCESS)
}

pub(crate) fn executor(bus: &Bus, cache: usize) -> Arc<CommandExecutor<Document>> {
    let store = JetStreamEventStore::<Document>::new(bus, "doc", cache);
    Arc::new(CommandExecutor::new(store, (), RetryPolicy::default()))
}

/// Creates `n` documents; returns their aggregate ids.
async fn create(
    exec: &Arc<CommandExecutor<Document>>,
    n: usize,
    concurrency: usize,
) -> Result<Vec<String>> {
    let owner = OwnerId::new("bench")?;
    let ids: Vec<String> = (0..n)
        .map(|_| aggregate_id(&owner, &DocumentId::new()))
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for (w, chunk) in ids.chunks(n.div_ceil(concurrency.max(1))).enumerate() {
        let (exec, chunk, owner) = (exec.clone(), chunk.to_vec(), owner.clone());
        set.spawn(async move {
            for id in chunk {
                let document_id = id
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .parse::<DocumentId>()?;
                exec.execute(
                    &id,
                    bench_upload(
                        document_id,
                        owner.clone(),
                        format!("bench-{w}.pdf"),
                        "bench",
                    ),
                    &HashMap::new(),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(ids)
}

/// The `Upload` of a benchmark document (one byte, never processed).
pub(crate) fn bench_upload(
    document_id: DocumentId,
    owner: OwnerId,
    filename: String,
    batch_id: &str,
) -> DocumentCommand {
    DocumentCommand::Upload(UploadedDocument {
        document_id,
        owner,
        filename,
        content_type: ContentType::Pdf,
        size_bytes: 1,
        sha256: Sha256Hex::from_digest(&[7; 32]),
        topic: None,
        batch_id: batch_id.to_owned(),
        idempotency_key: None,
        external_id: None,
    })
}

/// Issues `commands` progress commands over `ids`; returns (elapsed, latencies).
async fn hammer(
    exec: &Arc<CommandExecutor<Document>>,
    ids: &[String],
    commands: usize,
    concurrency: usize,
) -> Result<(Duration, Vec<Duration>)> {
    let per_worker = commands / concurrency.max(1);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency.max(1) {
        let mine: Vec<String> = ids
            .iter()
            .skip(w)
            .step_by(concurrency.max(1))
            .cloned()
            .collect();
        let exec = exec.clone();
        set.spawn(async move {
            let mut lat = Vec::with_capacity(per_worker);
            let mut pages: HashMap<usize, u32> = HashMap::new();
            for i in 0..per_worker {
                let k = i % mine.len().max(1);
                let Some(id) = mine.get(k) else { break };
                let p = pages.entry(k).or_insert(0);
                *p += 1;
                let t = Instant::now();
                exec.execute(
                    id,
                    DocumentCommand::RecordExtractionProgress {
                        run: 1,
                        pages_done: *p,
                        pages_total: 1_000_000,
                    },
                    &HashMap::new(),
                )
                .await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Vec::with_capacity(commands);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    let elapsed = start.elapsed();
    all.sort();
    Ok((elapsed, all))
}

/// The corpus PDF nearest 1 MB, if the shared corpus is next to the repo.
fn default_pdf() -> Option<PathBuf> {
    let dir = std::fs::read_dir("../shared/corpus/pdf").ok()?;
    dir.filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .filter_map(|p| {
            std::fs::metadata(&p)
                .ok()
                .map(|m| (m.len().abs_diff(1_000_000), p))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p)
}

async fn uploads_bench(
    bus: Bus,
    backend: &Backend,
    uploads: usize,
    pdf: Option<PathBuf>,
) -> Result<(String, Vec<Duration>)> {
    let (bytes, label) = match pdf.or_else(default_pdf) {
        Some(p) => (
            std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => {
            let mut b = b"%PDF-1.4\n".to_vec();
            b.resize(1_000_000, b'.');
            (b, "generated 1 MB PDF".to_owned())
        }
    };
    let secret = uuid::Uuid::new_v4().simple().to_string().into_bytes();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ApiConfig::new(addr, &backend.database_url, secret.clone());
    let state = Arc::new(ApiState::new(bus, config).await?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mnemo_api::serve(state, listener, async {
        let _ = stop_rx.await;
    }));
    let token = Authenticator::new(&secret).issue(&OwnerId::new("bench")?, 3600, false)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
    let mut client = pb::document_service_client::DocumentServiceClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        },
    );
    let mut lat = Vec::with_capacity(uploads);
    for i in 0..uploads + 5 {
        let mut body = bytes.clone();
        body.extend_from_slice(format!("\n%mnemo-bench-{}\n", uuid::Uuid::new_v4()).as_bytes());
        let mut reqs = vec![pb::UploadRequest {
            part: Some(Part::Metadata(pb::UploadMetadata {
                filename: format!("bench-{i}.pdf"),
                // Each upload is a new document, whatever its bytes.
                new_document: true,
                ..Default::default()
            })),
        }];
        reqs.extend(body.chunks(256 * 1024).map(|c| pb::UploadRequest {
            part: Some(Part::Chunk(c.to_vec())),
        }));
        let t = Instant::now();
        client.upload(futures::stream::iter(reqs)).await?;
        if i >= 5 {
            lat.push(t.elapsed()); // the first few warm up connections and caches
        }
    }
    let _ = stop_tx.send(());
    server.await??;
    lat.sort();
    Ok((format!("{label} ({} bytes)", bytes.len()), lat))
}

async fn append(
    backend: &Backend,
    ns: &Namespace,
    aggregates: usize,
    commands: usize,
    concurrency: usize,
    uploads: usize,
    pdf: Option<PathBuf>,
) -> Result<()> {
    let bus = backend.operator_bus(ns.clone()).await?;
    mnemo_projector::runner::prepare(&mnemo_projector::ProjectorConfig::new(
        ns.clone(),
        &backend.database_url,
    ))
    .await?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("mnemo bench append — {cores} cores, namespace {ns}");
    println!();

    let exec = executor(&bus, 1_000_000);
    let t = Instant::now();
    let ids = create(&exec, aggregates, concurrency).await?;
    let create_elapsed = t.elapsed();

    let (elapsed, lat) = hammer(&exec, &ids, commands, concurrency).await?;
    let cold = executor(&bus, 0);
    let cold_n = (commands / 10).max(concurrency);
    let (cold_elapsed, cold_lat) = hammer(&cold, &ids, cold_n, concurrency).await?;

    println!("| what | count | elapsed | rate | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| create aggregates (Upload) | {aggregates} | {:.2} s | {:.0}/s | | |",
        create_elapsed.as_secs_f64(),
        aggregates as f64 / create_elapsed.as_secs_f64()
    );
    println!(
        "| commands, cached aggregates, {concurrency} in flight | {} | {:.2} s | {:.0}/s | {} | {} |",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    println!(
        "| commands, cache off (history re-read per command) | {} | {:.2} s | {:.0}/s | {} | {} |",
        cold_lat.len(),
        cold_elapsed.as_secs_f64(),
        cold_lat.len() as f64 / cold_elapsed.as_secs_f64(),
        ms(percentile(&cold_lat, 0.5)),
        ms(percentile(&cold_lat, 0.99))
    );
    if uploads > 0 {
        let (label, up) = uploads_bench(bus, backend, uploads, pdf).await?;
        let total: Duration = up.iter().sum();
        println!(
            "| upload accepted: {label} | {} | {:.2} s | {:.0}/s | {} | {} |",
            up.len(),
            total.as_secs_f64(),
            up.len() as f64 / total.as_secs_f64(),
            ms(percentile(&up, 0.5)),
            ms(percentile(&up, 0.99))
        );
    }
    Ok(())
}
