//! `mnemo-bench eval ir`: retrieval quality on a BEIR dataset (e.g. SciFact)
//! through the real system.
//!
//! 1. `mnemo serve all` starts as a child process in a throwaway namespace
//!    (`eval_<random>`; `--reuse NS` skips ingesting into one kept before).
//! 2. Every corpus line is uploaded as a text document (title, blank line,
//!    text) with the corpus id as its external id, and followed through the
//!    real pipeline (extractor, chunker, embedder, projector) to `indexed`.
//! 3. Every judged query is searched three ways — full text, vector,
//!    hybrid — over gRPC; hits become documents (a document counts once, at
//!    its best chunk) and are scored against the judgments: nDCG@10 and
//!    recall@100, averaged over queries.
//!
//! Tune fusion with the serve flags' env vars (`MNEMO_RRF_K`,
//! `MNEMO_RRF_LEXICAL_WEIGHT`, `MNEMO_RRF_VECTOR_WEIGHT`), which the child
//! inherits — on the train split only.

mod beir;
pub mod metrics;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use futures::StreamExt;
use mnemo::cli::{Backend, Global};
use mnemo::client::Clients;
use mnemo_bus::Namespace;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;

use crate::services::{connect_when_ready, Served, ALL_IN_ONE};

#[derive(Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Retrieval quality on a BEIR dataset through the real pipeline:
    /// nDCG@10 and recall@100 for lexical, vector and hybrid search.
    Ir(IrArgs),
}

/// What `eval ir` is asked to do.
#[derive(Args)]
pub struct IrArgs {
    #[command(flatten)]
    pub backend: Backend,
    /// corpus.jsonl (`_id`, `title`, `text`).
    #[arg(long)]
    pub corpus: PathBuf,
    /// queries.jsonl (`_id`, `text`); only judged queries are scored.
    #[arg(long)]
    pub queries: PathBuf,
    /// qrels TSV (`query-id corpus-id score`).
    #[arg(long)]
    pub qrels: PathBuf,
    /// The prepared embedding model (deploy/model/prepare.sh).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Ingest only the first N corpus documents (a quick check).
    #[arg(long)]
    pub docs: Option<usize>,
    /// Score against a namespace kept by an earlier run (no ingest).
    #[arg(long)]
    pub reuse: Option<String>,
    /// Keep the namespace afterwards (for --reuse); without it, a fresh or
    /// reused namespace is deleted at the end.
    #[arg(long)]
    pub keep: bool,
    /// Uploads and queries in flight at once.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    #[arg(long)]
    pub json: bool,
}

/// Scores of one retrieval mode.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModeScores {
    pub mode: &'static str,
    pub ndcg_at_10: f64,
    pub recall_at_100: f64,
    pub queries: usize,
    pub p50_ms: f64,
}

const OWNER: &str = "eval";

pub async fn run(global: &Global, eval: IrArgs) -> Result<ExitCode> {
    let corpus = beir::corpus(&eval.corpus)?;
    let corpus = &corpus[..eval.docs.unwrap_or(usize::MAX).min(corpus.len())];
    let qrels = beir::qrels(&eval.qrels)?;
    let queries: Vec<beir::Query> = beir::queries(&eval.queries)?
        .into_iter()
        .filter(|q| qrels.contains_key(&q.id))
        .collect();
    if queries.is_empty() {
        bail!(
            "no query of {} has judgments in {}",
            eval.queries.display(),
            eval.qrels.display()
        );
    }
    let ns = match &eval.reuse {
        Some(ns) => Namespace::new(ns.as_str())?,
        None => Namespace::new(format!(
            "eval_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))?,
    };
    let bus = eval.backend.operator_bus(ns.clone()).await?;
    let projector = mnemo_projector::ProjectorConfig::new(ns.clone(), &eval.backend.database_url);
    mnemo_projector::runner::prepare(&projector).await?;

    let mut served = Served::start(
        global,
        &eval.backend,
        &ns,
        &eval.model_dir,
        OWNER,
        &ALL_IN_ONE,
        &[],
    )
    .await?;
    let (port, token) = (served.port, served.token.clone());
    let mut services = std::mem::take(&mut served.services);
    let result = async {
        let clients = connect_when_ready(global, port, token, &mut services).await?;
        let seen = if eval.reuse.is_none() {
            ingest(&clients, corpus, eval.parallel, eval.json).await?
        } else {
            clients
                .stats
                .clone()
                .get_stats(pb::GetStatsRequest { all_owners: false })
                .await
                .map_err(|s| anyhow::anyhow!("stats: {}", s.message()))?
                .into_inner()
                .sequence
        };
        let mut scores = Vec::new();
        for (mode, name) in [
            (pb::SearchMode::Lexical, "lexical"),
            (pb::SearchMode::Vector, "vector"),
            (pb::SearchMode::Hybrid, "hybrid"),
        ] {
            scores.push(score(&clients, &queries, &qrels, mode, name, eval.parallel, seen).await?);
        }
        anyhow::Ok(scores)
    }
    .await;
    for s in services {
        s.stop().await;
    }
    // A reused namespace is deleted too unless --keep is given again: the
    // last tuning run cleans up.
    if !eval.keep {
        mnemo_bus::setup::delete_namespace(&bus.jetstream, &ns).await?;
        mnemo_projector::db::drop_schema(&eval.backend.database_url, &ns).await?;
    } else {
        eprintln!("kept namespace {ns} (reuse it with --reuse {ns})");
    }
    let scores = result?;
    if eval.json {
        println!(
            "{}",
            serde_json::json!({"corpus_documents": corpus.len(), "queries": queries.len(), "modes": scores})
        );
    } else {
        println!(
            "{} documents, {} judged queries ({})",
            corpus.len(),
            queries.len(),
            eval.queries.display()
        );
        println!();
        println!("| retrieval | nDCG@10 | recall@100 | p50 latency |");
        println!("|---|---:|---:|---:|");
        for s in &scores {
            println!(
                "| {} | **{:.4}** | {:.4} | {:.1} ms |",
                s.mode, s.ndcg_at_10, s.recall_at_100, s.p50_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads every document (one batch) and waits until all have ended;
/// returns the stream sequence the read models then reflect, for searches
/// to wait on (`min_sequence`).
async fn ingest(
    clients: &Clients,
    corpus: &[beir::Doc],
    parallel: usize,
    quiet: bool,
) -> Result<u64> {
    let started = Instant::now();
    let batch_id = uuid::Uuid::now_v7().to_string();
    let uploaded: Vec<Result<()>> = futures::stream::iter(corpus.iter())
        .map(|doc| {
            let mut documents = clients.documents.clone();
            let batch_id = batch_id.clone();
            async move {
                let body = format!("{}\n\n{}\n", doc.title, doc.text).into_bytes();
                let requests = vec![
                    pb::UploadRequest {
                        part: Some(Part::Metadata(pb::UploadMetadata {
                            filename: format!("{}.txt", doc.id),
                            batch_id,
                            content_type: "text/plain".into(),
                            external_id: doc.id.clone(),
                            // Each upload is a new document, whatever its bytes.
                            new_document: true,
                            ..Default::default()
                        })),
                    },
                    pb::UploadRequest {
                        part: Some(Part::Chunk(body)),
                    },
                ];
                documents
                    .upload(futures::stream::iter(requests))
                    .await
                    .map(|_| ())
                    .map_err(|s| anyhow::anyhow!("uploading {}: {}", doc.id, s.message()))
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    uploaded.into_iter().collect::<Result<Vec<()>>>()?;
    // Wait for the pipeline: the counters tell how many documents ended.
    let mut stats = clients.stats.clone();
    let total = corpus.len() as u64;
    loop {
        let s = stats
            .get_stats(pb::GetStatsRequest { all_owners: false })
            .await
            .map_err(|s| anyhow::anyhow!("stats: {}", s.message()))?
            .into_inner();
        let t = s.totals.unwrap_or_default();
        let ended = t.indexed + t.failed + t.cancelled;
        if !quiet {
            eprint!(
                "\ringested {ended}/{total} documents ({} failed) in {:.0} s   ",
                t.failed,
                started.elapsed().as_secs_f64()
            );
        }
        if t.total >= total && ended >= t.total {
            if !quiet {
                eprintln!();
            }
            if t.failed > 0 {
                eprintln!("warning: {} documents failed to index", t.failed);
            }
            return Ok(s.sequence);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn score(
    clients: &Clients,
    queries: &[beir::Query],
    qrels: &HashMap<String, metrics::Judged>,
    mode: pb::SearchMode,
    name: &'static str,
    parallel: usize,
    seen: u64,
) -> Result<ModeScores> {
    let results: Vec<Result<(f64, f64, f64)>> = futures::stream::iter(queries.iter())
        .map(|q| {
            let mut search = clients.search.clone();
            async move {
                let started = Instant::now();
                let hits = search
                    .search(pb::SearchRequest {
                        query: q.text.clone(),
                        k: 100,
                        mode: mode as i32,
                        min_sequence: seen,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| anyhow::anyhow!("query {}: {}", q.id, s.message()))?
                    .into_inner()
                    .hits;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let ranked = metrics::documents_once(hits.into_iter().map(|h| h.external_id));
                let judged = &qrels[&q.id];
                Ok((
                    metrics::ndcg_at(&ranked, judged, 10),
                    metrics::recall_at(&ranked, judged, 100),
                    ms,
                ))
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let results: Vec<(f64, f64, f64)> = results.into_iter().collect::<Result<_>>()?;
    let n = results.len().max(1) as f64;
    let mut ms: Vec<f64> = results.iter().map(|r| r.2).collect();
    ms.sort_by(f64::total_cmp);
    Ok(ModeScores {
        mode: name,
        ndcg_at_10: results.iter().map(|r| r.0).sum::<f64>() / n,
        recall_at_100: results.iter().map(|r| r.1).sum::<f64>() / n,
        queries: results.len(),
        p50_ms: ms.get(ms.len() / 2).copied().unwrap_or(0.0),
    })
}
