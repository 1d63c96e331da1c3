//! Learning types onto the wire and back (the CLI and tests read cards
//! from the wire into the domain's `CardView` to compare them with a
//! replay).

use mnemo_domain::learn::card::{CardContent, CardSource};
use mnemo_domain::learn::{CardState, CardView, Schedule, StudyStats};
use mnemo_proto::v1 as pb;
use time::OffsetDateTime;

use crate::convert::timestamp;

pub fn schedule(s: &Schedule) -> pb::LearningSchedule {
    pb::LearningSchedule {
        state: s.state.name().to_owned(),
        step: s.step,
        stability: s.stability,
        difficulty: s.difficulty,
        due: Some(timestamp(s.due)),
        last_review: s.last_review.map(timestamp),
    }
}

pub fn source(s: &CardSource) -> pb::LearningCardSource {
    pb::LearningCardSource {
        document_id: s.document_id.to_string(),
        chunk_id: s.chunk_id.clone(),
        page: s.page,
    }
}

pub fn card(c: &CardView) -> pb::LearningCard {
    pb::LearningCard {
        card_id: c.card_id.to_string(),
        deck: c.content.deck.clone(),
        front: c.content.front.clone(),
        back: c.content.back.clone(),
        source: c.content.source.as_ref().map(source),
        created_at: Some(timestamp(c.created_at)),
        schedule: Some(schedule(&c.schedule)),
        reviews: c.reviews,
        suspended: c.suspended,
        deleted: c.deleted,
        last_sequence: c.last_sequence,
    }
}

pub fn stats(s: &StudyStats, sequence: u64) -> pb::StudyStatsResponse {
    pb::StudyStatsResponse {
        reviews: s.reviews,
        review_state_reviews: s.review_state_reviews,
        review_state_recalled: s.review_state_recalled,
        retention: s.retention,
        reviews_per_day: s.reviews_per_day,
        days_studied: s.days_studied,
        current_streak_days: s.current_streak_days,
        reviews_today: s.reviews_today,
        sequence,
    }
}

/// Why a wire card could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("card from the API: {0}")]
pub struct WireError(String);

fn instant(t: Option<&prost_types::Timestamp>, what: &str) -> Result<OffsetDateTime, WireError> {
    let t = t.ok_or_else(|| WireError(format!("{what} missing")))?;
    OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
    )
    .map_err(|e| WireError(format!("{what}: {e}")))
}

pub fn state_from_wire(name: &str) -> Result<CardState, WireError> {
    match name {
        "learning" => Ok(CardState::Learning),
        "review" => Ok(CardState::Review),
        "relearning" => Ok(CardState::Relearning),
        other => Err(WireError(format!("unknown state '{other}'"))),
    }
}

pub fn schedule_from_wire(s: &pb::LearningSchedule) -> Result<Schedule, WireError> {
    Ok(Schedule {
        state: state_from_wire(&s.state)?,
        step: s.step,
        stability: s.stability,
        difficulty: s.difficulty,
        due: instant(s.due.as_ref(), "due")?,
        last_review: match &s.last_review {
            Some(t) => Some(instant(Some(t), "last_review")?),
            None => None,
        },
    })
}

pub fn card_from_wire(c: &pb::LearningCard) -> Result<CardView, WireError> {
    let source = match &c.source {
        Some(s) => Some(CardSource {
            document_id: s
                .document_id
                .parse()
                .map_err(|e| WireError(format!("{e}")))?,
            chunk_id: s.chunk_id.clone(),
            page: s.page,
        }),
        None => None,
    };
    Ok(CardView {
        card_id: uuid::Uuid::parse_str(&c.card_id).map_err(|e| WireError(e.to_string()))?,
        content: CardContent {
            deck: c.deck.clone(),
            front: c.front.clone(),
            back: c.back.clone(),
            source,
        },
        created_at: instant(c.created_at.as_ref(), "created_at")?,
        schedule: schedule_from_wire(
            c.schedule
                .as_ref()
                .ok_or_else(|| WireError("schedule missing".into()))?,
        )?,
        reviews: c.reviews,
        suspended: c.suspended,
        deleted: c.deleted,
        last_sequence: c.last_sequence,
    })
}

pub fn stats_from_wire(s: &pb::StudyStatsResponse) -> StudyStats {
    StudyStats {
        reviews: s.reviews,
        review_state_reviews: s.review_state_reviews,
        review_state_recalled: s.review_state_recalled,
        retention: s.retention,
        reviews_per_day: s.reviews_per_day,
        days_studied: s.days_studied,
        current_streak_days: s.current_streak_days,
        reviews_today: s.reviews_today,
    }
}

/// One replayed event back into the learner fold's input (`Ok(None)`: a
/// kind the fold does not know, e.g. questions).
pub fn recorded_from_wire(
    e: &pb::LearningHistoryEvent,
) -> Result<Option<mnemo_domain::learn::Recorded>, WireError> {
    let id = uuid::Uuid::parse_str(&e.aggregate_id).map_err(|e| WireError(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&e.payload_json)
        .map_err(|err| WireError(format!("event {}: {err}", e.sequence)))?;
    let event = mnemo_domain::learn::LearnerEvent::from_json(&e.aggregate_type, id, json)
        .map_err(|err| WireError(format!("event {}: {err}", e.sequence)))?;
    Ok(match event {
        Some(event) => Some(mnemo_domain::learn::Recorded {
            sequence: e.sequence,
            occurred_at: instant(e.occurred_at.as_ref(), "occurred_at")?,
            event,
        }),
        None => None,
    })
}
