//! Hybrid retrieval over the caller's indexed chunks.
//!
//! Owns: the lexical query (PostgreSQL full text on the `chunks` read
//! model), the in-memory vector index ([`vectors`], per owner: exact scan
//! for small owners, an HNSW graph for big ones) and keeping it fresh from
//! `DocumentIndexed` events ([`follow`]), reciprocal rank fusion
//! ([`fusion`]), and hit details with highlighted snippets.
//! Consumes: document events (an ordered consumer per process, from "now").
//! Must not: embed text (the caller passes the query vector, embedded by
//! the same model as the chunks) or decide who the caller is (the API
//! passes the owner from the verified token); it never returns another
//! owner's chunk.
//!
//! # Layout
//! - [`lexical`]: the full-text query and hit details with snippets.
//! - [`vectors`]: the in-memory vector index (per-owner snapshots, exact
//!   scan, HNSW graph through usearch, rebuilds off the runtime).
//! - [`fusion`]: reciprocal rank fusion.
//! - this file: [`search`] (the hybrid query) and [`follow`] (freshness).

pub mod fusion;
pub mod lexical;
pub mod vectors;

use std::sync::Arc;

use futures::StreamExt;
use uuid::Uuid;

pub use fusion::{Fused, Fusion};
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

/// Runs a hybrid search: lexical and (when a query vector is given) vector
/// candidates, fused, the best `k` with their details.
pub async fn search(
    client: &impl tokio_postgres::GenericClient,
    index: &VectorIndex,
    fusion: &Fusion,
    q: &Query<'_>,
) -> Result<Vec<Hit>, SearchError> {
    let (scope, query, k) = (&q.scope, q.text, q.k);
    let n = (k * CANDIDATES_PER_HIT).max(MIN_CANDIDATES);
    let lexical = if q.lexical {
        lexical::top(client, scope, query, n).await?
    } else {
        Vec::new()
    };
    let vector = match q.vector {
        Some(v) => index.top(scope, v, n),
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

/// Fills `index` from the read models, then keeps it fresh: reloads a
/// document's vectors each time one of its runs is indexed. The event
/// consumer starts *before* the initial load, so nothing indexed in between
/// is missed (a reload is idempotent). Ends when the event stream ends.
pub async fn follow(
    bus: mnemo_bus::Bus,
    database_url: String,
    index: Arc<VectorIndex>,
) -> Result<(), SearchError> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let consumer = bus
        .events
        .create_consumer(OrderedConfig {
            filter_subject: format!("{}.>", bus.namespace.events_of("doc")),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| SearchError::Bus(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| SearchError::Bus(e.to_string()))?;
    let db = mnemo_projector::db::connect(&database_url, &bus.namespace)
        .await
        .map_err(|e| SearchError::Bus(e.to_string()))?;
    let loaded = index.load_all(&db).await?;
    tracing::info!(vectors = loaded, "search index loaded");
    while let Some(msg) = messages.next().await {
        let Ok(msg) = msg else { continue };
        let indexed = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(mnemo_bus::envelope::EVENT_TYPE))
            .is_some_and(|t| t.as_str().split(',').any(|t| t == "DocumentIndexed"));
        if !indexed {
            continue;
        }
        // Subject `<ns>.ev.doc.<owner token>.<document id>`.
        let Some(document) = msg
            .subject
            .rsplit('.')
            .next()
            .and_then(|d| d.parse::<Uuid>().ok())
        else {
            continue;
        };
        // The projector sets the document's indexed run when it applies
        // this very event: wait until it has.
        if let Ok(info) = msg.info() {
            let seq = info.stream_sequence;
            match mnemo_projector::runner::wait_for(&db, &bus.namespace, seq, PROJECTOR_WAIT).await
            {
                Ok(at) if at >= seq => {}
                Ok(at) => {
                    tracing::warn!(%document, at, seq, "the projector is behind; refreshing anyway")
                }
                Err(e) => {
                    tracing::warn!(%document, error = %e, "cannot read the projector's position")
                }
            }
        }
        if let Err(e) = index.refresh_document(&db, document).await {
            tracing::warn!(%document, error = %e, "could not refresh the vectors of a document");
        }
    }
    Ok(())
}
