//! `mnemo-bench pipeline DIR`: a folder through the real services, end to
//! end, then the embedder alone on the same chunks.
//!
//! 1. A throwaway namespace (`bench_<random>`) is prepared (streams, schema),
//!    then each service starts as its own child process (`mnemo serve api`,
//!    `extractor`, `chunker`, `embedder`, `projector`), so each one's peak
//!    RSS (`VmHWM`) can be read on its own. With `--copies N`, N processes
//!    of each pipeline service share the work (the projector's extra
//!    copies stand by).
//! 2. Every file of DIR is uploaded (a few at a time, one batch) and watched
//!    until it is indexed or failed. The clock runs from the first upload to
//!    the last terminal update.
//! 3. The services are stopped (SIGTERM) after their peak RSS is read.
//! 4. *Embedder alone*: the chunk texts the pipeline produced are read back
//!    from PostgreSQL and embedded in this process through the same batching
//!    queue, without the cache. `efficiency = alone time / pipeline time`:
//!    1.0 would mean the pipeline costs nothing beyond embedding.
//! 5. The namespace is deleted (unless `--keep`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use mnemo::cli::{Backend, Global};
use mnemo_bus::{Bus, Namespace};
use mnemo_embedder::batcher::{Batcher, TextToEmbed};
use mnemo_embedder::EmbedderArgs;
use mnemo_proto::v1 as pb;
use tokio::process::Command;

use crate::services::{cpu_seconds_of, free_port, mnemo_binary, ServiceProcess};

/// Documents followed at once (the API allows an owner 64 progress
/// streams by default).
const WATCHERS: usize = 48;

/// What `bench pipeline` is asked to do.
#[derive(Args)]
pub struct PipelineBench {
    #[command(flatten)]
    pub backend: Backend,
    /// Folder of PDFs (and .txt/.md files) to ingest.
    pub dir: PathBuf,
    /// The prepared embedding model (deploy/model/prepare.sh).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: PathBuf,
    #[command(flatten)]
    pub embed: EmbedderArgs,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Keep the benchmark's namespace (streams, schema) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Skip part 4 (the embedder alone on the same chunks, and so the
    /// efficiency): for end-to-end comparisons (`baseline/compare.py`).
    #[arg(long)]
    pub no_alone: bool,
    /// Copies of the extractor, chunker, embedder and projector (one
    /// active, the others standing by), each a process sharing its
    /// durable consumer: replicas' throughput against one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub copies: u32,
}

fn pdfs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "pdf" | "txt" | "md")
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .pdf, .txt or .md files in {}", dir.display());
    }
    Ok(files)
}

/// Results of the end-to-end part.
#[derive(Default, serde::Serialize)]
struct EndToEnd {
    files: usize,
    indexed: usize,
    failed: Vec<(String, String)>,
    seconds: f64,
    pages: u64,
    chunks: u64,
    tokens: u64,
    max_chunk_tokens: u64,
    duplicate_texts: u64,
    embedder_queue: QueueCounts,
    peak_rss: Vec<(String, u64)>,
    cpu_seconds: Vec<(String, f64)>,
}

/// What the embedder's queue reported when it stopped.
#[derive(Default, serde::Serialize)]
struct QueueCounts {
    cache_hits: u64,
    shared: u64,
    embedded: u64,
    batches: u64,
}

impl QueueCounts {
    /// From the `embedder stopped cache_hits=… shared=…` log line.
    fn parse(line: &str) -> Self {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            cache_hits: field("cache_hits"),
            shared: field("shared"),
            embedded: field("embedded"),
            batches: field("batches"),
        }
    }
}

#[derive(serde::Serialize)]
struct Alone {
    seconds: f64,
    chunks: usize,
    tokens: u64,
}

pub async fn run(global: &Global, bench: PipelineBench) -> Result<ExitCode> {
    let files = pdfs_in(&bench.dir)?;
    let ns = Namespace::new(format!(
        "bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))?;
    // Streams and schema exist before the services race to create them.
    let bus = bench.backend.operator_bus(ns.clone()).await?;
    let projector = mnemo_projector::ProjectorConfig::new(ns.clone(), &bench.backend.database_url);
    mnemo_projector::runner::prepare(&projector).await?;

    let result = measure(global, &bench, &bus, &files).await;

    if !bench.keep {
        mnemo_bus::setup::delete_namespace(&bus.jetstream, &ns).await?;
        mnemo_projector::db::drop_schema(&bench.backend.database_url, &ns).await?;
    } else {
        eprintln!("kept namespace {}", ns.as_str());
    }
    let (e2e, alone) = result?;
    report(&bench, &e2e, &alone)?;
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    global: &Global,
    bench: &PipelineBench,
    bus: &Bus,
    files: &[PathBuf],
) -> Result<(EndToEnd, Option<Alone>)> {
    let ns = &bus.namespace;
    let exe = mnemo_binary()?;
    let port = free_port()?;
    // The services read the secret from a file of their own (0600): no
    // secret goes into a child's environment.
    let secret_dir = tempfile::tempdir()?;
    let secret_file = secret_dir.path().join("jwt-secret");
    let secret = String::from_utf8(mnemo::secret::create_file(&secret_file)?)?;
    let mut services = Vec::new();
    // The embedder logs what its queue did when it stops (cache hits, texts
    // shared, texts embedded): its stderr goes to a file read at the end.
    let embedder_log =
        std::env::temp_dir().join(format!("mnemo-bench-{}-embedder.log", ns.as_str()));
    let base_log = global.log.clone().unwrap_or_else(|| "warn".into());
    let copies = bench.copies as usize;
    let pipeline = ["projector", "extractor", "chunker", "embedder"];
    let names = pipeline
        .iter()
        .flat_map(|name| std::iter::repeat_n(*name, copies))
        .chain(["api"]);
    let mut embedders = 0;
    for name in names {
        // The first embedder's log is read for its queue's figures.
        let first_embedder = name == "embedder" && {
            embedders += 1;
            embedders == 1
        };
        let (log, stderr) = if first_embedder {
            let file = std::fs::File::create(&embedder_log)
                .with_context(|| format!("cannot create {}", embedder_log.display()))?;
            (
                format!("{base_log},mnemo_embedder=info"),
                std::process::Stdio::from(file),
            )
        } else {
            (base_log.clone(), std::process::Stdio::inherit())
        };
        let child = Command::new(&exe)
            .arg("serve")
            .arg(name)
            .envs(bench.backend.nats_env())
            .envs(crate::services::UNLIMITED_RATE)
            .env("MNEMO_DATABASE_URL", &bench.backend.database_url)
            .env("MNEMO_NAMESPACE", ns.as_str())
            .env("MNEMO_LISTEN", format!("127.0.0.1:{port}"))
            .env("MNEMO_JWT_SECRET_FILE", &secret_file)
            .env("MNEMO_MODEL_DIR", &bench.model_dir)
            .env("MNEMO_LOG", log)
            .env(
                "MNEMO_EMBED_TOKEN_BUDGET",
                bench.embed.embed_token_budget.to_string(),
            )
            .env(
                "MNEMO_EMBED_CONCURRENCY",
                bench.embed.embed_concurrency.to_string(),
            )
            .env("MNEMO_EMBED_SPIN", bench.embed.embed_spin.to_string())
            .envs(
                bench
                    .embed
                    .embed_threads
                    .map(|t| ("MNEMO_EMBED_THREADS", t.to_string())),
            )
            .stdin(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `mnemo serve {name}`"))?;
        services.push(ServiceProcess { name, child });
    }
    let outcome = drive(global, bench, files, port, &secret, bus, &mut services).await;
    let mut peak_rss = Vec::new();
    let mut cpu_seconds = Vec::new();
    for s in &services {
        peak_rss.push((s.name.to_owned(), s.peak_rss().unwrap_or(0)));
        let cpu = s.child.id().and_then(cpu_seconds_of).unwrap_or(0.0);
        cpu_seconds.push((s.name.to_owned(), cpu));
    }
    for s in services {
        s.stop().await;
    }
    let mut e2e = outcome?;
    e2e.peak_rss = peak_rss;
    e2e.cpu_seconds = cpu_seconds;
    let log = std::fs::read_to_string(&embedder_log).unwrap_or_default();
    let _ = std::fs::remove_file(&embedder_log);
    e2e.embedder_queue = log
        .lines()
        .find(|l| l.contains("embedder stopped"))
        .map(QueueCounts::parse)
        .unwrap_or_default();
    let alone = if bench.no_alone {
        None
    } else {
        Some(embed_alone(bench, ns).await?)
    };
    Ok((e2e, alone))
}

/// Uploads every file and waits for each to end; then reads the counts.
async fn drive(
    global: &Global,
    bench: &PipelineBench,
    files: &[PathBuf],
    port: u16,
    secret: &str,
    bus: &Bus,
    services: &mut [ServiceProcess],
) -> Result<EndToEnd> {
    let ns = &bus.namespace;
    let owner = mnemo_domain::OwnerId::new("bench".to_owned())?;
    let token =
        mnemo_api::auth::Authenticator::new(secret.as_bytes()).issue(&owner, 24 * 3600, false)?;
    let clients = crate::services::connect_when_ready(global, port, token, services).await?;
    let deadline = Instant::now() + Duration::from_secs(120);

    // The clock starts when every service is ready: a service creates its
    // durable consumer once loaded (the embedder after its model). The
    // projector reads from its checkpoint without a durable consumer; it
    // has nothing to do before the first upload anyway.
    for service in ["extractor", "chunker", "embedder"] {
        let name = ns.consumer(service);
        loop {
            if bus.events.consumer_info(&name).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("`mnemo serve {service}` did not start its consumer {name}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let batch_id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let parallel = bench.parallel.max(1);
    // Upload everything first (a few streams at a time), as a user dropping
    // a folder would, then follow every document: the services see the
    // whole folder as soon as it is stored, not 8 documents at a time.
    let uploads: Vec<(PathBuf, Result<pb::UploadResponse>)> =
        futures::stream::iter(files.iter().cloned())
            .map(|path| {
                let mut documents = clients.documents.clone();
                let batch_id = batch_id.clone();
                async move {
                    let r =
                        mnemo::cmd::upload::upload_file(&mut documents, &path, "", &batch_id, true)
                            .await;
                    (path, r)
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    // Followed a few dozen at a time, under the API's per-owner limit of
    // progress streams: a document watched late replays its history and
    // ends at once if it is indexed by then.
    let outcomes: Vec<(PathBuf, Result<Option<pb::ProgressUpdate>>)> =
        futures::stream::iter(uploads.into_iter().map(|(path, up)| {
            let progress = clients.progress.clone();
            async move {
                let r = match up {
                    Ok(up) => {
                        mnemo::cmd::upload::watch(
                            progress,
                            up.document_id,
                            pb::Stage::Indexed as i32,
                            None,
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                (path, r)
            }
        }))
        .buffer_unordered(WATCHERS)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let last_sequence = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().and_then(|u| u.as_ref()).map(|u| u.sequence))
        .max()
        .unwrap_or(0);

    let mut e2e = EndToEnd {
        files: files.len(),
        seconds,
        ..Default::default()
    };
    for (path, r) in outcomes {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match r {
            Ok(Some(u)) if u.stage == pb::Stage::Indexed as i32 => e2e.indexed += 1,
            Ok(Some(u)) => e2e.failed.push((name, u.message)),
            Ok(None) => e2e.failed.push((name, "no progress update".into())),
            Err(e) => e2e.failed.push((name, format!("{e:#}"))),
        }
    }
    let db = mnemo_projector::db::connect(&bench.backend.database_url, ns).await?;
    // The counts below come from the read models: wait until they hold
    // every terminal event.
    mnemo_projector::runner::wait_for(&db, ns, last_sequence, Duration::from_secs(60)).await?;
    let row = db
        .query_one(
            "SELECT coalesce(sum(pages_total), 0)::bigint FROM documents WHERE stage = 'indexed'",
            &[],
        )
        .await?;
    e2e.pages = row.get::<_, i64>(0) as u64;
    let row = db
        .query_one(
            "SELECT count(*), coalesce(sum(tokens), 0)::bigint, coalesce(max(tokens), 0)::bigint,
                    count(*) - count(DISTINCT md5(text))
               FROM chunks",
            &[],
        )
        .await?;
    e2e.chunks = row.get::<_, i64>(0) as u64;
    e2e.tokens = row.get::<_, i64>(1) as u64;
    e2e.max_chunk_tokens = row.get::<_, i64>(2) as u64;
    e2e.duplicate_texts = row.get::<_, i64>(3) as u64;
    Ok(e2e)
}

/// The same chunks through the model in this process, no cache.
async fn embed_alone(bench: &PipelineBench, ns: &Namespace) -> Result<Alone> {
    let db = mnemo_projector::db::connect(&bench.backend.database_url, ns).await?;
    let rows = db
        .query(
            "SELECT text, tokens FROM chunks ORDER BY document_id, ordinal",
            &[],
        )
        .await?;
    let texts: Vec<TextToEmbed> = rows
        .iter()
        .enumerate()
        .map(|(index, r)| TextToEmbed {
            index,
            text: r.get(0),
            tokens: r.get::<_, i32>(1).max(0) as usize,
        })
        .collect();
    let tokens = texts.iter().map(|t| t.tokens as u64).sum();
    let chunks = texts.len();
    let config = bench.embed.config(bench.model_dir.clone());
    let model = tokio::task::spawn_blocking(move || mnemo_embedder::Embedder::new(config))
        .await?
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    // No cache: every text once through the model (identical texts submitted
    // together still share one computation).
    let plan = mnemo_embedder::batcher::BatchPlan {
        cache_entries: 0,
        ..bench.embed.plan()
    };
    let (batcher, _task) = Batcher::start(Arc::new(model), plan);
    let started = Instant::now();
    let mut results = batcher.submit(texts)?;
    let mut got = 0;
    while got < chunks {
        match results.recv().await {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => bail!("embedding failed: {}", e.report()),
            None => bail!("the embedding queue stopped after {got} of {chunks}"),
        }
    }
    Ok(Alone {
        seconds: started.elapsed().as_secs_f64(),
        chunks,
        tokens,
    })
}

fn report(bench: &PipelineBench, e2e: &EndToEnd, alone: &Option<Alone>) -> Result<()> {
    let efficiency = match alone {
        Some(alone) if e2e.seconds > 0.0 => Some(alone.seconds / e2e.seconds),
        _ => None,
    };
    let total_rss: u64 = e2e.peak_rss.iter().map(|(_, b)| b).sum();
    if bench.json {
        println!(
            "{}",
            serde_json::json!({
                "end_to_end": e2e,
                "embedder_alone": alone,
                "efficiency": efficiency,
                "peak_rss_total_bytes": total_rss,
            })
        );
        return Ok(());
    }
    let per_s = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "pipeline on {} ({} files; {} of each pipeline service)",
        bench.dir.display(),
        e2e.files,
        bench.copies
    );
    println!();
    println!("| what | value |");
    println!("|---|---:|");
    println!(
        "| indexed / failed | {} / {} |",
        e2e.indexed,
        e2e.failed.len()
    );
    println!("| end to end | {:.1} s |", e2e.seconds);
    println!("| docs/s | {:.3} |", per_s(e2e.files as f64, e2e.seconds));
    println!(
        "| pages/s (indexed pages: {}) | {:.1} |",
        e2e.pages,
        per_s(e2e.pages as f64, e2e.seconds)
    );
    println!(
        "| chunks/s ({} chunks, {} tokens, largest {}) | {:.1} |",
        e2e.chunks,
        e2e.tokens,
        e2e.max_chunk_tokens,
        per_s(e2e.chunks as f64, e2e.seconds)
    );
    if let (Some(alone), Some(efficiency)) = (alone, efficiency) {
        println!(
            "| embedder alone, same chunks | {:.1} s, {:.1} chunks/s, {:.0} tok/s |",
            alone.seconds,
            per_s(alone.chunks as f64, alone.seconds),
            per_s(alone.tokens as f64, alone.seconds)
        );
        println!("| pipeline efficiency (alone / end to end) | {efficiency:.3} |");
    }
    let q = &e2e.embedder_queue;
    println!(
        "| embedder queue: cache hits / shared in flight / embedded / model calls | {} / {} / {} / {} |",
        q.cache_hits, q.shared, q.embedded, q.batches
    );
    println!(
        "| chunks whose text another chunk has | {} |",
        e2e.duplicate_texts
    );
    for ((name, bytes), (_, cpu)) in e2e.peak_rss.iter().zip(&e2e.cpu_seconds) {
        println!(
            "| {name}: peak RSS, CPU | {:.0} MB, {cpu:.1} s |",
            mb(*bytes)
        );
    }
    println!(
        "| peak RSS, all services (sum of peaks) | {:.0} MB |",
        mb(total_rss)
    );
    for (name, reason) in &e2e.failed {
        println!();
        println!("failed: {name}: {reason}");
    }
    Ok(())
}
