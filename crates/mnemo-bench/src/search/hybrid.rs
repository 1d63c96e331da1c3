//! The whole hybrid path at 100,000 chunks: rows written straight into a
//! throwaway namespace's `documents` / `chunks` tables (created by the
//! projector's migrations; binary COPY, not the embedding pipeline, which
//! would take an hour here), SciFact text with synthetic vectors, then
//! `mnemo_search::search` timed for SciFact training queries, with its
//! parts (full text, vectors, details and snippets) timed alone.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use futures::pin_mut;
use mnemo::cli::Backend;
use mnemo_bus::Namespace;
use mnemo_search::{lexical, Fusion, Indexes, Query, TermIndex, VectorConfig, VectorIndex};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::synthetic::Mixture;
use super::{documents, scope, DIMS, OWNER, SEARCH_CANDIDATES};
use crate::timing::percentile;

pub struct HybridBench<'a> {
    pub backend: &'a Backend,
    pub chunks: usize,
    /// SciFact `title. text` lines; chunk i gets line i mod len.
    pub texts: &'a [String],
    pub mixture: &'a mut Mixture,
    /// Query texts with their real embeddings (empty: no model, lexical
    /// queries only from the corpus titles).
    pub queries: &'a [(String, Vec<f32>)],
    pub config: VectorConfig,
    pub explain: bool,
    pub keep: bool,
}

#[derive(serde::Serialize)]
pub struct Part {
    what: String,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

#[derive(serde::Serialize)]
pub struct HybridReport {
    chunks: usize,
    queries: usize,
    copy_s: f64,
    index_load_s: f64,
    graph_build_s: f64,
    parts: Vec<Part>,
}

impl HybridReport {
    pub fn print(&self) {
        println!(
            "hybrid search over {} chunks in PostgreSQL ({} queries; rows written in {:.1} s, \
             index loaded in {:.1} s, graph built in {:.1} s)",
            self.chunks, self.queries, self.copy_s, self.index_load_s, self.graph_build_s
        );
        println!();
        println!("| part | p50 | p95 | p99 |");
        println!("|---|---:|---:|---:|");
        for p in &self.parts {
            println!(
                "| {} | {:.2} ms | {:.2} ms | {:.2} ms |",
                p.what, p.p50_ms, p.p95_ms, p.p99_ms
            );
        }
    }
}

fn part(what: &str, mut d: Vec<Duration>) -> Part {
    d.sort();
    let f = |x: Duration| x.as_secs_f64() * 1000.0;
    Part {
        what: what.into(),
        p50_ms: f(percentile(&d, 0.50)),
        p95_ms: f(percentile(&d, 0.95)),
        p99_ms: f(percentile(&d, 0.99)),
    }
}

pub async fn run(mut b: HybridBench<'_>) -> Result<HybridReport> {
    let ns = Namespace::new(format!(
        "bench_{}",
        &Uuid::new_v4().simple().to_string()[..8]
    ))?;
    let result = measure(&mut b, &ns).await;
    if b.keep {
        eprintln!("kept namespace {ns} (schema {})", ns.sql_schema());
    } else {
        mnemo_projector::db::drop_schema(&b.backend.database_url, &ns).await?;
    }
    result
}

async fn measure(b: &mut HybridBench<'_>, ns: &Namespace) -> Result<HybridReport> {
    anyhow::ensure!(!b.texts.is_empty(), "no corpus text");
    let mut db = mnemo_projector::db::connect(&b.backend.database_url, ns).await?;
    mnemo_projector::migrations::apply(&mut db, ns.sql_schema()).await?;
    let (mut mixture_docs, _) = documents(b.chunks, b.mixture);
    let started = Instant::now();
    let n_docs = mixture_docs.len() as i64;
    db.execute(
        "INSERT INTO documents (document_id, owner_token, owner_id, filename, content_type,
                                size_bytes, sha256, batch_id, stage, run, chunks_total,
                                uploaded_at, updated_at, last_sequence, chunks_final, indexed_run)
         SELECT lpad(to_hex(i), 32, '0')::uuid, $1, $1, 'scifact-' || i || '.txt', 'text/plain',
                1000, repeat('0', 64), 'bench', 'indexed', 1, 20, now(), now(), 0, true, 1
           FROM generate_series(0, $2::bigint - 1) AS i",
        &[&OWNER, &n_docs],
    )
    .await?;
    // Text and vectors go to their own tables (as the projector writes
    // them), each by one binary COPY.
    let chunks = BinaryCopyInWriter::new(
        db.copy_in(
            "COPY chunks (chunk_id, document_id, owner_token, run, ordinal, text, page_start,
                          page_end, tokens, created_at) FROM STDIN BINARY",
        )
        .await?,
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
    );
    pin_mut!(chunks);
    let now = SystemTime::now();
    let mut i = 0usize;
    for (doc, v) in &mixture_docs {
        for (ordinal, chunk) in v.chunk_ids.iter().enumerate() {
            let text = &b.texts[i % b.texts.len()];
            i += 1;
            let tokens = (text.split_whitespace().count() as i32).min(256);
            let row: [&(dyn ToSql + Sync); 10] = [
                chunk,
                doc,
                &OWNER,
                &1i32,
                &(ordinal as i32),
                text,
                &1i32,
                &1i32,
                &tokens,
                &now,
            ];
            chunks.as_mut().write(&row).await?;
        }
    }
    chunks.finish().await?;
    let vectors = BinaryCopyInWriter::new(
        db.copy_in(
            "COPY chunk_embeddings (chunk_id, run, model, document_id, owner_token, dims, vector)
             FROM STDIN BINARY",
        )
        .await?,
        &[
            Type::TEXT,
            Type::INT4,
            Type::TEXT,
            Type::UUID,
            Type::TEXT,
            Type::INT4,
            Type::BYTEA,
        ],
    );
    pin_mut!(vectors);
    for (doc, v) in &mixture_docs {
        for (ordinal, chunk) in v.chunk_ids.iter().enumerate() {
            let bytes = mnemo_projector::chunks::vector_bytes(
                &v.data[ordinal * DIMS..(ordinal + 1) * DIMS],
            );
            let row: [&(dyn ToSql + Sync); 7] = [
                chunk,
                &1i32,
                &"synthetic",
                doc,
                &OWNER,
                &(DIMS as i32),
                &bytes,
            ];
            vectors.as_mut().write(&row).await?;
        }
    }
    vectors.finish().await?;
    db.batch_execute("ANALYZE documents; ANALYZE chunks; ANALYZE chunk_embeddings")
        .await?;
    let copy_s = started.elapsed().as_secs_f64();
    mixture_docs.clear();
    eprintln!("hybrid: {} chunks written in {copy_s:.1} s", b.chunks);

    let index = Indexes::new(
        VectorIndex::with_config(DIMS, b.config),
        TermIndex::default(),
    );
    let started = Instant::now();
    let loaded = index.vectors().load_all(&db).await?;
    let index_load_s = started.elapsed().as_secs_f64();
    index.vectors().until_built().await;
    let graph_build_s = started.elapsed().as_secs_f64() - index_load_s;
    let started = Instant::now();
    let terms = index.terms.load_all(&db).await?;
    let terms_load_s = started.elapsed().as_secs_f64();
    eprintln!("hybrid: BM25 lexemes of {terms} chunks loaded in {terms_load_s:.1} s");
    anyhow::ensure!(
        loaded == b.chunks,
        "loaded {loaded} vectors, wrote {}",
        b.chunks
    );

    let queries: Vec<(String, Option<Vec<f32>>)> = if b.queries.is_empty() {
        b.texts
            .iter()
            .take(200)
            .map(|t| (first_words(t, 8), None))
            .collect()
    } else {
        b.queries
            .iter()
            .map(|(t, v)| (t.clone(), Some(v.clone())))
            .collect()
    };
    if b.explain {
        explain(&db, &queries[0].0).await?;
    }
    let fusion = Fusion::default();
    let scope = scope();
    let (mut full, mut lex, mut vec_, mut det) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bm25 = Vec::new();
    for (text, vector) in &queries {
        let q = Query {
            scope: scope.clone(),
            text,
            vector: vector.as_deref(),
            lexical: true,
            k: 10,
        };
        let t = Instant::now();
        let hits = mnemo_search::search(&db, &index, &fusion, &q).await?;
        full.push(t.elapsed());
        anyhow::ensure!(hits.len() <= 10, "more hits than asked for");
        let t = Instant::now();
        let ids = lexical::top(&db, &scope, text, SEARCH_CANDIDATES).await?;
        lex.push(t.elapsed());
        let t = Instant::now();
        let lexemes = lexical::lexemes(&db, text).await?;
        std::hint::black_box(index.terms.top(&scope, &lexemes, SEARCH_CANDIDATES));
        bm25.push(t.elapsed());
        if let Some(v) = vector {
            let t = Instant::now();
            std::hint::black_box(index.vectors().top(&scope, v, SEARCH_CANDIDATES));
            vec_.push(t.elapsed());
        }
        let some: Vec<String> = hits
            .iter()
            .map(|h| h.details.chunk_id.clone())
            .chain(ids)
            .take(10)
            .collect();
        let t = Instant::now();
        let words = mnemo_search::snippet::QueryWords::new(&lexemes);
        std::hint::black_box(lexical::details(&db, OWNER, &some, &words).await?);
        det.push(t.elapsed());
    }
    let mut parts = vec![
        part("BM25: query lexemes + top 50 ids", bm25),
        part("PostgreSQL full text (websearch syntax): top 50 ids", lex),
    ];
    if !vec_.is_empty() {
        parts.push(part("vectors: top 50 (HNSW)", vec_));
    }
    parts.push(part("details + snippets for 10 hits", det));
    parts.push(part("**mnemo_search::search, k = 10**", full));
    Ok(HybridReport {
        chunks: b.chunks,
        queries: queries.len(),
        copy_s,
        index_load_s,
        graph_build_s,
        parts,
    })
}

fn first_words(t: &str, n: usize) -> String {
    t.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

/// The lexical query's plan, to stderr.
async fn explain(db: &tokio_postgres::Client, query: &str) -> Result<()> {
    let rows = db
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS) {}", lexical::TOP_SQL),
            &[
                &OWNER,
                &None::<Vec<Uuid>>,
                &None::<String>,
                &query,
                &(SEARCH_CANDIDATES as i64),
            ],
        )
        .await
        .context("EXPLAIN of the full-text query")?;
    eprintln!("EXPLAIN ANALYZE for {query:?}:");
    for r in rows {
        eprintln!("  {}", r.get::<_, String>(0));
    }
    Ok(())
}
