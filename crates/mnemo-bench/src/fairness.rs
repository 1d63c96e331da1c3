//! `mnemo bench fairness`: one owner's small upload while another owner's
//! big batch is in flight (issue 18, fair sharing). Target: the small
//! upload's time to `indexed` at most 3× its time on an idle server.
//!
//! Per mode (read-ahead on, the default; with `--compare` also off, stream
//! order) in a fresh namespace and a fresh `mnemo serve all`:
//! 1. the learner uploads `--probes` small documents one after the other on
//!    the idle server, each timed from the upload call to its `indexed`
//!    update (a Watch of that document);
//! 2. the bulk owner uploads `--batch` documents of the same shape;
//! 3. while that batch is in flight, the learner's uploads are timed again
//!    (a probe counts only if the batch had not ended when it finished);
//! 4. the batch is followed to its end.
//!
//! Every document's text is unique, so no vector comes from a cache.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use mnemo::cli::{Backend, Global};
use mnemo::client::Clients;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;

use crate::services::{connect_when_ready, Scratch, Served, ALL_IN_ONE};

#[derive(Args)]
pub struct FairnessBench {
    #[command(flatten)]
    pub backend: Backend,
    /// The embedding model directory (the server's --model-dir).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: std::path::PathBuf,
    /// Documents in the bulk owner's batch.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Bytes of text in each document (about 4 bytes a token).
    #[arg(long, default_value_t = 6_000)]
    pub doc_bytes: usize,
    /// Small uploads timed idle, and again under the batch.
    #[arg(long, default_value_t = 5)]
    pub probes: usize,
    /// Also run with read-ahead off (`--read-ahead 0`: stream order), the
    /// behaviour before fair sharing.
    #[arg(long)]
    pub compare: bool,
    /// Print when each probe reached each stage.
    #[arg(long)]
    pub stages: bool,
    /// Longest wait for the batch to end.
    #[arg(long, default_value = "20min", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

const LEARNER: &str = "learner";
const BULK: &str = "bulk";

struct ModeResult {
    read_ahead: usize,
    idle: Vec<f64>,
    loaded: Vec<f64>,
    batch_seconds: f64,
    batch_failed: u64,
}

pub async fn run(global: &Global, bench: FairnessBench) -> Result<ExitCode> {
    let default = mnemo_bus::fair::FairShare::default().window;
    let modes: Vec<usize> = if bench.compare {
        vec![default, 0]
    } else {
        vec![default]
    };
    let mut results = Vec::new();
    for read_ahead in modes {
        eprintln!("read-ahead {read_ahead}:");
        results.push(run_mode(global, &bench, read_ahead).await?);
    }
    println!(
        "| read-ahead | idle p50 | under the batch: p50 | max | max / idle p50 | probes under the batch | batch of {} ({} B each) | failed |",
        bench.batch, bench.doc_bytes
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ok = true;
    for r in &results {
        let idle = median(&r.idle);
        let loaded = median(&r.loaded);
        let max = r.loaded.iter().copied().fold(0.0, f64::max);
        let ratio = if idle > 0.0 {
            max / idle
        } else {
            f64::INFINITY
        };
        if r.read_ahead > 0 {
            ok &= !r.loaded.is_empty() && ratio <= 3.0 && r.batch_failed == 0;
        }
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.1}× | {} | {:.0} s | {} |",
            r.read_ahead,
            idle,
            loaded,
            max,
            ratio,
            r.loaded.len(),
            r.batch_seconds,
            r.batch_failed
        );
    }
    Ok(crate::timing::verdict(
        "target (with read-ahead, every small upload under the batch within 3× idle p50)",
        ok,
    ))
}

async fn run_mode(global: &Global, bench: &FairnessBench, read_ahead: usize) -> Result<ModeResult> {
    let scratch = Scratch::new(&bench.backend, "fair").await?;
    let ns = scratch.ns.clone();
    let env = [("MNEMO_READ_AHEAD", read_ahead.to_string())];
    let mut served = Served::start(
        global,
        &bench.backend,
        &ns,
        &bench.model_dir,
        LEARNER,
        &ALL_IN_ONE,
        &env,
    )
    .await?;
    let port = served.port;
    let bulk_token = served.token_for(BULK)?;
    let learner_token = served.token.clone();
    let mut services = std::mem::take(&mut served.services);
    let result = async {
        let learner = connect_when_ready(global, port, learner_token, &mut services).await?;
        let bulk = connect_when_ready(global, port, bulk_token, &mut services).await?;
        let mut idle = Vec::new();
        for i in 0..bench.probes {
            idle.push(time_to_indexed(&learner, &format!("idle-{i}"), bench).await?);
        }
        eprintln!("  idle: {idle:.2?}");
        // The batch: uploaded in parallel, then followed by one watcher.
        let batch_id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let uploads = futures::stream::iter(0..bench.batch)
            .map(|i| {
                let (bulk, batch_id) = (&bulk, batch_id.clone());
                async move { upload(bulk, &format!("bulk-{i}"), &batch_id, bench.doc_bytes).await }
            })
            .buffer_unordered(16)
            .collect::<Vec<Result<String>>>()
            .await;
        uploads.into_iter().collect::<Result<Vec<String>>>()?;
        eprintln!(
            "  batch uploaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let follow = {
            let (progress, batch_id) = (bulk.progress.clone(), batch_id.clone());
            let (documents, timeout) = (bench.batch, bench.timeout);
            tokio::spawn(async move { follow_batch(progress, &batch_id, documents, timeout).await })
        };
        let mut loaded = Vec::new();
        for i in 0..bench.probes {
            let t = time_to_indexed(&learner, &format!("loaded-{i}"), bench).await?;
            // Counts only if the batch was still running when it ended.
            if follow.is_finished() {
                eprintln!("  the batch ended during probe {i}: it does not count");
                break;
            }
            loaded.push(t);
        }
        eprintln!("  under the batch: {loaded:.2?}");
        let failed = follow.await??;
        let batch_seconds = started.elapsed().as_secs_f64();
        anyhow::Ok(ModeResult {
            read_ahead,
            idle,
            loaded,
            batch_seconds,
            batch_failed: failed,
        })
    }
    .await;
    for s in services {
        s.stop().await;
    }
    scratch.delete().await?;
    result
}

/// A document's text: `bytes` of sentences, unique to `name`.
pub(crate) fn text(name: &str, bytes: usize) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "memory",
        "retrieval",
        "practice",
        "spacing",
        "neuron",
        "cortex",
        "protein",
        "enzyme",
        "signal",
        "pathway",
        "lattice",
        "theorem",
        "integral",
        "vector",
        "matrix",
        "entropy",
        "market",
        "policy",
        "climate",
        "river",
        "language",
        "grammar",
        "history",
        "empire",
    ];
    // A small linear congruential generator seeded by the name: varied
    // sentences, the same for the same name.
    let mut state = name.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let mut out = format!("# Notes {name}\n\n");
    while out.len() < bytes {
        let n = 8 + next() % 10;
        let words: Vec<&str> = (0..n).map(|_| WORDS[next() % WORDS.len()]).collect();
        out.push_str(&format!("The {} {}. ", words.join(" "), next() % 100_000));
        if next() % 6 == 0 {
            out.push_str("\n\n");
        }
    }
    out.into_bytes()
}

/// Uploads `doc_bytes` of [`text`] as `<name>.md`; returns its id.
pub(crate) async fn upload(
    clients: &Clients,
    name: &str,
    batch_id: &str,
    doc_bytes: usize,
) -> Result<String> {
    let bytes = text(name, doc_bytes);
    let requests = vec![
        pb::UploadRequest {
            part: Some(Part::Metadata(pb::UploadMetadata {
                filename: format!("{name}.md"),
                batch_id: batch_id.to_owned(),
                // Each upload is a new document, whatever its bytes.
                new_document: true,
                ..Default::default()
            })),
        },
        pb::UploadRequest {
            part: Some(Part::Chunk(bytes)),
        },
    ];
    let mut documents = clients.documents.clone();
    let response = documents
        .upload(futures::stream::iter(requests))
        .await
        .map_err(|s| anyhow::anyhow!("uploading {name}: {}", s.message()))?;
    Ok(response.into_inner().document_id)
}

/// Seconds from the upload call to the document's `indexed` update.
async fn time_to_indexed(clients: &Clients, name: &str, bench: &FairnessBench) -> Result<f64> {
    let started = Instant::now();
    let id = upload(clients, name, "", bench.doc_bytes).await?;
    let stages = wait_indexed(clients, &id)
        .await
        .with_context(|| format!("waiting for {name}"))?;
    let took = started.elapsed().as_secs_f64();
    if bench.stages {
        let shown: Vec<String> = stages
            .iter()
            .map(|(stage, at)| format!("{stage} {:.2}", (*at - started).as_secs_f64()))
            .collect();
        eprintln!("    {name}: {}", shown.join(", "));
    }
    Ok(took)
}

/// Follows a document's Watch until it is indexed (an error if it fails,
/// is cancelled, or the stream ends first); returns when each stage was
/// first seen.
pub(crate) async fn wait_indexed(
    clients: &Clients,
    document_id: &str,
) -> Result<Vec<(String, Instant)>> {
    let mut stages: Vec<(String, Instant)> = Vec::new();
    let mut progress = clients.progress.clone();
    let mut stream = progress
        .watch(pb::WatchRequest {
            scope: Some(pb::watch_request::Scope::DocumentId(document_id.to_owned())),
            from_sequence: 0,
            follow: true,
        })
        .await
        .map_err(|s| anyhow::anyhow!("watch: {}", s.message()))?
        .into_inner();
    while let Some(update) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("watch: {}", s.message()))?
    {
        // The event that moved it (ChunksEmbedded, DocumentIndexed, …), or
        // the stage word.
        let stage = if update.event_type.is_empty() {
            pb::Stage::try_from(update.stage)
                .map(|s| s.as_str_name().trim_start_matches("STAGE_").to_lowercase())
                .unwrap_or_default()
        } else {
            update.event_type.clone()
        };
        if stages.last().is_none_or(|(s, _)| *s != stage) {
            stages.push((stage, Instant::now()));
        }
        if update.stage == pb::Stage::Indexed as i32 {
            return Ok(stages);
        }
        if update.stage == pb::Stage::Failed as i32 || update.stage == pb::Stage::Cancelled as i32 {
            bail!("{document_id} did not get indexed: {}", update.message);
        }
    }
    bail!("the watch of {document_id} ended before it was indexed")
}

/// Follows the batch until `documents` have ended; returns how many failed.
pub(crate) async fn follow_batch(
    mut progress: mnemo::client::Progress,
    batch_id: &str,
    documents: usize,
    timeout: Duration,
) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut ended = std::collections::HashMap::new();
    let mut from = 0;
    while ended.len() < documents {
        let request = pb::WatchRequest {
            scope: Some(pb::watch_request::Scope::BatchId(batch_id.to_owned())),
            from_sequence: from,
            follow: true,
        };
        let mut stream = progress
            .watch(request)
            .await
            .map_err(|s| anyhow::anyhow!("watching the batch: {}", s.message()))?
            .into_inner();
        loop {
            let next = tokio::time::timeout_at(deadline, stream.message())
                .await
                .with_context(|| {
                    format!("{} of {documents} ended within {timeout:?}", ended.len())
                })?;
            let Ok(Some(update)) = next else { break };
            from = update.sequence;
            let failed = update.stage == pb::Stage::Failed as i32
                || update.stage == pb::Stage::Cancelled as i32;
            if failed || update.stage == pb::Stage::Indexed as i32 {
                ended.insert(update.document_id.clone(), failed);
            }
            if ended.len() >= documents {
                break;
            }
        }
    }
    Ok(ended.values().filter(|f| **f).count() as u64)
}

/// The median of some seconds (0 for none).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
