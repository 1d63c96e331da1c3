//! Many owners behind one API replica: by default 1,000,000 chunks over
//! 1,000 owners written straight into a throwaway namespace (binary COPY,
//! SciFact text, synthetic vectors around real embeddings, as [`super::hybrid`]
//! writes them), then searched through `mnemo_search::search` with the
//! API's memory budget (`--search-memory-mib`):
//! - every owner's first query (cold: their state is read from PostgreSQL,
//!   and owners searched least recently are dropped past the budget),
//! - then repeated queries of the owners searched last (warm, held),
//! - the process's peak RSS over both, against the budget.
//!
//! The writing is not measured; its peak is forgotten (`clear_refs`)
//! before the searches start, and the writer holds one owner's vectors at a
//! time. Run this part alone (`--sizes 0 --hybrid-chunks 0`) for an RSS
//! that is only its own. "Cold" is cold in the API's memory: PostgreSQL's
//! and the OS's caches are as the writing left them.

use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use futures::pin_mut;
use mnemo_bus::Namespace;
use mnemo_search::{Fusion, Indexes, Query, Residence, Scope, TermIndex, VectorIndex};
use uuid::Uuid;

use super::{CHUNKS_PER_DOCUMENT, DIMS};

pub struct OwnersBench<'a> {
    pub source: super::Source<'a>,
    pub owners: usize,
    /// Chunks over all owners (each owner an equal share).
    pub chunks: usize,
    /// Bytes of owners' state held at most (the API's budget).
    pub budget: usize,
    /// Owners searched again and again once every owner was searched.
    pub warm_owners: usize,
    /// Queries over the warm owners.
    pub warm_queries: usize,
}

#[derive(serde::Serialize)]
pub struct OwnersReport {
    owners: usize,
    chunks: usize,
    budget_mib: f64,
    write_s: f64,
    latencies: Vec<super::Latency>,
    /// RSS when the searches started (after writing) and its peak during them.
    rss_start_mb: f64,
    rss_peak_mb: f64,
    held_owners: usize,
    held_mb: f64,
    /// One owner's state, the mean over the cold loads.
    owner_mb: f64,
}

impl OwnersReport {
    pub fn print(&self) {
        println!(
            "many owners: {} chunks over {} owners (rows written in {:.0} s); \
             budget {:.0} MiB; one owner's state {:.2} MB, all of them would be {:.0} MB",
            self.chunks,
            self.owners,
            self.write_s,
            self.budget_mib,
            self.owner_mb,
            self.owner_mb * self.owners as f64,
        );
        println!();
        super::print_latencies("query", &self.latencies, super::Tail::Max);
        println!();
        println!(
            "RSS {:.0} MB at the first search, peak {:.0} MB during them (+{:.0} MB); \
             {} owners held at the end ({:.0} MB)",
            self.rss_start_mb,
            self.rss_peak_mb,
            self.rss_peak_mb - self.rss_start_mb,
            self.held_owners,
            self.held_mb,
        );
    }
}

pub async fn run(mut b: OwnersBench<'_>) -> Result<OwnersReport> {
    let ns = super::bench_namespace()?;
    let result = measure(&mut b, &ns).await;
    super::done_with(b.source.backend, &ns, b.source.keep).await?;
    result
}

fn owner_token(o: usize) -> String {
    format!("bench{o}")
}

fn document_id(o: usize, d: usize) -> Uuid {
    Uuid::from_u128(((o as u128) << 32) | d as u128)
}

async fn measure(b: &mut OwnersBench<'_>, ns: &Namespace) -> Result<OwnersReport> {
    anyhow::ensure!(!b.source.texts.is_empty(), "no corpus text");
    anyhow::ensure!(b.owners > 0, "--owners must be at least 1");
    let per_owner = b.chunks / b.owners;
    anyhow::ensure!(per_owner > 0, "fewer chunks than owners");
    let docs_per_owner = per_owner.div_ceil(CHUNKS_PER_DOCUMENT);
    let started = Instant::now();
    write(b, ns, per_owner, docs_per_owner).await?;
    let write_s = started.elapsed().as_secs_f64();
    eprintln!(
        "many owners: {} chunks written in {write_s:.0} s",
        per_owner * b.owners
    );

    let db = mnemo_projector::db::connect(&b.source.backend.database_url, ns).await?;
    let index = Indexes::with_budget(
        VectorIndex::with_config(DIMS, b.source.config),
        TermIndex::default(),
        b.budget,
    );
    let fusion = Fusion::default();
    let queries = b.source.queries_or_words(300);
    let query = |i: usize, owner: &str| {
        let (text, vector) = &queries[i % queries.len()];
        (
            Scope {
                owner_token: owner.to_owned(),
                documents: None,
                topic: None,
            },
            text.as_str(),
            vector.as_deref(),
        )
    };
    forget_peak_rss();
    let rss_start = super::rss();

    // Every owner once, in a shuffled order: each is cold.
    let mut order: Vec<usize> = (0..b.owners).collect();
    shuffle(&mut order);
    let (mut loads, mut cold, mut owner_bytes) = (Vec::new(), Vec::new(), 0usize);
    for (i, &o) in order.iter().enumerate() {
        let owner = owner_token(o);
        let (scope, text, vector) = query(i, &owner);
        let t = Instant::now();
        match index.ensure(&db, &owner).await?.residence {
            Residence::Cold { bytes, .. } => owner_bytes += bytes,
            Residence::Warm => anyhow::bail!("owner {owner} was held before their first search"),
        }
        loads.push(t.elapsed());
        let hits = search(&db, &index, &fusion, scope, text, vector).await?;
        cold.push(t.elapsed());
        // Vectors always find something; words may not.
        anyhow::ensure!(vector.is_none() || !hits.is_empty(), "no hit for {owner}");
    }
    let (held_after_cold, _) = index.held();

    // The owners searched last, again and again: held, so warm.
    let warm: Vec<String> = order
        .iter()
        .rev()
        .take(b.warm_owners.min(held_after_cold))
        .map(|&o| owner_token(o))
        .collect();
    let mut warm_full = Vec::new();
    let mut warm_index = Vec::new();
    for i in 0..b.warm_queries {
        let owner = &warm[i % warm.len()];
        let (scope, text, vector) = query(i + b.owners, owner);
        let t = Instant::now();
        let hits = search(&db, &index, &fusion, scope.clone(), text, vector).await?;
        warm_full.push(t.elapsed());
        anyhow::ensure!(vector.is_none() || !hits.is_empty(), "no hit for {owner}");
        // The in-memory part alone: BM25 and vectors over the held state.
        let lexemes = mnemo_search::lexical::lexemes(&db, text).await?;
        let t = Instant::now();
        std::hint::black_box(index.terms.top(&scope, &lexemes, 50));
        if let Some(v) = vector {
            std::hint::black_box(index.vectors().top(&scope, v, 50));
        }
        warm_index.push(t.elapsed());
    }
    anyhow::ensure!(
        warm.iter().all(|o| index.is_held(o)),
        "a warm owner was dropped (warm searches read nothing new)"
    );
    let rss_peak = peak_rss();
    let (held_owners, held_bytes) = index.held();
    let mut latencies = vec![
        super::latency("cold owner: reading their state (`Indexes::ensure`)", loads),
        super::latency("**cold owner: first query, k = 10 (read + search)**", cold),
        super::latency("**warm owner: `mnemo_search::search`, k = 10**", warm_full),
    ];
    latencies.push(super::latency(
        "warm owner: BM25 + vectors in memory (top 50 each)",
        warm_index,
    ));
    Ok(OwnersReport {
        owners: b.owners,
        chunks: per_owner * b.owners,
        budget_mib: b.budget as f64 / (1 << 20) as f64,
        write_s,
        latencies,
        rss_start_mb: super::mb(rss_start),
        rss_peak_mb: super::mb(rss_peak),
        held_owners,
        held_mb: held_bytes as f64 / 1e6,
        owner_mb: owner_bytes as f64 / b.owners as f64 / 1e6,
    })
}

async fn search(
    db: &tokio_postgres::Client,
    index: &Indexes,
    fusion: &Fusion,
    scope: Scope,
    text: &str,
    vector: Option<&[f32]>,
) -> Result<Vec<mnemo_search::Hit>> {
    let q = Query {
        scope,
        text,
        vector,
        lexical: true,
        k: 10,
    };
    Ok(mnemo_search::search(db, index, fusion, &q).await?)
}

/// The namespace's read models: `owners` × `docs_per_owner` documents, each
/// of [`CHUNKS_PER_DOCUMENT`] chunks, with their texts and vectors.
async fn write(
    b: &mut OwnersBench<'_>,
    ns: &Namespace,
    per_owner: usize,
    docs_per_owner: usize,
) -> Result<()> {
    let mut db = mnemo_projector::db::connect(&b.source.backend.database_url, ns).await?;
    mnemo_projector::migrations::apply(&mut db, ns.sql_schema()).await?;
    // Search reads no GIN index (BM25 is in memory; the websearch path is
    // not timed here), and building one for a million texts is most of the
    // writing.
    db.batch_execute("DROP INDEX IF EXISTS chunks_tsv").await?;
    super::lexemes_on_insert(&db).await?;
    let (owners, docs) = (b.owners as i64, docs_per_owner as i64);
    db.execute(
        "INSERT INTO documents (document_id, owner_token, owner_id, filename, content_type,
                                size_bytes, sha256, batch_id, stage, run, chunks_total,
                                uploaded_at, updated_at, last_sequence, chunks_final, indexed_run)
         SELECT lpad(to_hex((o << 32) | d), 32, '0')::uuid, 'bench' || o, 'bench' || o,
                'scifact-' || d || '.txt', 'text/plain', 1000, repeat('0', 64), 'bench',
                'indexed', 1, 20, now(), now(), 0, true, 1
           FROM generate_series(0, $1::bigint - 1) AS o, generate_series(0, $2::bigint - 1) AS d",
        &[&owners, &docs],
    )
    .await?;
    let vectors_db = mnemo_projector::db::connect(&b.source.backend.database_url, ns).await?;
    let chunks = super::copy_chunks(&db).await?;
    pin_mut!(chunks);
    let vectors = super::copy_vectors(&vectors_db).await?;
    pin_mut!(vectors);
    let now = SystemTime::now();
    for o in 0..b.owners {
        let owner = owner_token(o);
        // Each owner reads a window of the corpus of their own.
        let first_text = o * 997;
        for d in 0..docs_per_owner {
            let document = document_id(o, d);
            let centre = b.source.mixture.document();
            let rows = CHUNKS_PER_DOCUMENT.min(per_owner - d * CHUNKS_PER_DOCUMENT);
            for ordinal in 0..rows {
                let chunk_id = format!("{document}-{ordinal}");
                let text = &b.source.texts
                    [(first_text + d * CHUNKS_PER_DOCUMENT + ordinal) % b.source.texts.len()];
                let ids = (chunk_id.as_str(), &document, owner.as_str());
                super::write_chunk(chunks.as_mut(), ids, ordinal, text, &now).await?;
                let vector = b.source.mixture.chunk(&centre);
                super::write_vector(vectors.as_mut(), ids, &vector).await?;
            }
        }
        if (o + 1) % 100 == 0 {
            eprintln!("many owners: {} of {} owners written", o + 1, b.owners);
        }
    }
    chunks.finish().await.context("writing the chunks")?;
    vectors.finish().await.context("writing the vectors")?;
    db.batch_execute("ANALYZE documents; ANALYZE chunks; ANALYZE chunk_embeddings")
        .await?;
    Ok(())
}

/// A fixed shuffle (the same order every run).
fn shuffle(v: &mut [usize]) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..v.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

/// Resets the kernel's peak RSS of this process (`VmHWM`), so the peak
/// read later is of what came after.
fn forget_peak_rss() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak RSS ({e}); the peak includes the writing");
    }
}

fn peak_rss() -> u64 {
    super::status_bytes("VmHWM:")
}
