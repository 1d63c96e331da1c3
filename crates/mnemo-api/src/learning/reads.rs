//! Reads from the learning read model: ListCards, DueCards, StudyStats.
//! Each waits (bounded) for `min_sequence` on the learning checkpoint, so a
//! client reads its own writes.

use std::sync::Arc;

use mnemo_domain::learn::StudyStats;
use mnemo_projector::learning::{self as learning_model, queries};
use mnemo_proto::v1 as pb;
use tokio_postgres::Client;
use tonic::{Request, Status};

use super::{convert, input};
use crate::auth::caller;
use crate::server::ApiState;
use crate::status;

/// Most cards per call.
pub const MAX_CARDS: u32 = 10_000;

fn limit(raw: u32, default: u32) -> i64 {
    i64::from(if raw == 0 {
        default
    } else {
        raw.min(MAX_CARDS)
    })
}

/// A read-model client once the learning checkpoint is at `min_sequence`
/// (0: no wait), and the checkpoint.
async fn read_at(state: &ApiState, min_sequence: u64) -> Result<(Arc<Client>, u64), Status> {
    let db = state.read_db().await?;
    let ns = &state.bus.namespace;
    let at = if min_sequence > 0 {
        learning_model::wait_for(&*db, ns, min_sequence, state.config.max_consistency_wait).await
    } else {
        learning_model::checkpoint(&*db, ns).await
    }
    .map_err(|e| status::from_db_error(&e))?;
    if at < min_sequence {
        // As every other `min_sequence` wait: retryable.
        return Err(Status::unavailable(format!(
            "the learning read model is at sequence {at}, not yet {min_sequence}; retry shortly \
             (is the projector running?)"
        )));
    }
    Ok((db, at))
}

pub async fn list_cards(
    state: &ApiState,
    req: Request<pb::ListCardsRequest>,
) -> Result<pb::ListCardsResponse, Status> {
    let who = caller(&req)?;
    let metadata = crate::documents::command_metadata(&req, None);
    let r = req.into_inner();
    let owner = input::target_owner(&who, &r.owner)?;
    state
        .access
        .record(&who, &owner, "ListCards", &metadata)
        .await?;
    let (db, sequence) = read_at(state, r.min_sequence).await?;
    let cards = queries::cards(
        &*db,
        &owner.token(),
        r.include_deleted,
        limit(r.limit, MAX_CARDS),
    )
    .await
    .map_err(|e| status::from_db_error(&e))?;
    Ok(pb::ListCardsResponse {
        cards: cards.iter().map(convert::card).collect(),
        sequence,
    })
}

pub async fn due_cards(
    state: &ApiState,
    req: Request<pb::DueCardsRequest>,
) -> Result<pb::ListCardsResponse, Status> {
    let who = caller(&req)?;
    let r = req.into_inner();
    let now = input::instant(r.now.as_ref(), "now")?;
    let (db, sequence) = read_at(state, r.min_sequence).await?;
    let cards = queries::due_cards(&*db, &who.owner.token(), now, limit(r.limit, 100))
        .await
        .map_err(|e| status::from_db_error(&e))?;
    Ok(pb::ListCardsResponse {
        cards: cards.iter().map(convert::card).collect(),
        sequence,
    })
}

pub async fn study_stats(
    state: &ApiState,
    req: Request<pb::StudyStatsRequest>,
) -> Result<pb::StudyStatsResponse, Status> {
    let who = caller(&req)?;
    let metadata = crate::documents::command_metadata(&req, None);
    let r = req.into_inner();
    let owner = input::target_owner(&who, &r.owner)?;
    state
        .access
        .record(&who, &owner, "StudyStats", &metadata)
        .await?;
    let now = input::instant(r.now.as_ref(), "now")?;
    let (db, sequence) = read_at(state, r.min_sequence).await?;
    let reviews = queries::reviews(&*db, &owner.token())
        .await
        .map_err(|e| status::from_db_error(&e))?;
    Ok(convert::stats(
        &StudyStats::from_reviews(&reviews, now),
        sequence,
    ))
}
