//! The vector side: every indexed chunk's embedding in memory, per owner.
//!
//! Loaded from the `chunks` and `chunk_embeddings` read models (one
//! model's vectors) at start; kept fresh by
//! [`crate::follow`], which reloads a document when its `DocumentIndexed`
//! event arrives (the projector appends it only after storing every chunk
//! and vector of the run, so PostgreSQL has them by then). Partitioned by
//! owner, so a search touches only the caller's vectors.
//!
//! An owner below [`VectorConfig::exact_below`] rows is scanned exactly
//! (cosine = dot product: vectors are L2-normalised). Above it, a rebuild
//! off the async runtime freezes the owner's rows with an HNSW graph
//! ([`ann`], decision 012) and swaps it in; searches meanwhile go on
//! exactly. Updates after a rebuild tombstone the document's old rows and
//! put its new ones in an exact delta ([`owner`]); when the churn passes
//! [`VectorConfig::rebuild_fraction`] of the base, the owner is rebuilt.
//!
//! # Layout
//! - [`owner`]: one owner's snapshot (base, tombstones, delta), search.
//! - [`ann`]: the HNSW graph (usearch).
//! - `exact`: dot product and best-n selection.

pub mod ann;
mod exact;
pub mod owner;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::{pin_mut, TryStreamExt};
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub use ann::{AnnConfig, Quantization};
pub use owner::{DocumentVectors, Path};

use crate::{Scope, SearchError};
use owner::{Owner, SearchPlan};

/// When an owner gets a graph, and when it is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorConfig {
    /// Owners (and filtered searches) with fewer rows than this are scanned
    /// exactly; at or above it, the owner is given an HNSW graph.
    pub exact_below: usize,
    /// Rebuild an owner when rows replaced, removed or added since its
    /// last rebuild exceed this share of the rebuilt rows…
    pub rebuild_fraction: f64,
    /// …and at least this many (small owners are cheap to scan anyway).
    pub rebuild_min_rows: usize,
    pub ann: AnnConfig,
}

/// The measured crossover (docs/benchmarks.md, `mnemo bench search`): below
/// ~20,000 rows an exact scan answers in about a millisecond on this box,
/// no slower than a graph search, and costs no build time or graph memory.
pub const DEFAULT_EXACT_BELOW: usize = 20_000;

impl Default for VectorConfig {
    fn default() -> Self {
        Self {
            exact_below: DEFAULT_EXACT_BELOW,
            rebuild_fraction: 0.1,
            rebuild_min_rows: 2_000,
            ann: AnnConfig::default(),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebuilt {
    pub rows: usize,
    pub graph: bool,
    pub took: Duration,
}

/// How a rebuild ended.
enum Rebuild {
    Done(Rebuilt),
    /// The owner was loaded again meanwhile: the result was thrown away.
    Stale,
    /// Nothing to rebuild (owner gone), or the build failed.
    Nothing,
}

/// One owner's vectors, built off the async runtime by
/// [`VectorIndex::prepare`], put in place by [`VectorIndex::install`].
#[derive(Debug)]
pub struct PreparedVectors(Arc<Owner>);

/// Every owner's vectors.
#[derive(Debug)]
pub struct VectorIndex {
    inner: Arc<Inner>,
    /// The model whose vectors are served (`None`: any of `dims` dimensions).
    model: Option<String>,
}

#[derive(Debug)]
struct Inner {
    dims: usize,
    config: VectorConfig,
    owners: RwLock<HashMap<String, Arc<Owner>>>,
    /// Owners with a rebuild in flight (one at a time per owner).
    building: Mutex<HashSet<String>>,
    /// Woken whenever a rebuild ends.
    built: tokio::sync::Notify,
}

/// Vectors of each document's indexed run, for one model ($1; NULL: any).
const LOAD: &str = "SELECT c.chunk_id, c.document_id, c.owner_token, d.topic, e.vector
                      FROM chunks c
                      JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
                      JOIN chunk_embeddings e ON e.chunk_id = c.chunk_id AND e.run = c.run
                     WHERE ($1::text IS NULL OR e.model = $1)";

impl VectorIndex {
    pub fn new(dims: usize) -> Self {
        Self::with_config(dims, VectorConfig::default())
    }

    pub fn with_config(dims: usize, config: VectorConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                dims,
                config,
                owners: RwLock::new(HashMap::new()),
                building: Mutex::new(HashSet::new()),
                built: tokio::sync::Notify::new(),
            }),
            model: None,
        }
    }

    /// Serves only `model`'s vectors (the model queries are embedded with).
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The model whose vectors are served, if one was chosen.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    pub fn dims(&self) -> usize {
        self.inner.dims
    }

    pub fn config(&self) -> &VectorConfig {
        &self.inner.config
    }

    /// Vectors held, over all owners.
    pub fn len(&self) -> usize {
        self.inner
            .owners
            .read()
            .map(|o| o.values().map(|v| v.len()).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held for `owner` (vectors and graph), roughly.
    pub fn memory_of(&self, owner: &str) -> usize {
        self.inner.snapshot(owner).map_or(0, |o| o.memory())
    }

    /// Whether `owner`'s searches can use a graph now.
    pub fn has_graph(&self, owner: &str) -> bool {
        self.inner.snapshot(owner).is_some_and(|o| o.has_graph())
    }

    /// Loads every indexed chunk's vector, replacing what was held. Owners
    /// come in scannable at once; their graphs are built afterwards in the
    /// background (when called on a tokio runtime).
    pub async fn load_all(&self, client: &impl GenericClient) -> Result<usize, SearchError> {
        // Streamed: a million rows of 384 floats need not sit in memory
        // twice (as rows and as vectors).
        let rows = client.query_raw(LOAD, [&self.model]).await?;
        self.load_rows(rows).await
    }

    /// Loads the vectors of `owners` only, replacing what was held (a
    /// model switch loads the owners held, [`crate::resident`]).
    pub async fn load_owners(
        &self,
        client: &impl GenericClient,
        owners: &[String],
    ) -> Result<usize, SearchError> {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.model, &owners];
        let rows = client
            .query_raw(&format!("{LOAD} AND c.owner_token = ANY($2)"), params)
            .await?;
        self.load_rows(rows).await
    }

    async fn load_rows(&self, rows: tokio_postgres::RowStream) -> Result<usize, SearchError> {
        pin_mut!(rows);
        let mut by_owner: HashMap<String, BTreeMap<Uuid, DocumentVectors>> = HashMap::new();
        let mut n = 0;
        while let Some(r) = rows.try_next().await? {
            let owner: String = r.get(2);
            let docs = by_owner.entry(owner).or_default();
            if self.push(docs, &r) {
                n += 1;
            }
        }
        let inner = self.inner.clone();
        let owners: HashMap<String, Arc<Owner>> = tokio::task::spawn_blocking(move || {
            by_owner
                .into_iter()
                .map(|(owner, docs)| (owner, Arc::new(inner.exact(docs))))
                .collect()
        })
        .await?;
        let names: Vec<String> = owners.keys().cloned().collect();
        if let Ok(mut held) = self.inner.owners.write() {
            *held = owners;
        }
        for owner in names {
            self.maintain(&owner);
        }
        Ok(n)
    }

    /// Reads `owner`'s vectors (each document's indexed run) without
    /// changing what is held; [`Self::load_owner`] puts them in place.
    pub async fn fetch_owner(
        &self,
        client: &impl GenericClient,
        owner: &str,
    ) -> Result<BTreeMap<Uuid, DocumentVectors>, SearchError> {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.model, &owner];
        let rows = client
            .query_raw(&format!("{LOAD} AND c.owner_token = $2"), params)
            .await?;
        pin_mut!(rows);
        let mut docs = BTreeMap::new();
        while let Some(r) = rows.try_next().await? {
            self.push(&mut docs, &r);
        }
        Ok(docs)
    }

    /// Sets all of `owner`'s documents at once (scannable at once; a graph
    /// follows in the background when due, or at [`Self::rebuild`]). An
    /// owner without documents is not held.
    pub fn load_owner(&self, owner: &str, docs: BTreeMap<Uuid, DocumentVectors>) {
        let prepared = self.prepare(docs);
        self.install(owner, prepared);
    }

    /// Builds an owner's snapshot from their documents (copies every
    /// vector: run it off the async threads for a big owner).
    pub fn prepare(&self, docs: BTreeMap<Uuid, DocumentVectors>) -> PreparedVectors {
        PreparedVectors(Arc::new(self.inner.exact(docs)))
    }

    /// Sets `owner`'s snapshot (an empty one: `owner` is not held); a graph
    /// follows in the background when due.
    pub fn install(&self, owner: &str, prepared: PreparedVectors) {
        let o = prepared.0;
        if let Ok(mut held) = self.inner.owners.write() {
            if o.len() == 0 {
                held.remove(owner);
            } else {
                held.insert(owner.to_string(), o);
            }
        }
        self.maintain(owner);
    }

    /// Replaces one document's vectors with those of its current indexed
    /// run (none: the document disappears from search).
    pub async fn refresh_document(
        &self,
        client: &impl GenericClient,
        document_id: Uuid,
    ) -> Result<(), SearchError> {
        let rows = client
            .query(
                &format!("{LOAD} AND c.document_id = $2"),
                &[&self.model, &document_id],
            )
            .await?;
        let mut docs = BTreeMap::new();
        let mut owner = None;
        for r in &rows {
            owner = Some(r.get::<_, String>(2));
            self.push(&mut docs, r);
        }
        match (owner, docs.remove(&document_id)) {
            (Some(owner), Some(v)) => self.replace_document(&owner, document_id, Some(v)),
            _ => self.remove_document(document_id),
        }
        Ok(())
    }

    /// Adds a row to its document; false for a vector of another width
    /// (another model's: not comparable).
    fn push(&self, docs: &mut BTreeMap<Uuid, DocumentVectors>, r: &tokio_postgres::Row) -> bool {
        let bytes: &[u8] = r.get(4);
        let Some(vector) = mnemo_projector::chunks::vector_from_bytes(bytes) else {
            return false;
        };
        if vector.len() != self.inner.dims {
            return false;
        }
        let d = docs.entry(r.get(1)).or_insert_with(|| DocumentVectors {
            topic: r.get(3),
            chunk_ids: Vec::new(),
            data: Vec::new(),
        });
        d.chunk_ids.push(r.get(0));
        d.data.extend_from_slice(&vector);
        true
    }

    /// Sets `document`'s rows for `owner` (None or no rows: removes it).
    /// Visible to the next search; schedules a rebuild when one is due.
    pub fn replace_document(&self, owner: &str, document: Uuid, rows: Option<DocumentVectors>) {
        let rows = rows.filter(|r| {
            r.chunk_ids.len() * self.inner.dims == r.data.len() && !r.chunk_ids.is_empty()
        });
        {
            let Ok(mut owners) = self.inner.owners.write() else {
                return;
            };
            let current = owners
                .get(owner)
                .cloned()
                .unwrap_or_else(|| Arc::new(Owner::exact(self.inner.dims, BTreeMap::new())));
            let next = current.replace(document, rows.map(Arc::new));
            if next.len() == 0 {
                owners.remove(owner);
            } else {
                owners.insert(owner.to_string(), Arc::new(next));
            }
        }
        self.maintain(owner);
    }

    /// Drops everything of `owner` (an erased learner).
    pub fn remove_owner(&self, owner: &str) {
        if let Ok(mut owners) = self.inner.owners.write() {
            owners.remove(owner);
        }
    }

    /// Removes `document` from whichever owner holds it.
    pub fn remove_document(&self, document: Uuid) {
        let holders: Vec<String> = match self.inner.owners.read() {
            Ok(o) => o
                .iter()
                .filter(|(_, v)| v.contains(document))
                .map(|(k, _)| k.clone())
                .collect(),
            Err(_) => return,
        };
        for owner in holders {
            self.replace_document(&owner, document, None);
        }
    }

    /// Rebuilds `owner` now, on this thread (a graph if it is big enough).
    /// None when there is nothing to rebuild, or another rebuild of the
    /// same owner is in flight.
    pub fn rebuild(&self, owner: &str) -> Option<Rebuilt> {
        if !self.inner.claim(owner) {
            return None;
        }
        let done = self.inner.rebuild(owner);
        self.inner.release(owner);
        match done {
            Rebuild::Done(r) => Some(r),
            Rebuild::Stale | Rebuild::Nothing => None,
        }
    }

    /// Starts a rebuild of `owner` in the background if one is due and we
    /// are on a tokio runtime (off the async threads: a graph over 100,000
    /// rows takes tens of seconds). Searches keep the current snapshot
    /// until the new one is swapped in.
    fn maintain(&self, owner: &str) {
        Inner::maintain(&self.inner, owner);
    }

    /// Returns once no rebuild is in flight (the benchmark times builds
    /// with this; tests wait on it instead of sleeping).
    pub async fn until_built(&self) {
        loop {
            let woken = self.inner.built.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.inner.idle() {
                return;
            }
            woken.await;
        }
    }

    /// The `n` chunks of `scope` most similar to `query`, best first.
    pub fn top(&self, scope: &Scope, query: &[f32], n: usize) -> Vec<String> {
        self.top_scored(scope, query, n, Path::Auto)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    /// [`Self::top`] with scores, on the path asked for (the benchmark and
    /// the tests compare the graph with the exact scan).
    pub fn top_scored(
        &self,
        scope: &Scope,
        query: &[f32],
        n: usize,
        path: Path,
    ) -> Vec<(String, f32)> {
        if query.len() != self.inner.dims || n == 0 {
            return Vec::new();
        }
        let Some(o) = self.inner.snapshot(&scope.owner_token) else {
            return Vec::new();
        };
        let plan = SearchPlan {
            exact_below: self.inner.config.exact_below,
            path,
        };
        o.top(scope, query, n, plan)
    }
}

impl Inner {
    /// An exact snapshot over `docs`, rows of the wrong width dropped.
    fn exact(&self, docs: BTreeMap<Uuid, DocumentVectors>) -> Owner {
        let docs = docs
            .into_iter()
            .filter(|(_, v)| {
                v.chunk_ids.len() * self.dims == v.data.len() && !v.chunk_ids.is_empty()
            })
            .map(|(d, v)| (d, Arc::new(v)))
            .collect();
        Owner::exact(self.dims, docs)
    }

    fn snapshot(&self, owner: &str) -> Option<Arc<Owner>> {
        self.owners.read().ok()?.get(owner).cloned()
    }

    fn due(&self, o: &Owner) -> bool {
        let c = &self.config;
        let wants_graph = o.len() >= c.exact_below;
        let churn_limit =
            (c.rebuild_fraction * o.base_rows() as f64).max(c.rebuild_min_rows as f64);
        (wants_graph && !o.has_graph()) || o.churn() as f64 > churn_limit
    }

    fn claim(&self, owner: &str) -> bool {
        self.building
            .lock()
            .is_ok_and(|mut b| b.insert(owner.to_string()))
    }

    fn release(&self, owner: &str) {
        if let Ok(mut b) = self.building.lock() {
            b.remove(owner);
        }
        self.built.notify_waiters();
    }

    fn idle(&self) -> bool {
        self.building.lock().map_or(true, |b| b.is_empty())
    }

    /// [`VectorIndex::maintain`] on the shared state (a rebuild that found
    /// its owner reloaded meanwhile starts the next one from here).
    fn maintain(inner: &Arc<Inner>, owner: &str) {
        let Some(o) = inner.snapshot(owner) else {
            return;
        };
        if !inner.due(&o) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !inner.claim(owner) {
            return;
        }
        let (inner, owner) = (inner.clone(), owner.to_string());
        runtime.spawn_blocking(move || {
            let done = inner.rebuild(&owner);
            inner.release(&owner);
            match done {
                Rebuild::Done(r) => tracing::info!(
                    owner = %owner, rows = r.rows, graph = r.graph,
                    ms = r.took.as_millis() as u64, "vector index rebuilt"
                ),
                // The owner was loaded again while this ran (dropped and read
                // back, or a model switch): the load's own `maintain` found
                // this build in flight and did nothing, so go again.
                Rebuild::Stale => Inner::maintain(&inner, &owner),
                Rebuild::Nothing => {}
            }
        });
    }

    fn rebuild(&self, owner: &str) -> Rebuild {
        let started = Instant::now();
        let Some(then) = self.snapshot(owner) else {
            return Rebuild::Nothing;
        };
        let graph = then.len() >= self.config.exact_below;
        let built = match Owner::freeze(
            self.dims,
            then.live_documents(),
            graph.then_some(&self.config.ann),
        ) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(owner = %owner, error = %e, "vector index rebuild failed; staying exact");
                return Rebuild::Nothing;
            }
        };
        let rows = built.len();
        let Ok(mut owners) = self.owners.write() else {
            return Rebuild::Nothing;
        };
        let Some(now) = owners.get(owner).cloned() else {
            // Dropped meanwhile.
            return Rebuild::Nothing;
        };
        if !now.same_base(&then) {
            // Reloaded meanwhile: this rebuild describes an older world.
            return Rebuild::Stale;
        }
        let caught_up = Owner::catch_up(built, &then, &now);
        if caught_up.len() == 0 {
            owners.remove(owner);
        } else {
            owners.insert(owner.to_string(), Arc::new(caught_up));
        }
        Rebuild::Done(Rebuilt {
            rows,
            graph,
            took: started.elapsed(),
        })
    }
}
