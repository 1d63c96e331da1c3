//! What the API reads from the learning read model. Every query is scoped
//! to one owner token.

use mnemo_domain::learn::{CardView, ReviewFact, TopicView};
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::store::{card_from_row, review_from_row, CARD_COLUMNS};
use crate::ProjectorError;

/// An owner's cards, oldest first (deleted ones only when asked).
pub async fn cards(
    client: &impl GenericClient,
    owner_token: &str,
    include_deleted: bool,
    limit: i64,
) -> Result<Vec<CardView>, ProjectorError> {
    let rows = client
        .query(
            &format!(
                "SELECT {CARD_COLUMNS} FROM learning_cards
                  WHERE owner_token = $1 AND ($2 OR NOT deleted)
                  ORDER BY created_at, card_id LIMIT $3"
            ),
            &[&owner_token, &include_deleted, &limit],
        )
        .await?;
    Ok(rows.iter().map(card_from_row).collect())
}

/// An owner's active cards due at `now`, most overdue first.
pub async fn due_cards(
    client: &impl GenericClient,
    owner_token: &str,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<CardView>, ProjectorError> {
    let rows = client
        .query(
            &format!(
                "SELECT {CARD_COLUMNS} FROM learning_cards
                  WHERE owner_token = $1 AND NOT suspended AND NOT deleted AND due <= $2
                  ORDER BY due, card_id LIMIT $3"
            ),
            &[&owner_token, &now, &limit],
        )
        .await?;
    Ok(rows.iter().map(card_from_row).collect())
}

/// One card of an owner.
pub async fn card(
    client: &impl GenericClient,
    owner_token: &str,
    card_id: Uuid,
) -> Result<Option<CardView>, ProjectorError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {CARD_COLUMNS} FROM learning_cards WHERE owner_token = $1 AND card_id = $2"
            ),
            &[&owner_token, &card_id],
        )
        .await?;
    Ok(row.as_ref().map(card_from_row))
}

/// Every review of an owner (for study statistics).
pub async fn reviews(
    client: &impl GenericClient,
    owner_token: &str,
) -> Result<Vec<ReviewFact>, ProjectorError> {
    let rows = client
        .query(
            "SELECT card_id, review_id, reviewed_at, rating, state_before FROM learning_reviews
              WHERE owner_token = $1 ORDER BY sequence",
            &[&owner_token],
        )
        .await?;
    Ok(rows.iter().map(review_from_row).collect())
}

/// An owner's topics with their documents, by name.
pub async fn topics(
    client: &impl GenericClient,
    owner_token: &str,
) -> Result<Vec<TopicView>, ProjectorError> {
    let rows = client
        .query(
            "SELECT t.topic_id, t.name, t.last_sequence,
                    coalesce(array_agg(d.document_id ORDER BY d.document_id) FILTER (WHERE d.document_id IS NOT NULL), '{}')
               FROM learning_topics t
               LEFT JOIN learning_topic_documents d USING (owner_token, topic_id)
              WHERE t.owner_token = $1
              GROUP BY t.topic_id, t.name, t.last_sequence
              ORDER BY t.name, t.topic_id",
            &[&owner_token],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TopicView {
            topic_id: r.get(0),
            name: r.get(1),
            last_sequence: r.get::<_, i64>(2) as u64,
            documents: r
                .get::<_, Vec<Uuid>>(3)
                .into_iter()
                .map(Into::into)
                .collect(),
        })
        .collect())
}
