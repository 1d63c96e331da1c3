//! `SearchService.Search`: hybrid retrieval over the caller's own chunks
//! (see `mnemo_search`). The query is embedded here, with the model whose
//! vectors are served. [`retrieve`] is the same retrieval for other
//! services (`QaService.Ask`). The operators' model calls (`GetModels`,
//! `UseModel`) are in [`crate::search_models`].

use std::sync::Arc;

use mnemo_embedder::batcher::{Batcher, TextToEmbed};
use mnemo_embedder::Embedder;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::search_service_server::SearchService;
use mnemo_search::{Fusion, Indexes, Query, Scope};
use tonic::{Request, Response, Status};

use crate::auth::{caller, Caller};
use crate::documents::{label, parse_document_id};
use crate::server::ApiState;

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most hits per call.
pub const MAX_K: u32 = 100;

/// What search needs beyond the API's state.
pub struct SearchState {
    /// Vectors and BM25 lexemes in memory, kept fresh by `mnemo_search::follow`.
    pub index: Arc<Indexes>,
    /// The models this server can embed queries with (none: lexical
    /// only). The index serves one of them; `UseModel` switches.
    pub embedders: Vec<Arc<Embedder>>,
    pub fusion: Fusion,
    /// One batching queue per model for queries ([`QueryQueues`]).
    pub queries: QueryQueues,
}

/// Queries are embedded through a batching queue per model
/// (`mnemo_embedder::batcher`), in lanes by owner: concurrent queries share
/// model calls (a batch of 16 short queries costs little more than one),
/// repeated ones come from its cache, and one owner's flood of searches
/// delays another owner's query by about one model call, not by the flood.
#[derive(Default)]
pub struct QueryQueues(std::sync::Mutex<std::collections::HashMap<String, Batcher>>);

impl QueryQueues {
    /// The queue of `model` (started on first use, on this runtime).
    fn of(&self, model: &Arc<Embedder>) -> Batcher {
        let mut queues = self.0.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .entry(model.model_id().to_owned())
            .or_insert_with(|| {
                let plan = mnemo_embedder::batcher::BatchPlan {
                    // Short texts: many per call; a small window answers fast.
                    window: 64,
                    ..Default::default()
                };
                Batcher::start(model.clone(), plan).0
            })
            .clone()
    }

    /// Embeds `query` for `owner` (its lane).
    async fn embed(
        &self,
        model: &Arc<Embedder>,
        owner: &str,
        query: &str,
    ) -> Result<Vec<f32>, Status> {
        let tokens = model
            .count_tokens(query)
            .map_err(|e| crate::status::from_embed_error(&e))?
            .min(model.max_length());
        let mut results = self
            .of(model)
            .submit_in(
                owner,
                vec![TextToEmbed {
                    index: 0,
                    text: query.to_owned(),
                    tokens,
                }],
            )
            .map_err(|e| crate::status::from_embed_error(&e))?;
        match results.recv().await {
            Some(Ok(embedded)) => Ok(embedded.vector),
            Some(Err(e)) => Err(crate::status::from_embed_error(&e)),
            None => Err(Status::unavailable(
                "the query embedding queue stopped; retry",
            )),
        }
    }
}

impl SearchState {
    /// The loaded model with this id.
    pub fn embedder(&self, model_id: &str) -> Option<&Arc<Embedder>> {
        self.embedders.iter().find(|e| e.model_id() == model_id)
    }
}

pub struct SearchApi {
    state: Arc<ApiState>,
}

impl SearchApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

/// What to retrieve for a caller (the checked parts of a request).
pub struct Retrieval<'a> {
    pub text: &'a str,
    pub k: usize,
    pub documents: Option<Vec<uuid::Uuid>>,
    pub topic: Option<String>,
    pub mode: pb::SearchMode,
    /// Wait until the indexes reflect this stream sequence (0: no wait).
    pub min_sequence: u64,
}

/// What retrieval found.
pub struct Retrieved {
    pub hits: Vec<mnemo_search::Hit>,
    pub vector_used: bool,
    /// The model whose vectors answered, when they did.
    pub model: Option<String>,
}

/// `document_ids` of a request as a filter (empty: none).
pub fn document_filter(ids: &[String]) -> Result<Option<Vec<uuid::Uuid>>, Status> {
    if ids.is_empty() {
        return Ok(None);
    }
    ids.iter()
        .map(|d| parse_document_id(d).map(|id| id.as_uuid()))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Hybrid retrieval over `who`'s chunks: embeds the query, waits for
/// `min_sequence`, searches. Shared by `Search` and `QaService.Ask`.
pub async fn retrieve(
    state: &ApiState,
    who: &Caller,
    r: Retrieval<'_>,
) -> Result<Retrieved, Status> {
    let search = state
        .search
        .as_ref()
        .ok_or_else(|| Status::unavailable("search is not enabled on this server"))?;
    // One snapshot for the whole query: the query is embedded by the model
    // whose vectors it is compared with, even while a switch happens.
    let vectors = search.index.vectors();
    let embedder = vectors.model().and_then(|m| search.embedder(m)).cloned();
    let vector = match (r.mode, embedder) {
        (pb::SearchMode::Lexical, _) => None,
        (_, Some(model)) => Some(
            search
                .queries
                .embed(&model, &who.owner.token(), r.text)
                .await?,
        ),
        (pb::SearchMode::Vector, None) => {
            return Err(Status::failed_precondition(
                "vector search needs the embedding model, which this server has not loaded",
            ))
        }
        (_, None) => None,
    };
    let query = Query {
        scope: Scope {
            owner_token: who.owner.token(),
            documents: r.documents,
            topic: r.topic,
        },
        text: r.text,
        vector: vector.as_deref(),
        lexical: r.mode != pb::SearchMode::Vector,
        k: r.k,
    };
    if r.min_sequence > 0 {
        let wait = state.config.max_consistency_wait;
        let at = search.index.wait_for(r.min_sequence, wait).await;
        if at < r.min_sequence {
            return Err(Status::unavailable(format!(
                "the search index has not reached sequence {} yet (at {at}); retry shortly",
                r.min_sequence
            )));
        }
    }
    let db = state.read_db().await?;
    let hits = mnemo_search::search_in(&*db, &search.index, &vectors, &search.fusion, &query)
        .await
        .map_err(|e| crate::status::from_search_error(&e))?;
    let vector_used = query.vector.is_some();
    Ok(Retrieved {
        hits,
        vector_used,
        model: vector_used
            .then(|| vectors.model().map(str::to_owned))
            .flatten(),
    })
}

#[tonic::async_trait]
impl SearchService for SearchApi {
    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let text = r.query.trim();
        if text.is_empty() {
            return Err(Status::invalid_argument("the query is empty"));
        }
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(Status::invalid_argument(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let k = match r.k {
            0 => 10,
            k if k > MAX_K => {
                return Err(Status::invalid_argument(format!(
                    "k must be 1..={MAX_K}, got {k}"
                )))
            }
            k => k,
        } as usize;
        let found = retrieve(
            &self.state,
            &who,
            Retrieval {
                text,
                k,
                documents: document_filter(&r.document_ids)?,
                topic: label(&r.topic, "topic")?,
                mode: pb::SearchMode::try_from(r.mode).unwrap_or(pb::SearchMode::Hybrid),
                min_sequence: r.min_sequence,
            },
        )
        .await?;
        Ok(Response::new(pb::SearchResponse {
            vector_used: found.vector_used,
            model: found.model.unwrap_or_default(),
            hits: found
                .hits
                .into_iter()
                .map(|h| pb::SearchHit {
                    chunk_id: h.details.chunk_id,
                    document_id: h.details.document_id.to_string(),
                    title: h.details.title,
                    page_start: h.details.page_start,
                    page_end: h.details.page_end,
                    score: h.score,
                    snippet: h.details.snippet,
                    lexical_rank: h.lexical_rank,
                    vector_rank: h.vector_rank,
                    external_id: h.details.external_id.unwrap_or_default(),
                })
                .collect(),
        }))
    }

    async fn get_models(
        &self,
        req: Request<pb::GetModelsRequest>,
    ) -> Result<Response<pb::ModelsResponse>, Status> {
        let who = caller(&req)?;
        crate::search_models::get_models(&self.state, &who, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn use_model(
        &self,
        req: Request<pb::UseModelRequest>,
    ) -> Result<Response<pb::ModelsResponse>, Status> {
        let who = caller(&req)?;
        crate::search_models::use_model(&self.state, &who, req.into_inner())
            .await
            .map(Response::new)
    }
}
