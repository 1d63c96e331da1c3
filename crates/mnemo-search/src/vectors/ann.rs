//! The approximate side: an HNSW graph (usearch, decision 012) over the
//! rows of one owner's base. Built once from a finished set of rows, never
//! changed afterwards: rows replaced or removed later are masked out by the
//! caller's filter (tombstones) until the next rebuild, so a search can
//! never return a stale row.
//!
//! The graph keeps its own copy of the vectors, f32 by default: usearch is
//! built without its optional SIMD library (NumKong, minutes of extra C
//! compilation on two cores), and without it f16 distances are converted
//! in software and measured 4× slower than f32 here (decision 012). The
//! caller re-ranks the candidates with its own exact f32 vectors.

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// How vectors are stored inside the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    F32,
    F16,
    I8,
}

/// HNSW parameters. The defaults are the measured choice of decision 012.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnConfig {
    /// Links per node (HNSW's M).
    pub connectivity: usize,
    /// Candidate list while inserting (efConstruction).
    pub expansion_add: usize,
    /// Candidate list while searching (ef); a search asking for more
    /// results than this widens it to the count asked.
    pub expansion_search: usize,
    pub quantization: Quantization,
    /// Threads a build uses.
    pub build_threads: usize,
}

/// M 32, efConstruction 256, ef 400: the setting where recall@10 of real
/// query embeddings reaches 0.95 at 1,000,000 vectors (0.968; M 16 with
/// ef 200 gave 0.843, ef 400 0.901), at p95 4.6 ms there and 3.8 ms at
/// 100,000, for builds 1.8× as long (docs/benchmarks.md, *HNSW recall at
/// 1,000,000 vectors*).
impl Default for AnnConfig {
    fn default() -> Self {
        Self {
            connectivity: 32,
            expansion_add: 256,
            expansion_search: 400,
            quantization: Quantization::F32,
            build_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Searches that can run at once on one graph (usearch keeps a scratch
/// context per concurrent caller; past this a search fails and the caller
/// falls back to the exact scan).
const SEARCH_CONTEXTS: usize = 32;

/// Why the graph could not be built or searched (usearch's C++ exception text).
#[derive(Debug, thiserror::Error)]
#[error("ANN index: {0}")]
pub struct AnnError(String);

fn failed(e: impl std::fmt::Display) -> AnnError {
    AnnError(e.to_string())
}

pub(crate) struct Ann {
    index: Index,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("size", &self.index.size())
            .finish()
    }
}

impl Ann {
    /// A graph over `data` (row-major, `dims` per row); row i gets key i.
    pub fn build(dims: usize, data: &[f32], config: &AnnConfig) -> Result<Self, AnnError> {
        let index = Index::new(&IndexOptions {
            dimensions: dims,
            metric: MetricKind::IP,
            quantization: match config.quantization {
                Quantization::F32 => ScalarKind::F32,
                Quantization::F16 => ScalarKind::F16,
                Quantization::I8 => ScalarKind::I8,
            },
            connectivity: config.connectivity,
            expansion_add: config.expansion_add,
            expansion_search: config.expansion_search,
            multi: false,
        })
        .map_err(failed)?;
        let rows = data.len() / dims;
        let threads = config.build_threads.clamp(1, SEARCH_CONTEXTS);
        index
            .reserve_capacity_and_threads(rows, SEARCH_CONTEXTS)
            .map_err(failed)?;
        // Rows are dealt round-robin, so each thread's share is spread over
        // the whole set and the graph grows evenly.
        let failures: Vec<AnnError> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let index = &index;
                    s.spawn(move || -> Result<(), AnnError> {
                        for row in (t..rows).step_by(threads) {
                            index
                                .add(row as u64, &data[row * dims..(row + 1) * dims])
                                .map_err(failed)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .filter_map(|w| match w.join() {
                    Ok(r) => r.err(),
                    Err(_) => Some(AnnError("a build thread panicked".into())),
                })
                .collect()
        });
        match failures.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(Self { index }),
        }
    }

    /// Up to `count` keys (rows) near `query` that `allowed` admits, nearest
    /// first by the graph's (quantised) similarity.
    pub fn search(
        &self,
        query: &[f32],
        count: usize,
        allowed: impl Fn(u64) -> bool,
    ) -> Result<Vec<u64>, AnnError> {
        self.index
            .filtered_search(query, count, allowed)
            .map(|m| m.keys)
            .map_err(failed)
    }

    /// Bytes the graph and its vector copies take.
    pub fn memory(&self) -> usize {
        self.index.memory_usage()
    }
}
