//! The whole hybrid path at 100,000 chunks: rows written straight into a
//! throwaway namespace's `documents` / `chunks` tables (created by the
//! projector's migrations; binary COPY, not the embedding pipeline, which
//! would take an hour here), SciFact text with synthetic vectors, then
//! `mnemo_search::search` timed for SciFact training queries, with its
//! parts (full text, vectors, details and snippets) timed alone.

use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use futures::pin_mut;
use mnemo_bus::Namespace;
use mnemo_search::{lexical, Fusion, Indexes, Query, TermIndex, VectorIndex};
use uuid::Uuid;

use super::{documents, scope, DIMS, OWNER, SEARCH_CANDIDATES};

pub struct HybridBench<'a> {
    /// Chunk i gets text line i mod len.
    pub source: super::Source<'a>,
    pub chunks: usize,
    pub explain: bool,
}

#[derive(serde::Serialize)]
pub struct HybridReport {
    chunks: usize,
    queries: usize,
    copy_s: f64,
    index_load_s: f64,
    graph_build_s: f64,
    parts: Vec<super::Latency>,
}

impl HybridReport {
    pub fn print(&self) {
        println!(
            "hybrid search over {} chunks in PostgreSQL ({} queries; rows written in {:.1} s, \
             index loaded in {:.1} s, graph built in {:.1} s)",
            self.chunks, self.queries, self.copy_s, self.index_load_s, self.graph_build_s
        );
        println!();
        super::print_latencies("part", &self.parts, super::Tail::P99);
    }
}

pub async fn run(mut b: HybridBench<'_>) -> Result<HybridReport> {
    let ns = super::bench_namespace()?;
    let result = measure(&mut b, &ns).await;
    super::done_with(b.source.backend, &ns, b.source.keep).await?;
    result
}

async fn measure(b: &mut HybridBench<'_>, ns: &Namespace) -> Result<HybridReport> {
    anyhow::ensure!(!b.source.texts.is_empty(), "no corpus text");
    let mut db = mnemo_projector::db::connect(&b.source.backend.database_url, ns).await?;
    mnemo_projector::migrations::apply(&mut db, ns.sql_schema()).await?;
    super::lexemes_on_insert(&db).await?;
    let (mut mixture_docs, _) = documents(b.chunks, b.source.mixture);
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
    let chunks = super::copy_chunks(&db).await?;
    pin_mut!(chunks);
    let now = SystemTime::now();
    let mut i = 0usize;
    for (doc, v) in &mixture_docs {
        for (ordinal, chunk) in v.chunk_ids.iter().enumerate() {
            let text = &b.source.texts[i % b.source.texts.len()];
            i += 1;
            super::write_chunk(chunks.as_mut(), (chunk, doc, OWNER), ordinal, text, &now).await?;
        }
    }
    chunks.finish().await?;
    let vectors = super::copy_vectors(&db).await?;
    pin_mut!(vectors);
    for (doc, v) in &mixture_docs {
        for (ordinal, chunk) in v.chunk_ids.iter().enumerate() {
            let vector = &v.data[ordinal * DIMS..(ordinal + 1) * DIMS];
            super::write_vector(vectors.as_mut(), (chunk, doc, OWNER), vector).await?;
        }
    }
    vectors.finish().await?;
    db.batch_execute("ANALYZE documents; ANALYZE chunks; ANALYZE chunk_embeddings")
        .await?;
    let copy_s = started.elapsed().as_secs_f64();
    mixture_docs.clear();
    eprintln!("hybrid: {} chunks written in {copy_s:.1} s", b.chunks);

    // One owner, held whatever its size: its vectors and lexemes are read
    // as its first search reads them.
    let index = Indexes::with_budget(
        VectorIndex::with_config(DIMS, b.source.config),
        TermIndex::default(),
        usize::MAX,
    );
    let started = Instant::now();
    index.ensure(&db, OWNER).await?;
    let index_load_s = started.elapsed().as_secs_f64();
    let loaded = index.vectors().len();
    index.vectors().until_built().await;
    let graph_build_s = started.elapsed().as_secs_f64() - index_load_s;
    eprintln!(
        "hybrid: vectors and BM25 lexemes of {} chunks loaded in {index_load_s:.1} s",
        index.terms.len()
    );
    anyhow::ensure!(
        loaded == b.chunks,
        "loaded {loaded} vectors, wrote {}",
        b.chunks
    );

    let queries = b.source.queries_or_words(200);
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
        super::latency("BM25: query lexemes + top 50 ids", bm25),
        super::latency("PostgreSQL full text (websearch syntax): top 50 ids", lex),
    ];
    if !vec_.is_empty() {
        parts.push(super::latency("vectors: top 50 (HNSW)", vec_));
    }
    parts.push(super::latency("details + snippets for 10 hits", det));
    parts.push(super::latency("**mnemo_search::search, k = 10**", full));
    Ok(HybridReport {
        chunks: b.chunks,
        queries: queries.len(),
        copy_s,
        index_load_s,
        graph_build_s,
        parts,
    })
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
