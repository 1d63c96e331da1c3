//! Loading and writing the learning rows a batch touches: the rows are
//! loaded once, every event of the batch is folded into them in stream
//! order (the domain's folds), and each changed row is written once.

use std::collections::{BTreeMap, BTreeSet};

use mnemo_domain::learn::card::{CardContent, CardSource};
use mnemo_domain::learn::{
    CardState, CardView, LearnerEvent, Rating, ReviewFact, Schedule, SessionView, TopicView,
};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use super::LearningMessage;
use crate::ProjectorError;

/// A row key: (owner token, id).
type Key = (String, Uuid);

/// Columns of `learning_cards`, in the order [`card_from_row`] reads them.
pub(crate) const CARD_COLUMNS: &str = "card_id, deck, front, back, source_document_id, source_chunk_id, source_page,
     created_at, state, step, stability, difficulty, due, last_review, reviews, suspended, deleted, last_sequence";

pub(crate) fn state_from_name(name: &str) -> CardState {
    match name {
        "review" => CardState::Review,
        "relearning" => CardState::Relearning,
        _ => CardState::Learning,
    }
}

pub(crate) fn card_from_row(r: &Row) -> CardView {
    let source = match (
        r.get::<_, Option<Uuid>>(4),
        r.get::<_, Option<String>>(5),
        r.get::<_, Option<i32>>(6),
    ) {
        (Some(doc), Some(chunk_id), Some(page)) => Some(CardSource {
            document_id: doc.into(),
            chunk_id,
            page: page.max(0) as u32,
        }),
        _ => None,
    };
    CardView {
        card_id: r.get(0),
        content: CardContent {
            deck: r.get(1),
            front: r.get(2),
            back: r.get(3),
            source,
        },
        created_at: r.get(7),
        schedule: Schedule {
            state: state_from_name(r.get(8)),
            step: r.get::<_, Option<i32>>(9).map(|s| s.max(0) as u32),
            stability: r.get(10),
            difficulty: r.get(11),
            due: r.get(12),
            last_review: r.get(13),
        },
        reviews: r.get::<_, i32>(14).max(0) as u32,
        suspended: r.get(15),
        deleted: r.get(16),
        last_sequence: r.get::<_, i64>(17) as u64,
    }
}

pub(crate) fn review_from_row(r: &Row) -> ReviewFact {
    ReviewFact {
        card_id: r.get(0),
        review_id: r.get(1),
        at: r.get(2),
        rating: Rating::from_number(r.get::<_, i16>(3) as u8).unwrap_or(Rating::Again),
        state_before: state_from_name(r.get(4)),
    }
}

fn split(keys: &BTreeSet<Key>) -> (Vec<String>, Vec<Uuid>) {
    keys.iter().cloned().unzip()
}

/// Folds `messages` (in stream order, all above the checkpoint) into the
/// learning tables; returns the number of events folded.
pub async fn fold_and_flush(
    tx: &impl GenericClient,
    messages: &[&LearningMessage],
) -> Result<u64, ProjectorError> {
    // Tombstones fold nothing; a `LearnerErased` deletes its owner's rows
    // once the batch's other writes are in (log order, as in `batch`).
    let erased: BTreeSet<&str> = messages
        .iter()
        .filter(|m| m.erased == Some(true))
        .map(|m| m.owner_token.as_str())
        .collect();
    let messages: Vec<&LearningMessage> = messages
        .iter()
        .copied()
        .filter(|m| m.erased.is_none())
        .collect();
    let events = fold_events(tx, &messages).await?;
    for owner in erased {
        for table in [
            "learning_reviews",
            "learning_cards",
            "learning_topic_documents",
            "learning_topics",
            "learning_sessions",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE owner_token = $1"),
                &[&owner],
            )
            .await?;
        }
        tracing::info!(owner, "an erased learner's learning rows deleted");
    }
    Ok(events)
}

async fn fold_events(
    tx: &impl GenericClient,
    messages: &[&LearningMessage],
) -> Result<u64, ProjectorError> {
    let mut card_keys = BTreeSet::new();
    let mut topic_keys = BTreeSet::new();
    let mut session_keys = BTreeSet::new();
    for m in messages {
        let key = (m.owner_token.clone(), m.id);
        match m.kind.as_str() {
            "card" => card_keys.insert(key),
            "topic" => topic_keys.insert(key),
            "session" => session_keys.insert(key),
            _ => false,
        };
    }
    let mut cards = load_cards(tx, &card_keys).await?;
    let mut topics = load_topics(tx, &topic_keys).await?;
    let mut sessions = load_sessions(tx, &session_keys).await?;
    let mut reviews: Vec<(String, ReviewFact, String, u64)> = Vec::new();
    let mut events = 0;
    for m in messages {
        let key = (m.owner_token.clone(), m.id);
        let span = tracing::debug_span!("project_learning", event_id = %m.envelope.event_id, aggregate = %m.envelope.aggregate_id, seq = m.sequence);
        let _e = span.enter();
        for e in m.events.iter().filter_map(|e| e.event.as_ref()) {
            events += 1;
            match e {
                LearnerEvent::Card { card_id, event } => {
                    let view = cards.entry(key.clone()).or_default();
                    if let Some(r) = CardView::apply(view, *card_id, event, m.sequence) {
                        let after = view
                            .as_ref()
                            .map(|c| c.schedule.state.name())
                            .unwrap_or("learning")
                            .to_owned();
                        reviews.push((m.owner_token.clone(), r, after, m.sequence));
                    }
                }
                LearnerEvent::Topic { topic_id, event } => {
                    TopicView::apply(
                        topics.entry(key.clone()).or_default(),
                        *topic_id,
                        event,
                        m.sequence,
                    );
                }
                LearnerEvent::Session { session_id, event } => {
                    SessionView::apply(
                        sessions.entry(key.clone()).or_default(),
                        *session_id,
                        event,
                        m.sequence,
                    );
                }
            }
        }
    }
    write_cards(tx, &cards).await?;
    for (owner, r, after, seq) in &reviews {
        tx.execute(
            "INSERT INTO learning_reviews (owner_token, card_id, review_id, reviewed_at, rating, state_before, state_after, sequence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                owner,
                &r.card_id,
                &r.review_id,
                &r.at,
                &(r.rating.number() as i16),
                &r.state_before.name(),
                after,
                &(*seq as i64),
            ],
        )
        .await?;
    }
    write_topics(tx, &topics).await?;
    write_sessions(tx, &sessions).await?;
    Ok(events)
}

async fn load_cards(
    tx: &impl GenericClient,
    keys: &BTreeSet<Key>,
) -> Result<BTreeMap<Key, Option<CardView>>, ProjectorError> {
    let mut out: BTreeMap<Key, Option<CardView>> = keys.iter().map(|k| (k.clone(), None)).collect();
    if keys.is_empty() {
        return Ok(out);
    }
    let (owners, ids) = split(keys);
    let rows = tx
        .query(
            &format!(
                "SELECT {CARD_COLUMNS}, owner_token FROM learning_cards
                  WHERE (owner_token, card_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))"
            ),
            &[&owners, &ids],
        )
        .await?;
    for r in &rows {
        let owner: String = r.get(18);
        let card = card_from_row(r);
        out.insert((owner, card.card_id), Some(card));
    }
    Ok(out)
}

async fn write_cards(
    tx: &impl GenericClient,
    cards: &BTreeMap<Key, Option<CardView>>,
) -> Result<(), ProjectorError> {
    for ((owner, _), card) in cards {
        let Some(c) = card else { continue };
        let source = c.content.source.as_ref();
        tx.execute(
            &format!(
                "INSERT INTO learning_cards (owner_token, {CARD_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
                 ON CONFLICT (owner_token, card_id) DO UPDATE SET
                   deck = EXCLUDED.deck, front = EXCLUDED.front, back = EXCLUDED.back,
                   source_document_id = EXCLUDED.source_document_id, source_chunk_id = EXCLUDED.source_chunk_id,
                   source_page = EXCLUDED.source_page, created_at = EXCLUDED.created_at, state = EXCLUDED.state,
                   step = EXCLUDED.step, stability = EXCLUDED.stability, difficulty = EXCLUDED.difficulty,
                   due = EXCLUDED.due, last_review = EXCLUDED.last_review, reviews = EXCLUDED.reviews,
                   suspended = EXCLUDED.suspended, deleted = EXCLUDED.deleted, last_sequence = EXCLUDED.last_sequence"
            ),
            &[
                owner,
                &c.card_id,
                &c.content.deck,
                &c.content.front,
                &c.content.back,
                &source.map(|s| s.document_id.as_uuid()),
                &source.map(|s| s.chunk_id.clone()),
                &source.map(|s| s.page as i32),
                &c.created_at,
                &c.schedule.state.name(),
                &c.schedule.step.map(|s| s as i32),
                &c.schedule.stability,
                &c.schedule.difficulty,
                &c.schedule.due,
                &c.schedule.last_review,
                &(c.reviews as i32),
                &c.suspended,
                &c.deleted,
                &(c.last_sequence as i64),
            ],
        )
        .await?;
    }
    Ok(())
}

async fn load_topics(
    tx: &impl GenericClient,
    keys: &BTreeSet<Key>,
) -> Result<BTreeMap<Key, Option<TopicView>>, ProjectorError> {
    let mut out: BTreeMap<Key, Option<TopicView>> =
        keys.iter().map(|k| (k.clone(), None)).collect();
    if keys.is_empty() {
        return Ok(out);
    }
    let (owners, ids) = split(keys);
    let rows = tx
        .query(
            "SELECT t.owner_token, t.topic_id, t.name, t.last_sequence,
                    coalesce(array_agg(d.document_id) FILTER (WHERE d.document_id IS NOT NULL), '{}')
               FROM learning_topics t
               LEFT JOIN learning_topic_documents d USING (owner_token, topic_id)
              WHERE (t.owner_token, t.topic_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
              GROUP BY t.owner_token, t.topic_id",
            &[&owners, &ids],
        )
        .await?;
    for r in &rows {
        let docs: Vec<Uuid> = r.get(4);
        let topic = TopicView {
            topic_id: r.get(1),
            name: r.get(2),
            last_sequence: r.get::<_, i64>(3) as u64,
            documents: docs.into_iter().map(Into::into).collect(),
        };
        out.insert((r.get(0), topic.topic_id), Some(topic));
    }
    Ok(out)
}

async fn write_topics(
    tx: &impl GenericClient,
    topics: &BTreeMap<Key, Option<TopicView>>,
) -> Result<(), ProjectorError> {
    for ((owner, id), topic) in topics {
        let Some(t) = topic else { continue };
        tx.execute(
            "INSERT INTO learning_topics (owner_token, topic_id, name, last_sequence) VALUES ($1, $2, $3, $4)
             ON CONFLICT (owner_token, topic_id) DO UPDATE SET name = EXCLUDED.name, last_sequence = EXCLUDED.last_sequence",
            &[owner, id, &t.name, &(t.last_sequence as i64)],
        )
        .await?;
        let docs: Vec<Uuid> = t.documents.iter().map(|d| d.as_uuid()).collect();
        tx.execute(
            "DELETE FROM learning_topic_documents WHERE owner_token = $1 AND topic_id = $2 AND document_id <> ALL($3)",
            &[owner, id, &docs],
        )
        .await?;
        tx.execute(
            "INSERT INTO learning_topic_documents (owner_token, topic_id, document_id)
             SELECT $1::text, $2::uuid, unnest($3::uuid[]) ON CONFLICT DO NOTHING",
            &[owner, id, &docs],
        )
        .await?;
    }
    Ok(())
}

async fn load_sessions(
    tx: &impl GenericClient,
    keys: &BTreeSet<Key>,
) -> Result<BTreeMap<Key, Option<SessionView>>, ProjectorError> {
    let mut out: BTreeMap<Key, Option<SessionView>> =
        keys.iter().map(|k| (k.clone(), None)).collect();
    if keys.is_empty() {
        return Ok(out);
    }
    let (owners, ids) = split(keys);
    let rows = tx
        .query(
            "SELECT owner_token, session_id, topic_id, started_at, ended_at, last_sequence FROM learning_sessions
              WHERE (owner_token, session_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))",
            &[&owners, &ids],
        )
        .await?;
    for r in &rows {
        let s = SessionView {
            session_id: r.get(1),
            topic_id: r.get(2),
            started_at: r.get(3),
            ended_at: r.get(4),
            last_sequence: r.get::<_, i64>(5) as u64,
        };
        out.insert((r.get(0), s.session_id), Some(s));
    }
    Ok(out)
}

async fn write_sessions(
    tx: &impl GenericClient,
    sessions: &BTreeMap<Key, Option<SessionView>>,
) -> Result<(), ProjectorError> {
    for ((owner, id), session) in sessions {
        let Some(s) = session else { continue };
        tx.execute(
            "INSERT INTO learning_sessions (owner_token, session_id, topic_id, started_at, ended_at, last_sequence)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (owner_token, session_id) DO UPDATE SET topic_id = EXCLUDED.topic_id,
               started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, last_sequence = EXCLUDED.last_sequence",
            &[owner, id, &s.topic_id, &s.started_at, &s.ended_at, &(s.last_sequence as i64)],
        )
        .await?;
    }
    Ok(())
}
