//! Hybrid retrieval over the caller's indexed chunks.
//!
//! Owns: the lexical side (BM25 over the chunks' PostgreSQL lexemes in
//! memory, [`terms`]; PostgreSQL full text for queries in websearch syntax,
//! [`lexical`]), the in-memory vector index ([`vectors`], per owner: exact
//! scan for small owners, an HNSW graph for big ones), keeping both fresh
//! from `DocumentIndexed` events ([`follow`]) and saying how far they are
//! ([`Indexes::wait_for`]), reciprocal rank fusion ([`fusion`]), and hit
//! details with highlighted snippets.
//! Consumes: document events (an ordered consumer per process, from "now").
//! Must not: embed text (the caller passes the query vector, embedded by
//! the same model as the chunks) or decide who the caller is (the API
//! passes the owner from the verified token); it never returns another
//! owner's chunk.
//!
//! # Layout
//! - [`terms`]: BM25 over every chunk's lexemes, per owner.
//! - [`lexical`]: the PostgreSQL full-text query, query lexemes, hit
//!   details with snippets.
//! - [`vectors`]: the in-memory vector index (per-owner snapshots, exact
//!   scan, HNSW graph through usearch, rebuilds off the runtime).
//! - [`fusion`]: reciprocal rank fusion.
//! - [`passages`]: the full text of retrieved chunks, and of one document's
//!   chunks (for answers and cards).
//! - this file: [`search`] (the hybrid query), [`Indexes`] and [`follow`]
//!   (freshness).

pub mod fusion;
pub mod lexical;
pub mod passages;
pub mod terms;
pub mod vectors;

use std::sync::Arc;

use futures::StreamExt;
use tracing::Instrument;
use uuid::Uuid;

pub use fusion::{Fused, Fusion};
pub use terms::{Bm25, TermIndex};
pub use vectors::{VectorConfig, VectorIndex};

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Bus(String),
    #[error("vector index: {0}")]
    Index(String),
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
#[derive(Debug)]
pub struct Indexes {
    pub vectors: VectorIndex,
    pub terms: TermIndex,
    /// Every document event up to this stream sequence is in both indexes.
    applied: tokio::sync::watch::Sender<u64>,
}

impl Indexes {
    pub fn new(vectors: VectorIndex, terms: TermIndex) -> Self {
        Self {
            vectors,
            terms,
            applied: tokio::sync::watch::Sender::new(0),
        }
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
    let (scope, query, k) = (&q.scope, q.text, q.k);
    let n = (k * CANDIDATES_PER_HIT).max(MIN_CANDIDATES);
    let lexical = if !q.lexical {
        Vec::new()
    } else if lexical::has_operators(query) {
        lexical::top(client, scope, query, n).await?
    } else {
        let lexemes = lexical::lexemes(client, query).await?;
        indexes
            .terms
            .top(scope, &lexemes, n)
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    };
    let vector = match q.vector {
        Some(v) => indexes.vectors.top(scope, v, n),
        None => Vec::new(),
    };
    let fused: Vec<Fused<String>> = fusion.fuse(&lexical, &vector).into_iter().take(k).collect();
    let ids: Vec<String> = fused.iter().map(|f| f.item.clone()).collect();
    let mut details = lexical::details(client, &scope.owner_token, &ids, query).await?;
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

/// Fills the indexes from the read models, then keeps them fresh: reloads
/// a document's vectors and lexemes each time one of its runs is indexed,
/// and advances [`Indexes::applied`] past every document event it has seen.
/// The load reads the read models once the projector's checkpoint C is
/// known, and events are followed from C + 1: whatever the projector
/// applied after C is seen again as an event (a reload is idempotent), so
/// nothing indexed around the load is missed. Ends when the stream ends.
pub async fn follow(
    bus: mnemo_bus::Bus,
    database_url: String,
    indexes: Arc<Indexes>,
) -> Result<(), SearchError> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let bus_error = |e: &dyn std::fmt::Display| SearchError::Bus(e.to_string());
    let db = mnemo_projector::db::connect(&database_url, &bus.namespace)
        .await
        .map_err(|e| bus_error(&e))?;
    let from = match mnemo_projector::runner::checkpoint(&db, &bus.namespace).await {
        Ok(at) => at,
        Err(e) => {
            tracing::warn!(error = %e, "no projector checkpoint yet; following from the start");
            0
        }
    };
    let consumer = bus
        .events
        .create_consumer(OrderedConfig {
            filter_subject: format!("{}.>", bus.namespace.events_of("doc")),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| bus_error(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| bus_error(&e))?;
    let vectors = indexes.vectors.load_all(&db).await?;
    let chunks = indexes.terms.load_all(&db).await?;
    indexes.set_applied(from);
    tracing::info!(vectors, chunks, sequence = from, "search indexes loaded");
    while let Some(msg) = messages.next().await {
        let Ok(msg) = msg else { continue };
        let Ok(sequence) = msg.info().map(|i| i.stream_sequence) else {
            continue;
        };
        let indexed = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(mnemo_bus::envelope::EVENT_TYPE))
            .is_some_and(|t| t.as_str().split(',').any(|t| t == "DocumentIndexed"));
        // Subject `<ns>.ev.doc.<owner token>.<document id>`.
        let document = msg
            .subject
            .rsplit('.')
            .next()
            .and_then(|d| d.parse::<Uuid>().ok());
        if let (true, Some(document)) = (indexed, document) {
            let span = tracing::info_span!("search_refresh", document_id = %document, sequence);
            async {
                // The projector sets the document's indexed run when it
                // applies this very event: wait until it has.
                wait_for_projector(&db, &bus.namespace, sequence, "refresh").await;
                if let Err(e) = indexes.vectors.refresh_document(&db, document).await {
                    tracing::warn!(error = %e, "could not refresh the vectors of a document");
                }
                if let Err(e) = indexes.terms.refresh_document(&db, document).await {
                    tracing::warn!(error = %e, "could not refresh the lexemes of a document");
                }
            }
            .instrument(span)
            .await;
        }
        indexes.set_applied(sequence);
    }
    Ok(())
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
