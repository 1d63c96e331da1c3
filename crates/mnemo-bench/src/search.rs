//! `mnemo-bench search`: the vector index at scale (exact scan against the
//! HNSW graph: build time, memory, latency, recall@10), then the whole
//! hybrid search path over PostgreSQL at 100,000 chunks ([`hybrid`]), then
//! 1,000,000 chunks over 1,000 owners within the API's memory budget
//! ([`owners`]).
//!
//! Vectors are synthetic ([`synthetic`]) around real all-MiniLM embeddings
//! of SciFact abstracts (when the model is prepared), 20 chunks per
//! document, one owner. Each size is loaded as the API would load it
//! (exact at once), then the graph is built the way the API builds it (a
//! background rebuild) and timed until it is swapped in. Recall@10 is the
//! share of the exact top 10 that the default path returns.

mod hybrid;
mod owners;
mod synthetic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use mnemo::cli::Backend;
use mnemo_api::config::VectorArgs;
use mnemo_embedder::EmbedderArgs;
use mnemo_search::vectors::{AnnConfig, DocumentVectors, Path, Quantization};
use mnemo_search::{Scope, VectorConfig, VectorIndex};
use uuid::Uuid;

use crate::timing::{ms, percentile};
use synthetic::Mixture;

/// `--quantization` values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuantizationArg {
    F32,
    F16,
    I8,
}

impl From<QuantizationArg> for mnemo_search::vectors::Quantization {
    fn from(q: QuantizationArg) -> Self {
        match q {
            QuantizationArg::F32 => Self::F32,
            QuantizationArg::F16 => Self::F16,
            QuantizationArg::I8 => Self::I8,
        }
    }
}

/// What `bench search` is asked to do.
#[derive(Args)]
pub struct SearchBench {
    #[command(flatten)]
    pub backend: Backend,
    /// Index sizes (vectors, one owner) to measure.
    #[arg(long, value_delimiter = ',', default_value = "20000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Queries timed per size and path.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// SciFact abstracts embedded as the synthetic vectors' seeds.
    #[arg(long, default_value_t = 1000)]
    pub seeds: usize,
    /// SciFact corpus.jsonl (default: the shared copy).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// SciFact queries (default: the shared queries.train.jsonl).
    #[arg(long)]
    pub query_file: Option<PathBuf>,
    /// The prepared embedding model (without: random seeds, and lexical-only hybrid queries).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    #[command(flatten)]
    pub embed: EmbedderArgs,
    /// Chunks loaded into PostgreSQL for the hybrid part (0: skip it).
    #[arg(long, default_value_t = 100_000)]
    pub hybrid_chunks: usize,
    #[command(flatten)]
    pub vectors: VectorArgs,
    /// Chunks over all owners in the many-owners part (0: skip it).
    #[arg(long, default_value_t = 1_000_000)]
    pub owner_chunks: usize,
    /// Owners in the many-owners part.
    #[arg(long, default_value_t = 1_000)]
    pub owners: usize,
    /// Owners searched again and again (warm) after every owner's first search.
    #[arg(long, default_value_t = 100)]
    pub warm_owners: usize,
    /// Queries over the warm owners.
    #[arg(long, default_value_t = 2_000)]
    pub warm_queries: usize,
    /// How the graph stores vectors: f32, f16 or i8.
    #[arg(long, default_value = "f32")]
    pub quantization: QuantizationArg,
    /// Print EXPLAIN ANALYZE of the full-text query.
    #[arg(long)]
    pub explain: bool,
    /// Keep the benchmark's namespace (schema) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

const DIMS: usize = 384;
const CHUNKS_PER_DOCUMENT: usize = 20;
const OWNER: &str = "bench";
/// What `mnemo_search::search` asks each list for at k = 10.
const SEARCH_CANDIDATES: usize = 50;
/// Candidate lists the graph is also timed with (see `vectors`).
const WIDER: [usize; 4] = [SEARCH_CANDIDATES, 100, 200, 400];

/// The shared SciFact files, `../shared/ir/scifact` beside the repository
/// this binary was built from (`--corpus` / `--query-file` point elsewhere).
fn shared(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/ir/scifact")
        .join(name);
    path.exists().then_some(path)
}

/// `title + text` of each corpus line, or `text` of each query line.
fn texts(path: &std::path::Path, limit: usize) -> Result<Vec<String>> {
    let body =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()).take(limit) {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("a line of {}", path.display()))?;
        let title = v["title"].as_str().unwrap_or("");
        let text = v["text"].as_str().unwrap_or("");
        out.push(if title.is_empty() {
            text.to_string()
        } else {
            format!("{title}. {text}")
        });
    }
    Ok(out)
}

/// One row of the vector table.
#[derive(serde::Serialize)]
struct Row {
    vectors: usize,
    path: String,
    build_s: Option<f64>,
    memory_mb: Option<f64>,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    qps: f64,
    recall_at_10: f64,
}

fn rss() -> u64 {
    status_bytes("VmRSS:")
}

/// A size line of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in bytes.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with(field))?.to_string();
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

pub async fn run(b: SearchBench) -> Result<ExitCode> {
    let corpus = b.corpus.clone().or_else(|| shared("corpus.jsonl"));
    let query_file = b
        .query_file
        .clone()
        .or_else(|| shared("queries.train.jsonl"));
    let model = match &b.model_dir {
        Some(dir) => {
            let config = b.embed.config(dir.clone());
            let m = tokio::task::spawn_blocking(move || mnemo_embedder::Embedder::new(config))
                .await?
                .map_err(|e| anyhow::anyhow!(e.report()))?;
            Some(Arc::new(m))
        }
        None => None,
    };
    // Seeds (and query vectors for the hybrid part) from the real model.
    let started = Instant::now();
    let (mut mixture, seed_kind) = match (&model, &corpus) {
        (Some(m), Some(c)) => {
            let docs = texts(c, b.seeds)?;
            let seeds = embed(m, docs).await?;
            (
                Mixture::new(seeds, 7),
                format!("{} SciFact abstracts embedded by {}", b.seeds, m.model_id()),
            )
        }
        _ => (
            Mixture::random(DIMS, b.seeds, 7),
            format!("{} random seeds (no model or corpus)", b.seeds),
        ),
    };
    let real_queries: Vec<(String, Vec<f32>)> = match (&model, &query_file) {
        (Some(m), Some(q)) => {
            let qs = texts(q, b.queries)?;
            let vs = embed(m, qs.clone()).await?;
            qs.into_iter().zip(vs).collect()
        }
        _ => Vec::new(),
    };
    eprintln!(
        "seeds: {seed_kind} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let quantization = Quantization::from(b.quantization);
    let mut config = b.vectors.config();
    config.ann.quantization = quantization;
    let AnnConfig {
        connectivity: m,
        expansion_add: ef_construction,
        expansion_search: ef,
        ..
    } = config.ann;
    let mut rows = Vec::new();
    let mut cosines = Vec::new();
    let mut sizes = b.sizes.clone();
    sizes.sort();
    for &n in sizes.iter().filter(|&&n| n > 0) {
        let (r, c) = vectors(n, b.queries, &mut mixture, &real_queries, config).await?;
        rows.extend(r);
        cosines.push((n, c));
    }
    if !b.json {
        println!(
            "seeds: {seed_kind}; HNSW M={m} efConstruction={ef_construction} ef={ef} ({:?}); exact below {} rows",
            quantization, config.exact_below
        );
        for (n, (top1, top10)) in &cosines {
            println!("{n} vectors: a query's mean cosine to its nearest chunk {top1:.3}, to its 10th {top10:.3}");
        }
        println!();
        println!("| vectors | path | build | memory | p50 | p95 | p99 | queries/s | recall@10 |");
        println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} | {:.3} |",
                r.vectors,
                r.path,
                r.build_s.map_or(String::new(), |s| format!("{s:.1} s")),
                r.memory_mb.map_or(String::new(), |m| format!("{m:.0} MB")),
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.qps,
                r.recall_at_10
            );
        }
    }
    let chunk_texts = if b.hybrid_chunks > 0 || b.owner_chunks > 0 {
        let corpus = corpus
            .context("the hybrid and many-owners parts need the SciFact corpus (--corpus)")?;
        texts(&corpus, usize::MAX)?
    } else {
        Vec::new()
    };
    let hybrid = if b.hybrid_chunks > 0 {
        Some(
            hybrid::run(hybrid::HybridBench {
                source: Source::of(&b, &chunk_texts, &mut mixture, &real_queries, config),
                chunks: b.hybrid_chunks,
                explain: b.explain,
            })
            .await?,
        )
    } else {
        None
    };
    let owners = if b.owner_chunks > 0 {
        Some(
            owners::run(owners::OwnersBench {
                source: Source::of(&b, &chunk_texts, &mut mixture, &real_queries, config),
                owners: b.owners,
                chunks: b.owner_chunks,
                budget: b.vectors.budget(),
                warm_owners: b.warm_owners,
                warm_queries: b.warm_queries,
            })
            .await?,
        )
    } else {
        None
    };
    if b.json {
        println!(
            "{}",
            serde_json::json!({
                "seeds": seed_kind,
                "exact_below": config.exact_below,
                "hnsw": {"m": m, "ef_construction": ef_construction, "ef": ef,
                         "quantization": format!("{quantization:?}")},
                "vectors": rows,
                "neighbour_cosines": cosines.iter().map(|(n, c)| serde_json::json!({"vectors": n, "top1": c.0, "top10": c.1})).collect::<Vec<_>>(),
                "hybrid": hybrid,
                "owners": owners,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(h) = hybrid {
        println!();
        h.print();
    }
    if let Some(o) = owners {
        println!();
        o.print();
    }
    Ok(ExitCode::SUCCESS)
}

async fn embed(model: &Arc<mnemo_embedder::Embedder>, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
    let model = model.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(16) {
            out.extend(
                model
                    .embed(batch)
                    .map_err(|e| anyhow::anyhow!(e.report()))?,
            );
        }
        Ok(out)
    })
    .await?
}

/// `n` synthetic chunks as documents of 20, and their documents' centres.
pub(super) fn documents(
    n: usize,
    mixture: &mut Mixture,
) -> (BTreeMap<Uuid, DocumentVectors>, Vec<Vec<f32>>) {
    let mut docs = BTreeMap::new();
    let mut centres = Vec::new();
    for d in 0..n.div_ceil(CHUNKS_PER_DOCUMENT) {
        let centre = mixture.document();
        let rows = CHUNKS_PER_DOCUMENT.min(n - d * CHUNKS_PER_DOCUMENT);
        let mut v = DocumentVectors {
            topic: None,
            chunk_ids: Vec::with_capacity(rows),
            data: Vec::with_capacity(rows * DIMS),
        };
        for i in 0..rows {
            v.chunk_ids.push(format!("{d}-{i}"));
            v.data.extend(mixture.chunk(&centre));
        }
        docs.insert(Uuid::from_u128(d as u128), v);
        centres.push(centre);
    }
    (docs, centres)
}

/// What the parts that write read models take: where, which texts and
/// vectors, which queries, and the index's knobs.
pub(super) struct Source<'a> {
    pub backend: &'a Backend,
    /// SciFact `title. text` lines, the chunks' texts.
    pub texts: &'a [String],
    pub mixture: &'a mut Mixture,
    /// Query texts with their real embeddings (empty: no model, lexical
    /// queries from the corpus).
    pub queries: &'a [(String, Vec<f32>)],
    pub config: VectorConfig,
    /// Keep the namespace afterwards.
    pub keep: bool,
}

/// Latency figures of one kind of query.
#[derive(serde::Serialize)]
pub(super) struct Latency {
    what: String,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Which tail a latency table shows beside p50 and p95.
#[derive(Clone, Copy)]
pub(super) enum Tail {
    P99,
    Max,
}

/// A markdown table of `rows`, `first` naming its first column.
pub(super) fn print_latencies(first: &str, rows: &[Latency], tail: Tail) {
    let (name, value): (&str, fn(&Latency) -> f64) = match tail {
        Tail::P99 => ("p99", |l| l.p99_ms),
        Tail::Max => ("max", |l| l.max_ms),
    };
    println!("| {first} | p50 | p95 | {name} |");
    println!("|---|---:|---:|---:|");
    for l in rows {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            l.what,
            l.p50_ms,
            l.p95_ms,
            value(l)
        );
    }
}

pub(super) fn latency(what: &str, mut d: Vec<Duration>) -> Latency {
    d.sort();
    let f = |x: Duration| x.as_secs_f64() * 1000.0;
    Latency {
        what: what.into(),
        p50_ms: f(percentile(&d, 0.50)),
        p95_ms: f(percentile(&d, 0.95)),
        p99_ms: f(percentile(&d, 0.99)),
        max_ms: f(d.last().copied().unwrap_or_default()),
    }
}

impl<'a> Source<'a> {
    fn of(
        b: &'a SearchBench,
        texts: &'a [String],
        mixture: &'a mut Mixture,
        queries: &'a [(String, Vec<f32>)],
        config: VectorConfig,
    ) -> Self {
        Self {
            backend: &b.backend,
            texts,
            mixture,
            queries,
            config,
            keep: b.keep,
        }
    }

    /// The queries with their vectors, or without a model `n` lexical ones:
    /// each of the first `n` texts' first eight words.
    fn queries_or_words(&self, n: usize) -> Vec<(String, Option<Vec<f32>>)> {
        if self.queries.is_empty() {
            let words = |t: &String| t.split_whitespace().take(8).collect::<Vec<_>>().join(" ");
            self.texts
                .iter()
                .take(n)
                .map(|t| (words(t), None))
                .collect()
        } else {
            self.queries
                .iter()
                .map(|(t, v)| (t.clone(), Some(v.clone())))
                .collect()
        }
    }
}

/// A throwaway namespace for a part that writes read models.
pub(super) fn bench_namespace() -> Result<mnemo_bus::Namespace> {
    Ok(mnemo_bus::Namespace::new(format!(
        "bench_{}",
        &Uuid::new_v4().simple().to_string()[..8]
    ))?)
}

/// Drops the namespace's schema, or says where it is (`--keep`).
pub(super) async fn done_with(
    backend: &Backend,
    ns: &mnemo_bus::Namespace,
    keep: bool,
) -> Result<()> {
    if keep {
        eprintln!("kept namespace {ns} (schema {})", ns.sql_schema());
    } else {
        mnemo_projector::db::drop_schema(&backend.database_url, ns).await?;
    }
    Ok(())
}

/// A binary COPY into `chunks` (chunk_id, document_id, owner_token, run,
/// ordinal, text, page_start, page_end, tokens, created_at).
pub(super) async fn copy_chunks(
    db: &tokio_postgres::Client,
) -> Result<tokio_postgres::binary_copy::BinaryCopyInWriter> {
    use tokio_postgres::types::Type;
    let sink = db
        .copy_in(
            "COPY chunks (chunk_id, document_id, owner_token, run, ordinal, text, page_start,
                          page_end, tokens, created_at) FROM STDIN BINARY",
        )
        .await?;
    Ok(tokio_postgres::binary_copy::BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::UUID,
            Type::TEXT,
            Type::INT4,
            Type::INT4,
            Type::TEXT,
            Type::INT4,
            Type::INT4,
            Type::INT4,
            Type::TIMESTAMPTZ,
        ],
    ))
}

/// A binary COPY into `chunk_embeddings` (chunk_id, run, model,
/// document_id, owner_token, dims, vector).
pub(super) async fn copy_vectors(
    db: &tokio_postgres::Client,
) -> Result<tokio_postgres::binary_copy::BinaryCopyInWriter> {
    use tokio_postgres::types::Type;
    let sink = db
        .copy_in(
            "COPY chunk_embeddings (chunk_id, run, model, document_id, owner_token, dims, vector)
             FROM STDIN BINARY",
        )
        .await?;
    Ok(tokio_postgres::binary_copy::BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::UUID,
            Type::TEXT,
            Type::INT4,
            Type::BYTEA,
        ],
    ))
}

/// One chunk (run 1, page 1) into [`copy_chunks`]'s writer.
pub(super) async fn write_chunk(
    writer: std::pin::Pin<&mut tokio_postgres::binary_copy::BinaryCopyInWriter>,
    (chunk, document, owner): (&str, &Uuid, &str),
    ordinal: usize,
    text: &str,
    now: &std::time::SystemTime,
) -> Result<()> {
    let tokens = (text.split_whitespace().count() as i32).min(256);
    let row: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
        &chunk,
        document,
        &owner,
        &1i32,
        &(ordinal as i32),
        &text,
        &1i32,
        &1i32,
        &tokens,
        now,
    ];
    Ok(writer.write(&row).await?)
}

/// One chunk's vector (run 1, model "synthetic") into [`copy_vectors`]'s writer.
pub(super) async fn write_vector(
    writer: std::pin::Pin<&mut tokio_postgres::binary_copy::BinaryCopyInWriter>,
    (chunk, document, owner): (&str, &Uuid, &str),
    vector: &[f32],
) -> Result<()> {
    let bytes = mnemo_projector::chunks::vector_bytes(vector);
    let row: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &chunk,
        &1i32,
        &"synthetic",
        document,
        &owner,
        &(DIMS as i32),
        &bytes,
    ];
    Ok(writer.write(&row).await?)
}

/// Makes PostgreSQL compute each chunk's lexemes as the benchmark's COPY
/// inserts it, the way the projector writes them (`chunks.tsv` is no
/// generated column since the chunks projection's V3): a trigger in the
/// benchmark's own schema, dropped with it.
pub(super) async fn lexemes_on_insert(db: &tokio_postgres::Client) -> Result<()> {
    db.batch_execute(
        "CREATE FUNCTION bench_chunk_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.tsv := to_tsvector('english', NEW.text); RETURN NEW; END $$;
         CREATE TRIGGER bench_chunk_lexemes BEFORE INSERT ON chunks
            FOR EACH ROW EXECUTE FUNCTION bench_chunk_lexemes();",
    )
    .await
    .context("the benchmark's lexeme trigger")?;
    Ok(())
}

pub(super) fn scope() -> Scope {
    Scope {
        owner_token: OWNER.into(),
        documents: None,
        topic: None,
    }
}

struct Timed {
    latencies: Vec<Duration>,
    total: Duration,
    results: Vec<Vec<String>>,
}

fn time_queries(index: &VectorIndex, queries: &[Vec<f32>], n: usize, path: Path) -> Timed {
    let scope = scope();
    let mut latencies = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    let all = Instant::now();
    for q in queries {
        let t = Instant::now();
        let hits = index.top_scored(&scope, q, n, path);
        latencies.push(t.elapsed());
        results.push(hits.into_iter().take(10).map(|(c, _)| c).collect());
    }
    let total = all.elapsed();
    latencies.sort();
    Timed {
        latencies,
        total,
        results,
    }
}

fn recall(got: &[Vec<String>], truth: &[Vec<String>]) -> f64 {
    let (mut hit, mut all) = (0usize, 0usize);
    for (g, t) in got.iter().zip(truth) {
        hit += g.iter().filter(|c| t.contains(c)).count();
        all += t.len();
    }
    hit as f64 / all.max(1) as f64
}

fn row(vectors: usize, path: &str, t: &Timed, truth: &[Vec<String>]) -> Row {
    let f = |d: Duration| d.as_secs_f64() * 1000.0;
    Row {
        vectors,
        path: path.into(),
        build_s: None,
        memory_mb: None,
        p50_ms: f(percentile(&t.latencies, 0.50)),
        p95_ms: f(percentile(&t.latencies, 0.95)),
        p99_ms: f(percentile(&t.latencies, 0.99)),
        qps: t.latencies.len() as f64 / t.total.as_secs_f64().max(1e-9),
        recall_at_10: recall(&t.results, truth),
    }
}

/// One size: load, build the graph, time exact and graph queries.
/// Returns the rows and the mean cosine of a query to its 1st / 10th
/// exact neighbour (how spread the data is).
async fn vectors(
    n: usize,
    queries: usize,
    mixture: &mut Mixture,
    real_queries: &[(String, Vec<f32>)],
    config: VectorConfig,
) -> Result<(Vec<Row>, (f64, f64))> {
    let before = rss();
    let (docs, centres) = documents(n, mixture);
    let qs: Vec<Vec<f32>> = (0..queries).map(|_| mixture.query(&centres)).collect();
    drop(centres);
    let index = Arc::new(VectorIndex::with_config(DIMS, config));
    let started = Instant::now();
    // As the API loads an owner: scannable at once, the graph built in the
    // background and swapped in.
    index.load_owner(OWNER, docs);
    let exact_rss = rss().saturating_sub(before);
    index.until_built().await;
    let build = started.elapsed();
    let graph = index.has_graph(OWNER);
    let held = index.memory_of(OWNER);
    let total_rss = rss().saturating_sub(before);
    eprintln!(
        "{n} vectors: loaded, graph {} in {:.1} s; RSS +{:.0} MB (exact alone +{:.0} MB), held {:.0} MB",
        if graph { "built" } else { "not needed" },
        build.as_secs_f64(),
        mb(total_rss),
        mb(exact_rss),
        mb(held as u64)
    );
    let exact = time_queries(&index, &qs, 10, Path::Exact);
    let truth = exact.results.clone();
    let cos = {
        let scope = scope();
        let (mut c1, mut c10) = (0.0, 0.0);
        for q in qs.iter().take(100) {
            let hits = index.top_scored(&scope, q, 10, Path::Exact);
            c1 += hits.first().map_or(0.0, |h| h.1 as f64);
            c10 += hits.last().map_or(0.0, |h| h.1 as f64);
        }
        let k = qs.len().clamp(1, 100) as f64;
        (c1 / k, c10 / k)
    };
    let mut out = vec![Row {
        memory_mb: Some(mb(exact_rss)),
        ..row(n, "exact scan", &exact, &truth)
    }];
    let auto = time_queries(&index, &qs, 10, Path::Auto);
    out.push(Row {
        build_s: graph.then_some(build.as_secs_f64()),
        memory_mb: Some(mb(total_rss)),
        ..row(
            n,
            if graph {
                "HNSW, k=10"
            } else {
                "default (exact), k=10"
            },
            &auto,
            &truth,
        )
    });
    if graph {
        // Asking the graph for more than ef results widens its candidate
        // list to that many: the best 10 of a wider list is what a larger
        // ef would give (after the exact re-ranking).
        let rq: Vec<Vec<f32>> = real_queries.iter().map(|(_, v)| v.clone()).collect();
        let real_truth = time_queries(&index, &rq, 10, Path::Exact).results;
        for wide in WIDER {
            let t = time_queries(&index, &qs, wide, Path::Auto);
            out.push(row(n, &format!("HNSW, best 10 of {wide}"), &t, &truth));
            if !rq.is_empty() {
                let t = time_queries(&index, &rq, wide, Path::Auto);
                out.push(row(
                    n,
                    &format!("HNSW, best 10 of {wide}, real SciFact query embeddings"),
                    &t,
                    &real_truth,
                ));
            }
        }
    }
    eprintln!(
        "{n} vectors: timed {} queries per path ({})",
        qs.len(),
        ms(exact.total)
    );
    Ok((out, cos))
}
