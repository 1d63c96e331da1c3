//! One owner's vectors as an immutable snapshot: a *base* frozen at the
//! last rebuild (rows grouped by document, optionally with an ANN graph),
//! tombstones for base documents replaced or removed since, and a *delta*
//! of documents (re)indexed since, searched exactly.
//!
//! Every change makes a new snapshot that shares the base (copy-on-write of
//! the small parts), so a search works on one consistent state without
//! holding a lock, and a rebuild can run beside searches and updates: it
//! freezes a new base from one snapshot and, when it swaps in, replays the
//! documents changed meanwhile ([`Owner::catch_up`]).
//!
//! A row is never in two places: a document is either live in the base or
//! in the delta (or gone), which is what rules out stale and duplicate hits.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use uuid::Uuid;

use super::ann::{Ann, AnnConfig};
use super::exact::{best, dot, Scored};
use crate::Scope;

/// One document's current rows.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentVectors {
    pub topic: Option<String>,
    pub chunk_ids: Vec<String>,
    /// `chunk_ids.len() × dims` values, row-major, L2-normalised rows.
    pub data: Vec<f32>,
}

#[derive(Debug)]
struct BaseDoc {
    id: Uuid,
    topic: Option<String>,
    rows: Range<usize>,
}

/// Rows frozen at a rebuild, documents sorted by id, each document's rows
/// contiguous (so a document filter scans ranges, not the whole owner).
#[derive(Debug, Default)]
struct Base {
    docs: Vec<BaseDoc>,
    /// Per row: its document's index in `docs`.
    doc_of: Vec<u32>,
    chunk_ids: Vec<String>,
    data: Vec<f32>,
    ann: Option<Ann>,
}

impl Base {
    fn freeze(dims: usize, docs: BTreeMap<Uuid, Arc<DocumentVectors>>) -> Self {
        let rows: usize = docs.values().map(|d| d.chunk_ids.len()).sum();
        let mut base = Base {
            docs: Vec::with_capacity(docs.len()),
            doc_of: Vec::with_capacity(rows),
            chunk_ids: Vec::with_capacity(rows),
            data: Vec::with_capacity(rows * dims),
            ann: None,
        };
        for (id, d) in docs {
            let start = base.chunk_ids.len();
            let doc = base.docs.len() as u32;
            let d = Arc::unwrap_or_clone(d);
            base.doc_of
                .extend(std::iter::repeat_n(doc, d.chunk_ids.len()));
            base.chunk_ids.extend(d.chunk_ids);
            base.data.extend(d.data);
            base.docs.push(BaseDoc {
                id,
                topic: d.topic,
                rows: start..base.chunk_ids.len(),
            });
        }
        base
    }

    fn doc(&self, id: Uuid) -> Option<usize> {
        self.docs.binary_search_by(|d| d.id.cmp(&id)).ok()
    }
}

/// How a search is answered; also what the tests and the benchmark force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Exact when the allowed rows are few or there is no graph, else ANN.
    Auto,
    Exact,
    /// The graph whatever the size (nothing without one); no fallback.
    Graph,
}

/// The knobs a search needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchPlan {
    pub exact_below: usize,
    pub path: Path,
}

/// A chunk id held (a `String` and its text, `<document>-<ordinal>-<hash>`), roughly.
const ID_BYTES: usize = std::mem::size_of::<String>() + 64;

/// Below this share of the base allowed by a filter, the graph would walk
/// mostly through rejected nodes: scan the allowed rows exactly instead.
const MIN_SELECTIVITY: f64 = 0.05;

#[derive(Debug, Clone)]
pub(crate) struct Owner {
    dims: usize,
    base: Arc<Base>,
    /// Per base document: replaced or removed since the base was frozen.
    dead: Arc<Vec<bool>>,
    dead_rows: usize,
    delta: BTreeMap<Uuid, Arc<DocumentVectors>>,
    delta_rows: usize,
}

impl Owner {
    /// A snapshot over `docs`, scanned exactly.
    pub fn exact(dims: usize, docs: BTreeMap<Uuid, Arc<DocumentVectors>>) -> Self {
        Self::over(dims, Base::freeze(dims, docs))
    }

    /// A snapshot over `docs`, with a graph when `ann` is given.
    pub fn freeze(
        dims: usize,
        docs: BTreeMap<Uuid, Arc<DocumentVectors>>,
        ann: Option<&AnnConfig>,
    ) -> Result<Self, super::ann::AnnError> {
        let mut base = Base::freeze(dims, docs);
        if let Some(config) = ann.filter(|_| !base.chunk_ids.is_empty()) {
            base.ann = Some(Ann::build(dims, &base.data, config)?);
        }
        Ok(Self::over(dims, base))
    }

    fn over(dims: usize, base: Base) -> Self {
        Self {
            dims,
            dead: Arc::new(vec![false; base.docs.len()]),
            base: Arc::new(base),
            dead_rows: 0,
            delta: BTreeMap::new(),
            delta_rows: 0,
        }
    }

    /// Live rows.
    pub fn len(&self) -> usize {
        self.base.chunk_ids.len() - self.dead_rows + self.delta_rows
    }

    pub fn has_graph(&self) -> bool {
        self.base.ann.is_some()
    }

    /// Rows a rebuild would drop (tombstoned) or move into the base (delta).
    pub fn churn(&self) -> usize {
        self.dead_rows + self.delta_rows
    }

    pub fn base_rows(&self) -> usize {
        self.base.chunk_ids.len()
    }

    /// Bytes held for this owner (vectors, graph), roughly.
    pub fn memory(&self) -> usize {
        let f = std::mem::size_of::<f32>();
        self.base.data.len() * f
            + self.base.chunk_ids.len() * (ID_BYTES + std::mem::size_of::<u32>())
            + self.base.ann.as_ref().map_or(0, |a| a.memory())
            + self
                .delta
                .values()
                .map(|d| d.data.len() * f + d.chunk_ids.len() * ID_BYTES)
                .sum::<usize>()
    }

    pub fn contains(&self, document: Uuid) -> bool {
        self.delta.contains_key(&document) || self.base.doc(document).is_some_and(|i| !self.dead[i])
    }

    /// This snapshot with `document`'s rows replaced by `rows` (None: the
    /// document is gone).
    pub fn replace(&self, document: Uuid, rows: Option<Arc<DocumentVectors>>) -> Self {
        let mut next = self.clone();
        if let Some(i) = next.base.doc(document).filter(|&i| !next.dead[i]) {
            Arc::make_mut(&mut next.dead)[i] = true;
            next.dead_rows += next.base.docs[i].rows.len();
        }
        if let Some(old) = next.delta.remove(&document) {
            next.delta_rows -= old.chunk_ids.len();
        }
        if let Some(rows) = rows.filter(|r| !r.chunk_ids.is_empty()) {
            next.delta_rows += rows.chunk_ids.len();
            next.delta.insert(document, rows);
        }
        next
    }

    /// Every live document, for a rebuild.
    pub fn live_documents(&self) -> BTreeMap<Uuid, Arc<DocumentVectors>> {
        let b = &self.base;
        let mut out: BTreeMap<Uuid, Arc<DocumentVectors>> = b
            .docs
            .iter()
            .zip(self.dead.iter())
            .filter(|(_, &dead)| !dead)
            .map(|(d, _)| {
                let rows = d.rows.clone();
                let data = b.data[rows.start * self.dims..rows.end * self.dims].to_vec();
                let v = DocumentVectors {
                    topic: d.topic.clone(),
                    chunk_ids: b.chunk_ids[rows].to_vec(),
                    data,
                };
                (d.id, Arc::new(v))
            })
            .collect();
        out.extend(self.delta.iter().map(|(id, d)| (*id, d.clone())));
        out
    }

    /// Whether `self` and `other` share their base (one came from the other
    /// by updates only).
    pub fn same_base(&self, other: &Owner) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// `rebuilt` (frozen from `then`) brought up to `now`: every document
    /// changed between `then` and `now` gets its state in `now`. Needs
    /// `now` to descend from `then` by updates ([`Self::same_base`]).
    pub fn catch_up(rebuilt: Owner, then: &Owner, now: &Owner) -> Owner {
        let mut changed: Vec<Uuid> = now
            .delta
            .iter()
            .filter(|(id, d)| then.delta.get(*id).is_none_or(|t| !Arc::ptr_eq(t, d)))
            .map(|(id, _)| *id)
            .collect();
        changed.extend(then.delta.keys().filter(|id| !now.delta.contains_key(*id)));
        changed.extend(
            now.base
                .docs
                .iter()
                .enumerate()
                .filter(|(i, _)| now.dead[*i] && !then.dead[*i])
                .map(|(_, d)| d.id),
        );
        changed.sort();
        changed.dedup();
        changed.into_iter().fold(rebuilt, |o, id| {
            let rows = now.delta.get(&id).cloned();
            o.replace(id, rows)
        })
    }

    /// The `n` rows of `scope` most similar to `query`, best first (ties by
    /// chunk id), with their scores.
    pub fn top(
        &self,
        scope: &Scope,
        query: &[f32],
        n: usize,
        plan: SearchPlan,
    ) -> Vec<(String, f32)> {
        let b = &self.base;
        let allowed: Vec<bool> = self.allowed(scope);
        let allowed_rows: usize = b
            .docs
            .iter()
            .zip(&allowed)
            .filter(|(_, &a)| a)
            .map(|(d, _)| d.rows.len())
            .sum();
        let mut scored: Vec<Scored<&str>> = Vec::new();
        let use_graph = match plan.path {
            Path::Auto => {
                allowed_rows >= plan.exact_below
                    && (allowed_rows as f64) >= MIN_SELECTIVITY * b.chunk_ids.len() as f64
            }
            Path::Exact => false,
            Path::Graph => true,
        };
        let from_graph = match (&b.ann, use_graph) {
            (Some(ann), true) => self.graph_candidates(ann, &allowed, allowed_rows, query, n),
            _ => None,
        };
        if plan.path == Path::Graph && from_graph.is_none() {
            return Vec::new();
        }
        match from_graph {
            Some(rows) => scored.extend(rows.into_iter().map(|r| self.score_base(r, query))),
            None => {
                scored.reserve(allowed_rows);
                for (d, _) in b.docs.iter().zip(&allowed).filter(|(_, &a)| a) {
                    scored.extend(d.rows.clone().map(|r| self.score_base(r, query)));
                }
            }
        }
        for (id, d) in &self.delta {
            if !scope.admits(*id, d.topic.as_deref()) {
                continue;
            }
            for (i, chunk) in d.chunk_ids.iter().enumerate() {
                let row = &d.data[i * self.dims..(i + 1) * self.dims];
                scored.push(Scored {
                    score: dot(row, query),
                    row: chunk.as_str(),
                });
            }
        }
        best(scored, n, |a, b| a.cmp(b))
            .into_iter()
            .map(|s| (s.row.to_string(), s.score))
            .collect()
    }

    /// Per base document: live and admitted by `scope`.
    fn allowed(&self, scope: &Scope) -> Vec<bool> {
        let b = &self.base;
        match &scope.documents {
            // A short list of documents: look each up instead of testing
            // every document against the list.
            Some(ids) => {
                let mut allowed = vec![false; b.docs.len()];
                for id in ids {
                    if let Some(i) = b.doc(*id).filter(|&i| !self.dead[i]) {
                        allowed[i] = scope.admits(*id, b.docs[i].topic.as_deref());
                    }
                }
                allowed
            }
            None => b
                .docs
                .iter()
                .zip(self.dead.iter())
                .map(|(d, &dead)| !dead && scope.admits(d.id, d.topic.as_deref()))
                .collect(),
        }
    }

    /// Rows the graph finds, or None when it cannot stand in for an exact
    /// scan (an error, or fewer survivors than the filter allows).
    fn graph_candidates(
        &self,
        ann: &Ann,
        allowed: &[bool],
        allowed_rows: usize,
        query: &[f32],
        n: usize,
    ) -> Option<Vec<usize>> {
        let b = &self.base;
        // Over-fetch in proportion to how much the filter rejects: asking
        // for more results widens the graph's candidate list, which keeps
        // recall up when most neighbours are filtered out.
        let selectivity = allowed_rows as f64 / b.chunk_ids.len().max(1) as f64;
        let count = ((n as f64 / selectivity).ceil() as usize).clamp(n, n * 20);
        let keys = match ann.search(query, count, |k| {
            b.doc_of
                .get(k as usize)
                .is_some_and(|&d| allowed[d as usize])
        }) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "ANN search failed; scanning exactly");
                return None;
            }
        };
        if keys.len() < n.min(allowed_rows) {
            return None;
        }
        Some(keys.into_iter().map(|k| k as usize).collect())
    }

    fn score_base<'a>(&'a self, row: usize, query: &[f32]) -> Scored<&'a str> {
        let b = &self.base;
        Scored {
            score: dot(&b.data[row * self.dims..(row + 1) * self.dims], query),
            row: b.chunk_ids[row].as_str(),
        }
    }
}
