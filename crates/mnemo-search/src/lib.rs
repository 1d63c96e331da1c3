//! Hybrid retrieval over the caller's indexed chunks.
//!
//! Owns: the lexical side (BM25 over the chunks' PostgreSQL lexemes in
//! memory, [`terms`]; PostgreSQL full text for queries in websearch syntax,
//! [`lexical`]), the in-memory vector index ([`vectors`], per owner: exact
//! scan for small owners, an HNSW graph for big ones), which owners' state
//! is held within a memory budget ([`resident`]: loaded at an owner's first
//! search, least recently searched dropped), keeping what is held fresh
//! from `DocumentIndexed` events ([`follow`]) and saying how far they are
//! ([`Indexes::wait_for`]), switching the served model's vectors without a
//! pause ([`Indexes::switch_vectors`]), reciprocal rank fusion
//! ([`fusion`]), and hit details with highlighted snippets ([`snippet`]).
//! Consumes: document events (an ordered consumer per process, from "now").
//! Must not: embed text (the caller passes the query vector, embedded by
//! the same model as the chunks) or decide who the caller is (the API
//! passes the owner from the verified token); it never returns another
//! owner's chunk.
//!
//! # Layout
//! - [`terms`]: BM25 over the held owners' chunk lexemes, per owner.
//! - [`lexical`]: the PostgreSQL full-text query, query lexemes, hit
//!   details.
//! - [`vectors`]: the in-memory vector index (per-owner snapshots, exact
//!   scan, HNSW graph through usearch, rebuilds off the runtime).
//! - [`resident`]: owners held, loaded on demand, evicted past the budget.
//! - [`fusion`]: reciprocal rank fusion.
//! - [`snippet`]: highlighted snippets of hits.
//! - [`passages`]: the full text of retrieved chunks, and of one document's
//!   chunks (for answers and cards).
//! - this file: [`search`] (the hybrid query), [`Indexes`] and [`follow`]
//!   (freshness).

pub mod fusion;
pub mod lexical;
pub mod passages;
pub mod resident;
pub mod snippet;
pub mod terms;
pub mod vectors;

use std::sync::Arc;

use futures::StreamExt;
use tracing::Instrument;
use uuid::Uuid;

pub use fusion::{Fused, Fusion};
pub use resident::{Residence, DEFAULT_BUDGET};
pub use terms::{Bm25, TermIndex};
pub use vectors::{VectorConfig, VectorIndex};

/// What went wrong, coarsely: enough to pick a status and decide retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchErrorKind {
    /// PostgreSQL or NATS is unavailable, or the index follower is not
    /// running (yet): retrying later may succeed.
    Unavailable,
    /// A query or an index build failed for a reason retrying won't fix.
    Internal,
}

/// Why a search (or keeping its indexes fresh) failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("PostgreSQL: {}", mnemo_projector::error::describe_postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    ReadModel(#[from] mnemo_projector::ProjectorError),
    #[error(transparent)]
    Bus(#[from] mnemo_bus::BusError),
    #[error("the index follower is not running")]
    NotFollowing,
    #[error("building the vector index: {0}")]
    Build(#[from] tokio::task::JoinError),
}

impl SearchError {
    pub fn kind(&self) -> SearchErrorKind {
        let unavailable = match self {
            Self::Postgres(e) => mnemo_projector::error::postgres_is_transient(e),
            Self::ReadModel(e) => e.is_transient(),
            Self::Bus(_) | Self::NotFollowing => true,
            Self::Build(_) => false,
        };
        if unavailable {
            SearchErrorKind::Unavailable
        } else {
            SearchErrorKind::Internal
        }
    }
}

/// Whose chunks, and which of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub owner_token: String,
    /// Only these documents (None: all).
    pub documents: Option<Vec<Uuid>>,
    /// Only documents of this topic.
    pub topic: Option<String>,
}

impl Scope {
    fn admits(&self, document: Uuid, topic: Option<&str>) -> bool {
        self.documents
            .as_ref()
            .is_none_or(|d| d.contains(&document))
            && self.topic.as_deref().is_none_or(|t| topic == Some(t))
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub details: lexical::HitDetails,
    pub score: f64,
    pub lexical_rank: u32,
    pub vector_rank: u32,
}

/// Candidates taken from each list before fusing (per hit wanted).
const CANDIDATES_PER_HIT: usize = 5;
const MIN_CANDIDATES: usize = 50;
/// How long a refresh waits for the projector to apply `DocumentIndexed`.
const PROJECTOR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// What to search for.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub scope: Scope,
    pub text: &'a str,
    /// The text embedded by the chunks' model; None: no vector side.
    pub vector: Option<&'a [f32]>,
    /// Whether to run the full-text side.
    pub lexical: bool,
    pub k: usize,
}

/// The in-memory indexes search reads, and the stream sequence they reflect.
///
/// The vector index is one model's and can be swapped for another model's
/// while searches go on ([`Indexes::switch_vectors`]): a search takes a
/// snapshot ([`Indexes::vectors`]) and embeds its query with that
/// snapshot's model, so no query ever meets another model's vectors.
#[derive(Debug)]
pub struct Indexes {
    vectors: std::sync::RwLock<Arc<VectorIndex>>,
    pub terms: TermIndex,
    /// Every document event up to this stream sequence is in both indexes.
    applied: tokio::sync::watch::Sender<u64>,
    /// Whose state is held, within the memory budget ([`resident`]).
    resident: resident::Residency,
    /// Model switches, carried out by [`follow`] between two events.
    switch_tx: tokio::sync::mpsc::Sender<Switch>,
    switch_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Switch>>>,
}

/// A request to serve another model's vectors.
#[derive(Debug)]
struct Switch {
    index: VectorIndex,
    done: tokio::sync::oneshot::Sender<Result<usize, SearchError>>,
}

impl Indexes {
    /// Indexes holding at most [`DEFAULT_BUDGET`] bytes of owners' state.
    pub fn new(vectors: VectorIndex, terms: TermIndex) -> Self {
        Self::with_budget(vectors, terms, DEFAULT_BUDGET)
    }

    /// Indexes holding at most `budget` bytes of owners' state (roughly:
    /// vectors, graphs, lexemes); past it, owners searched least recently
    /// are dropped and read again at their next search ([`resident`]).
    pub fn with_budget(vectors: VectorIndex, terms: TermIndex, budget: usize) -> Self {
        let (switch_tx, switch_rx) = tokio::sync::mpsc::channel(4);
        Self {
            vectors: std::sync::RwLock::new(Arc::new(vectors)),
            terms,
            resident: resident::Residency::new(budget),
            applied: tokio::sync::watch::Sender::new(0),
            switch_tx,
            switch_rx: std::sync::Mutex::new(Some(switch_rx)),
        }
    }

    /// The vector index searches use now (one model's).
    pub fn vectors(&self) -> Arc<VectorIndex> {
        match self.vectors.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_vectors(&self, index: Arc<VectorIndex>) {
        match self.vectors.write() {
            Ok(mut v) => *v = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
    }

    /// Serves `index` (an empty index for another model) from now on:
    /// [`follow`] fills it from the read models between two events, so no
    /// refresh is lost, and swaps it in; searches until then use the old
    /// one. Returns the vectors loaded. Fails when `follow` is not running.
    pub async fn switch_vectors(&self, index: VectorIndex) -> Result<usize, SearchError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.switch_tx
            .send(Switch { index, done })
            .await
            .map_err(|_| SearchError::NotFollowing)?;
        answer.await.map_err(|_| SearchError::NotFollowing)?
    }

    /// The stream sequence the indexes reflect (0: not loaded yet).
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    fn set_applied(&self, sequence: u64) {
        self.applied.send_if_modified(|at| {
            let moved = sequence > *at;
            *at = (*at).max(sequence);
            moved
        });
    }

    /// Waits until the indexes reflect `sequence` (a document event's
    /// stream sequence, e.g. of its `DocumentIndexed`), at most `timeout`;
    /// returns where they are.
    pub async fn wait_for(&self, sequence: u64, timeout: std::time::Duration) -> u64 {
        let mut rx = self.applied.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|&at| at >= sequence)).await;
        match reached {
            Ok(Ok(at)) => *at,
            _ => self.applied(),
        }
    }
}

/// Runs a hybrid search: lexical and (when a query vector is given) vector
/// candidates, fused, the best `k` with their details. The lexical list is
/// BM25 over the indexes' lexemes, or PostgreSQL's full-text query when the
/// query uses websearch operators.
pub async fn search(
    client: &impl tokio_postgres::GenericClient,
    indexes: &Indexes,
    fusion: &Fusion,
    q: &Query<'_>,
) -> Result<Vec<Hit>, SearchError> {
    search_in(client, indexes, &indexes.vectors(), fusion, q).await
}

/// [`search`] against a snapshot of the vector index taken by the caller
/// (the one whose model embedded `q.vector`).
pub async fn search_in(
    client: &impl tokio_postgres::GenericClient,
    indexes: &Indexes,
    vectors: &VectorIndex,
    fusion: &Fusion,
    q: &Query<'_>,
) -> Result<Vec<Hit>, SearchError> {
    let (scope, query, k) = (&q.scope, q.text, q.k);
    // The caller's state, read now if it is not held. (During a model
    // switch a cold owner is read into the new model's index; a snapshot
    // of the old one then finds no vectors of theirs for this one query.)
    // Held (not dropped) until the lists are made.
    let _held = indexes.ensure(client, &scope.owner_token).await?;
    let n = (k * CANDIDATES_PER_HIT).max(MIN_CANDIDATES);
    // The query's lexemes: BM25 ranks by them, snippets highlight them.
    let lexemes = lexical::lexemes(client, query).await?;
    let lexical = if !q.lexical {
        Vec::new()
    } else if lexical::has_operators(query) {
        lexical::top(client, scope, query, n).await?
    } else {
        indexes
            .terms
            .top(scope, &lexemes, n)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    };
    let vector = match q.vector {
        Some(v) => vectors.top(scope, v, n),
        None => Vec::new(),
    };
    let fused: Vec<Fused<String>> = fusion.fuse(&lexical, &vector).into_iter().take(k).collect();
    let ids: Vec<String> = fused.iter().map(|f| f.item.clone()).collect();
    let words = snippet::QueryWords::new(&lexemes);
    let mut details = lexical::details(client, &scope.owner_token, &ids, &words).await?;
    let mut hits = Vec::with_capacity(fused.len());
    for f in fused {
        if let Some(pos) = details.iter().position(|d| d.chunk_id == f.item) {
            hits.push(Hit {
                details: details.swap_remove(pos),
                score: f.score,
                lexical_rank: f.lexical_rank,
                vector_rank: f.vector_rank,
            });
        }
    }
    Ok(hits)
}

/// Keeps the held owners' state fresh ([`resident`]): reloads a document's
/// vectors and lexemes each time one of its runs is indexed (and its
/// vectors when a backfill adds the served model's), if its owner is held;
/// carries out model switches ([`Indexes::switch_vectors`]) between two
/// events; and advances [`Indexes::applied`] past every document event it
/// has seen. Events are followed from the projector's checkpoint C + 1, and
/// [`Indexes::applied`] starts at C: an owner loaded at any time reads the
/// read models, which hold at least everything up to C, and whatever the
/// projector applied after C is seen again as an event (a reload is
/// idempotent). An event's refresh, held owner or not, waits until the
/// projector has applied it (for up to 30 s; past that the follower goes
/// on and says so in the log), so a load after [`Indexes::applied`] passed
/// an event sees what it says. Ends when the stream ends.
///
/// PostgreSQL going away (a restart, a failover, its sessions killed) is
/// waited out: the connection is made again (with backoff, logged) and the
/// refresh in hand is tried again, so no document indexed meanwhile is
/// missed, and [`Indexes::applied`] never passes an event whose refresh
/// has not been done.
pub async fn follow(
    bus: mnemo_bus::Bus,
    database_url: String,
    indexes: Arc<Indexes>,
) -> Result<(), SearchError> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let mut switches = indexes.switch_rx.lock().ok().and_then(|mut rx| rx.take());
    // The first connection must work: a wrong URL fails the start.
    let mut conn = Reconnecting::new(database_url.clone(), bus.namespace.clone());
    let db = conn.connect().await?;
    let from = match mnemo_projector::runner::checkpoint(&*db, &bus.namespace).await {
        Ok(at) => at,
        Err(e) => {
            tracing::warn!(error = %e, "no projector checkpoint yet; following from the start");
            0
        }
    };
    let consumer = bus
        .events
        .create_consumer(OrderedConfig {
            name: Some(mnemo_bus::consumer::ordered_reader_name("search")),
            filter_subject: format!("{}.>", bus.namespace.events_of("doc")),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| mnemo_bus::BusError::unavailable("cannot follow the document events", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| mnemo_bus::BusError::unavailable("cannot follow the document events", e))?;
    // Nothing is loaded now: each owner's state is read at their first
    // search (`Indexes::ensure`); events from here refresh owners held.
    indexes.set_applied(from);
    metrics::gauge!("mnemo_search_budget_bytes").set(indexes.budget() as f64);
    tracing::info!(
        sequence = from,
        budget_mib = indexes.budget() >> 20,
        "search follows the document events; owners are loaded at their first search"
    );
    loop {
        let msg = tokio::select! {
            msg = messages.next() => match msg {
                Some(msg) => msg,
                None => break,
            },
            Some(switch) = next_switch(&mut switches) => {
                // The read models must hold everything the indexes claim to
                // reflect (a backfill of the new model seen while the old
                // one served was not reloaded).
                let db = conn.client().await;
                wait_for_projector(&db, &bus.namespace, indexes.applied(), "switch").await;
                switch_model(&db, &indexes, switch).await;
                continue;
            }
        };
        let Ok(msg) = msg else { continue };
        let Ok(sequence) = msg.info().map(|i| i.stream_sequence) else {
            continue;
        };
        if let Some(owner) = erased_owner(&bus, &msg) {
            // In log order: what the owner had is dropped now, and nothing
            // of theirs is loaded again (their rows are gone, their events
            // tombstones). Only an erasure the keyring confirms counts.
            if !bus.keys.confirm_erased(owner).await.unwrap_or(false) {
                tracing::warn!(
                    owner,
                    sequence,
                    "a LearnerErased without its erasure marker; ignored"
                );
                indexes.set_applied(sequence);
                continue;
            }
            // Their rows go when the projector applies this event: until
            // then a search could read them back in.
            let db = conn.client().await;
            wait_for_projector(&db, &bus.namespace, sequence, "erasure").await;
            indexes.drop_owner(owner).await;
            tracing::info!(
                owner,
                sequence,
                "an erased learner dropped from the search indexes"
            );
            indexes.set_applied(sequence);
            continue;
        }
        let needed = match bus.namespace.owner_token_of(msg.subject.as_str()) {
            Some(owner) => refresh_needed(&bus.keys, &msg, sequence, &indexes)
                .await
                .map(|(document, what)| (owner, document, what)),
            None => None,
        };
        if let Some((owner, document, what)) = needed {
            let span = tracing::info_span!("search_refresh", document_id = %document, sequence);
            async {
                loop {
                    let db = conn.client().await;
                    // The projector stores what this event says when it
                    // applies this very event: wait until it has (also for
                    // an owner not held, whose next load must see it).
                    wait_for_projector(&db, &bus.namespace, sequence, "refresh").await;
                    let refreshed = indexes
                        .refresh_held(owner, || refresh(&db, &indexes, document, what))
                        .await;
                    match refreshed {
                        Ok(_) => break,
                        // PostgreSQL is away: connect again and redo this
                        // refresh before going past its event.
                        Err(e) if e.kind() == SearchErrorKind::Unavailable => {
                            tracing::warn!(error = %e, "could not refresh a document; reconnecting to PostgreSQL");
                            conn.lost();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not refresh a document");
                            break;
                        }
                    }
                }
            }
            .instrument(span)
            .await;
        }
        indexes.set_applied(sequence);
    }
    Ok(())
}

/// Reloads what `what` says of `document` into the indexes.
async fn refresh(
    db: &tokio_postgres::Client,
    indexes: &Indexes,
    document: Uuid,
    what: Refresh,
) -> Result<(), SearchError> {
    indexes.vectors().refresh_document(db, document).await?;
    if what == Refresh::All {
        indexes.terms.refresh_document(db, document).await?;
    }
    Ok(())
}

/// The follower's PostgreSQL session, made again whenever it is lost.
struct Reconnecting {
    url: String,
    namespace: mnemo_bus::Namespace,
    client: Option<Arc<tokio_postgres::Client>>,
    backoff: mnemo_bus::Backoff,
}

impl Reconnecting {
    fn new(url: String, namespace: mnemo_bus::Namespace) -> Self {
        Self {
            url,
            namespace,
            client: None,
            backoff: mnemo_bus::Backoff::new(
                std::time::Duration::from_millis(100),
                std::time::Duration::from_secs(5),
            ),
        }
    }

    /// Connects once (the first connection: an error is the caller's).
    async fn connect(&mut self) -> Result<Arc<tokio_postgres::Client>, SearchError> {
        let client = Arc::new(mnemo_projector::db::connect(&self.url, &self.namespace).await?);
        self.client = Some(client.clone());
        Ok(client)
    }

    /// A live session: the current one, or a new one (tried until it works).
    async fn client(&mut self) -> Arc<tokio_postgres::Client> {
        loop {
            if let Some(c) = self.client.as_ref().filter(|c| !c.is_closed()) {
                return c.clone();
            }
            match self.connect().await {
                Ok(c) => {
                    self.backoff.reset();
                    tracing::info!("search index reconnected to PostgreSQL");
                    return c;
                }
                Err(e) => {
                    let delay = self
                        .backoff
                        .next_delay()
                        .unwrap_or(std::time::Duration::from_secs(5));
                    tracing::warn!(error = %e, ?delay, "PostgreSQL unavailable to the search index; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The session failed: the next [`Reconnecting::client`] makes a new one.
    fn lost(&mut self) {
        self.client = None;
    }
}

/// What an event obliges the indexes to reload for its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// A run was indexed: its vectors and lexemes.
    All,
    /// A backfill added vectors of the model being served.
    Vectors,
}

/// The owner a `LearnerErased` message erased, if it is one.
fn erased_owner<'m>(
    bus: &mnemo_bus::Bus,
    msg: &'m async_nats::jetstream::Message,
) -> Option<&'m str> {
    let erased = mnemo_bus::envelope::names_event_types(
        msg.headers.as_ref(),
        &[mnemo_bus::event_store::LEARNER_ERASED],
    );
    if !erased {
        return None;
    }
    bus.namespace.owner_token_of(msg.subject.as_str())
}

/// Whether `msg` changes what search holds for its document. Only
/// `DocumentIndexed` and `ChunksEmbedded` are looked at (from the
/// `Mnemo-Event-Type` header); only the latter is decoded, to see whether
/// it is a backfill of the served model.
async fn refresh_needed(
    keys: &mnemo_bus::Keyring,
    msg: &async_nats::jetstream::Message,
    sequence: u64,
    indexes: &Indexes,
) -> Option<(Uuid, Refresh)> {
    use mnemo_domain::DocumentEventKind as K;
    // A message without the header names no event search reacts to.
    let names = |kind: K| {
        mnemo_bus::envelope::names_event_kind(msg.headers.as_ref(), &[kind]).unwrap_or(false)
    };
    // Subject `<ns>.ev.doc.<owner token>.<document id>`.
    let document = msg.subject.rsplit('.').next()?.parse::<Uuid>().ok()?;
    if names(K::DocumentIndexed) {
        return Some((document, Refresh::All));
    }
    if !names(K::ChunksEmbedded) {
        return None;
    }
    let served = indexes.vectors();
    let served = served.model()?.to_owned();
    let stored = match mnemo_bus::event_store::decode_message::<mnemo_domain::DocumentEvent>(
        keys,
        &msg.subject,
        sequence,
        msg.headers.as_ref(),
        &msg.payload,
    )
    .await
    {
        Ok(mnemo_bus::event_store::Decoded::Events(s)) => s,
        // An erased owner's: nothing of theirs is loaded.
        Ok(mnemo_bus::event_store::Decoded::Erased(_)) => return None,
        Err(e) => {
            tracing::warn!(error = %e, sequence, "cannot decode vectors; not reloaded");
            return None;
        }
    };
    stored
        .events
        .iter()
        .any(|e| {
            matches!(e, mnemo_domain::DocumentEvent::ChunksEmbedded { backfill: true, model, .. } if *model == served)
        })
        .then_some((document, Refresh::Vectors))
}

/// The next model switch asked for (never, without a receiver).
async fn next_switch(rx: &mut Option<tokio::sync::mpsc::Receiver<Switch>>) -> Option<Switch> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Loads the held owners' vectors of the new model and swaps them in;
/// events and cold owners' loads wait meanwhile (searches of held owners
/// do not: they use the old index until the swap).
async fn switch_model(db: &tokio_postgres::Client, indexes: &Indexes, switch: Switch) {
    let model = switch.index.model().unwrap_or("any").to_owned();
    // The owners held keep being held, now with the new model's vectors;
    // no owner is loaded, refreshed or dropped until the swap (a cold
    // owner's first search waits for it; the old and new vectors of the
    // held owners are both in memory meanwhile).
    let (owners, _frozen) = indexes.freeze_held().await;
    let loaded = switch.index.load_owners(db, &owners).await;
    if let Ok(n) = &loaded {
        indexes.set_vectors(Arc::new(switch.index));
        tracing::info!(
            model,
            vectors = n,
            "search now serves another model's vectors"
        );
    }
    let _ = switch.done.send(loaded);
}

async fn wait_for_projector(
    db: &tokio_postgres::Client,
    namespace: &mnemo_bus::Namespace,
    sequence: u64,
    what: &str,
) {
    match mnemo_projector::runner::wait_for(db, namespace, sequence, PROJECTOR_WAIT).await {
        Ok(at) if at >= sequence => {}
        Ok(at) => tracing::warn!(
            at,
            sequence,
            what,
            "the projector is behind; going on anyway"
        ),
        Err(e) => tracing::warn!(error = %e, what, "cannot read the projector's position"),
    }
}
