//! `SearchService.GetModels` and `UseModel`: which embedding model's
//! vectors answer searches, how far each model's vectors cover the indexed
//! material, and switching models without a pause (the last step of a
//! backfill, see docs/operations.md).
//!
//! Both are for operators (admin tokens): coverage counts every owner's
//! chunks. The switch itself is `mnemo_search::Indexes::switch_vectors`;
//! this module checks that the server can embed queries with the model and
//! that its vectors cover every indexed chunk.

use mnemo_proto::v1 as pb;
use tonic::Status;

use crate::auth::Caller;
use crate::search::SearchState;
use crate::server::ApiState;

/// Indexed documents and chunks: each document's current indexed run.
const INDEXED: &str = "SELECT count(DISTINCT c.document_id)::int8, count(*)::int8
                         FROM chunks c
                         JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run";

/// The same, per model that has vectors for them.
const COVERAGE: &str = "SELECT e.model, count(DISTINCT c.document_id)::int8, count(*)::int8
                          FROM chunks c
                          JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
                          JOIN chunk_embeddings e ON e.chunk_id = c.chunk_id AND e.run = c.run
                         GROUP BY e.model
                         ORDER BY e.model";

fn admin_only(who: &Caller) -> Result<(), Status> {
    if who.admin {
        Ok(())
    } else {
        Err(Status::permission_denied(
            "choosing the search model is for operators: use an admin token (mnemo token issue --admin)",
        ))
    }
}

fn search_state(state: &ApiState) -> Result<&SearchState, Status> {
    state
        .search
        .as_ref()
        .ok_or_else(|| Status::unavailable("search is not enabled on this server"))
}

/// Whether `wanted` names the model `id`: the id itself, or its name
/// without the `@<hash>` suffix the embedder adds.
pub fn names(id: &str, wanted: &str) -> bool {
    id == wanted
        || id
            .strip_prefix(wanted)
            .and_then(|rest| rest.strip_prefix('@'))
            .is_some_and(|hash| !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

pub async fn get_models(
    state: &ApiState,
    who: &Caller,
    r: pb::GetModelsRequest,
) -> Result<pb::ModelsResponse, Status> {
    admin_only(who)?;
    let db = state.read_db().await?;
    state.wait_for_read_models(&db, r.min_sequence).await?;
    models(state, search_state(state)?).await
}

async fn models(state: &ApiState, search: &SearchState) -> Result<pb::ModelsResponse, Status> {
    let db = state.read_db().await?;
    let db_error = crate::status::from_postgres_error;
    let total = db.query_one(INDEXED, &[]).await.map_err(db_error)?;
    let mut models: Vec<pb::ModelCoverage> = db
        .query(COVERAGE, &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| pb::ModelCoverage {
            model: r.get(0),
            documents: r.get::<_, i64>(1) as u64,
            chunks: r.get::<_, i64>(2) as u64,
            loaded: search.embedder(r.get(0)).is_some(),
        })
        .collect();
    for e in &search.embedders {
        if !models.iter().any(|m| m.model == e.model_id()) {
            models.push(pb::ModelCoverage {
                model: e.model_id().to_owned(),
                documents: 0,
                chunks: 0,
                loaded: true,
            });
        }
    }
    Ok(pb::ModelsResponse {
        served: search
            .index
            .vectors()
            .model()
            .unwrap_or_default()
            .to_owned(),
        indexed_documents: total.get::<_, i64>(0) as u64,
        indexed_chunks: total.get::<_, i64>(1) as u64,
        models,
    })
}

pub async fn use_model(
    state: &ApiState,
    who: &Caller,
    r: pb::UseModelRequest,
) -> Result<pb::ModelsResponse, Status> {
    admin_only(who)?;
    let search = search_state(state)?;
    let wanted = r.model.trim();
    if wanted.is_empty() {
        return Err(Status::invalid_argument("name the model to serve"));
    }
    let matching: Vec<_> = search
        .embedders
        .iter()
        .filter(|e| names(e.model_id(), wanted))
        .collect();
    let embedder = match matching.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let loaded: Vec<&str> = search.embedders.iter().map(|e| e.model_id()).collect();
            return Err(Status::not_found(format!(
                "this server has not loaded a model named {wanted} (loaded: {}); start it with --extra-model-dir for that model",
                if loaded.is_empty() { "none".to_owned() } else { loaded.join(", ") }
            )));
        }
        _ => {
            return Err(Status::invalid_argument(format!(
                "{wanted} names more than one loaded model; give the full id"
            )))
        }
    };
    let id = embedder.model_id().to_owned();
    let current = search.index.vectors();
    if current.model() == Some(id.as_str()) {
        return models(state, search).await; // already served
    }
    // Coverage as of every document event the index has seen (e.g. a
    // backfill that just ended): the read models must have applied them.
    let db = state.read_db().await?;
    state
        .wait_for_read_models(&db, search.index.applied())
        .await?;
    let before = models(state, search).await?;
    let covered = before
        .models
        .iter()
        .find(|m| m.model == id)
        .map_or(0, |m| m.chunks);
    if covered < before.indexed_chunks && !r.force {
        return Err(Status::failed_precondition(format!(
            "{id} has vectors for {covered} of {} indexed chunks: run `mnemo backfill embed` with that model first (or force the switch)",
            before.indexed_chunks
        )));
    }
    let index = mnemo_search::VectorIndex::with_config(embedder.dims(), *current.config())
        .for_model(id.clone());
    let loaded = search
        .index
        .switch_vectors(index)
        .await
        .map_err(|e| crate::status::from_search_error(&e))?;
    tracing::info!(model = %id, held_vectors = loaded, previous = ?current.model(), "search model switched");
    models(state, search).await
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn a_model_is_named_by_its_id_or_its_name_without_the_hash() {
        let id = "all-MiniLM-L6-v2-int8@0123456789ab";
        assert!(names(id, id));
        assert!(names(id, "all-MiniLM-L6-v2-int8"));
        // The fp32 model's name is a prefix of the int8 one's: not a match.
        assert!(!names(id, "all-MiniLM-L6-v2"));
        assert!(!names(id, "all-MiniLM"));
        assert!(names("all-MiniLM-L6-v2@0123456789ab", "all-MiniLM-L6-v2"));
        assert!(!names("all-MiniLM-L6-v2@0123456789ab", "all-MiniLM-L6-v2@"));
    }
}
