//! A learner's state folded from their events alone (pure): every card with
//! its latest schedule, topics with their documents, sessions, and the
//! reviews that study statistics come from.
//!
//! The same per-card, per-topic and per-session folds ([`CardView::apply`],
//! [`TopicView::apply`], [`SessionView::apply`]) feed the PostgreSQL read
//! model (`mnemo-projector`'s learning projection) and audit replay
//! (`mnemo replay learner`), so "rebuild from events and compare with the
//! read model" checks the projection's storage, ordering and exactly-once
//! writes rather than two copies of the rules.
//!
//! *As of an instant* means by recording time: the events whose envelope
//! `occurred_at` is at or before it — what mnemo knew then. A review's own
//! `at` may be earlier than its recording (a client that was offline).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::card::{CardContent, CardEvent};
use super::schedule::{CardState, Schedule};
use super::session::SessionEvent;
use super::stats::{ReviewFact, StudyStats};
use super::topic::TopicEvent;
use crate::ids::DocumentId;

/// A learning event with the id of the aggregate it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnerEvent {
    Card {
        card_id: Uuid,
        event: CardEvent,
    },
    Topic {
        topic_id: Uuid,
        event: TopicEvent,
    },
    Session {
        session_id: Uuid,
        event: SessionEvent,
    },
}

impl LearnerEvent {
    /// Reads one event from its kind (`card`, `topic`, `session`, the
    /// aggregate's subject token), id and JSON (`{"type", "data"}`).
    /// `Ok(None)`: a kind this fold does not know (e.g. questions).
    pub fn from_json(
        kind: &str,
        id: Uuid,
        json: serde_json::Value,
    ) -> Result<Option<Self>, serde_json::Error> {
        Ok(Some(match kind {
            "card" => Self::Card {
                card_id: id,
                event: serde_json::from_value(json)?,
            },
            "topic" => Self::Topic {
                topic_id: id,
                event: serde_json::from_value(json)?,
            },
            "session" => Self::Session {
                session_id: id,
                event: serde_json::from_value(json)?,
            },
            _ => return Ok(None),
        }))
    }
}

/// An event as recorded: stream sequence and recording time.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub sequence: u64,
    pub occurred_at: OffsetDateTime,
    pub event: LearnerEvent,
}

/// A card as a learner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardView {
    pub card_id: Uuid,
    pub content: CardContent,
    pub created_at: OffsetDateTime,
    pub schedule: Schedule,
    pub reviews: u32,
    pub suspended: bool,
    pub deleted: bool,
    /// Stream sequence of the card's last event.
    pub last_sequence: u64,
}

impl CardView {
    /// Folds one card event into `view` (None: the card does not exist
    /// yet); a review also comes back as the fact statistics count.
    pub fn apply(
        view: &mut Option<CardView>,
        card_id: Uuid,
        event: &CardEvent,
        sequence: u64,
    ) -> Option<ReviewFact> {
        use CardEvent as E;
        if let E::CardCreated { content, at, .. } = event {
            *view = Some(CardView {
                card_id,
                content: content.clone(),
                created_at: *at,
                schedule: Schedule::new_card(*at),
                reviews: 0,
                suspended: false,
                deleted: false,
                last_sequence: sequence,
            });
            return None;
        }
        // Anything else before a creation cannot come from the aggregate.
        let card = view.as_mut()?;
        card.last_sequence = sequence;
        match event {
            E::CardCreated { .. } => None,
            E::CardEdited { content } => {
                card.content = content.clone();
                None
            }
            E::CardSuspended => {
                card.suspended = true;
                None
            }
            E::CardResumed => {
                card.suspended = false;
                None
            }
            E::CardDeleted => {
                card.deleted = true;
                None
            }
            E::CardReviewed {
                review_id,
                rating,
                at,
                schedule,
            } => {
                let state_before = card.schedule.state;
                card.schedule = schedule.clone();
                card.reviews += 1;
                Some(ReviewFact {
                    card_id,
                    review_id: *review_id,
                    at: *at,
                    rating: *rating,
                    state_before,
                })
            }
        }
    }

    /// Active (not suspended or deleted) and due at `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        !self.suspended && !self.deleted && self.schedule.due <= now
    }
}

/// A topic and its documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub topic_id: Uuid,
    pub name: String,
    pub documents: BTreeSet<DocumentId>,
    pub last_sequence: u64,
}

impl TopicView {
    pub fn apply(view: &mut Option<TopicView>, topic_id: Uuid, event: &TopicEvent, sequence: u64) {
        if let TopicEvent::TopicCreated { name, .. } = event {
            *view = Some(TopicView {
                topic_id,
                name: name.clone(),
                documents: BTreeSet::new(),
                last_sequence: sequence,
            });
            return;
        }
        let Some(topic) = view.as_mut() else { return };
        topic.last_sequence = sequence;
        match event {
            TopicEvent::TopicCreated { .. } => {}
            TopicEvent::TopicRenamed { name } => topic.name = name.clone(),
            TopicEvent::DocumentAttached { document_id } => {
                topic.documents.insert(*document_id);
            }
            TopicEvent::DocumentDetached { document_id } => {
                topic.documents.remove(document_id);
            }
        }
    }
}

/// A study session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub session_id: Uuid,
    pub topic_id: Option<Uuid>,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub last_sequence: u64,
}

impl SessionView {
    pub fn apply(
        view: &mut Option<SessionView>,
        session_id: Uuid,
        event: &SessionEvent,
        sequence: u64,
    ) {
        match event {
            SessionEvent::SessionStarted { topic_id, at, .. } => {
                *view = Some(SessionView {
                    session_id,
                    topic_id: *topic_id,
                    started_at: *at,
                    ended_at: None,
                    last_sequence: sequence,
                });
            }
            SessionEvent::SessionEnded { at } => {
                if let Some(s) = view.as_mut() {
                    s.ended_at = Some(*at);
                    s.last_sequence = sequence;
                }
            }
        }
    }
}

/// Everything about a learner that their events determine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnerState {
    pub cards: BTreeMap<Uuid, CardView>,
    pub topics: BTreeMap<Uuid, TopicView>,
    pub sessions: BTreeMap<Uuid, SessionView>,
    pub reviews: Vec<ReviewFact>,
    /// Sequence of the last event folded (0: none).
    pub last_sequence: u64,
}

impl LearnerState {
    /// Folds the learner's events recorded at or before `as_of`, in stream
    /// order.
    pub fn as_of<'a>(
        events: impl IntoIterator<Item = &'a Recorded>,
        as_of: OffsetDateTime,
    ) -> Self {
        let mut events: Vec<&Recorded> = events
            .into_iter()
            .filter(|e| e.occurred_at <= as_of)
            .collect();
        events.sort_by_key(|e| e.sequence);
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }

    /// Folds one more event.
    pub fn apply(&mut self, recorded: &Recorded) {
        let seq = recorded.sequence;
        self.last_sequence = self.last_sequence.max(seq);
        match &recorded.event {
            LearnerEvent::Card { card_id, event } => {
                let mut view = self.cards.remove(card_id);
                if let Some(review) = CardView::apply(&mut view, *card_id, event, seq) {
                    self.reviews.push(review);
                }
                if let Some(v) = view {
                    self.cards.insert(*card_id, v);
                }
            }
            LearnerEvent::Topic { topic_id, event } => {
                let mut view = self.topics.remove(topic_id);
                TopicView::apply(&mut view, *topic_id, event, seq);
                if let Some(v) = view {
                    self.topics.insert(*topic_id, v);
                }
            }
            LearnerEvent::Session { session_id, event } => {
                let mut view = self.sessions.remove(session_id);
                SessionView::apply(&mut view, *session_id, event, seq);
                if let Some(v) = view {
                    self.sessions.insert(*session_id, v);
                }
            }
        }
    }

    /// The study statistics at `now`.
    pub fn stats(&self, now: OffsetDateTime) -> StudyStats {
        StudyStats::from_reviews(&self.reviews, now)
    }
}

/// How the rebuilt cards differ from the read model's, one line per
/// difference (empty: identical). Instants are compared to the microsecond,
/// PostgreSQL's precision.
pub fn card_differences(rebuilt: &BTreeMap<Uuid, CardView>, read: &[CardView]) -> Vec<String> {
    let mut out = Vec::new();
    let read: BTreeMap<Uuid, &CardView> = read.iter().map(|c| (c.card_id, c)).collect();
    for (id, a) in rebuilt {
        let Some(b) = read.get(id) else {
            out.push(format!(
                "card {id}: in the events, missing from the read model"
            ));
            continue;
        };
        for field in differing_fields(a, b) {
            out.push(format!("card {id}: {field} differs (events vs read model)"));
        }
    }
    for id in read.keys().filter(|id| !rebuilt.contains_key(id)) {
        out.push(format!("card {id}: in the read model, not in the events"));
    }
    out
}

/// How two sets of statistics differ (empty: identical).
pub fn stats_differences(rebuilt: &StudyStats, read: &StudyStats) -> Vec<String> {
    if rebuilt == read {
        return vec![];
    }
    vec![format!(
        "study stats differ: events {rebuilt:?}, read model {read:?}"
    )]
}

fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos().div_euclid(1000)
}

fn differing_fields(a: &CardView, b: &CardView) -> Vec<&'static str> {
    let (sa, sb) = (&a.schedule, &b.schedule);
    let state = |s: &Schedule| -> (CardState, Option<u32>) { (s.state, s.step) };
    [
        ("content", a.content == b.content),
        ("created_at", micros(a.created_at) == micros(b.created_at)),
        ("state/step", state(sa) == state(sb)),
        ("stability", sa.stability == sb.stability),
        ("difficulty", sa.difficulty == sb.difficulty),
        ("due", micros(sa.due) == micros(sb.due)),
        (
            "last_review",
            sa.last_review.map(micros) == sb.last_review.map(micros),
        ),
        ("reviews", a.reviews == b.reviews),
        ("suspended", a.suspended == b.suspended),
        ("deleted", a.deleted == b.deleted),
        ("last_sequence", a.last_sequence == b.last_sequence),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::learn::schedule::Rating;
    use crate::owner::OwnerId;

    fn card() -> Uuid {
        Uuid::from_u128(5)
    }

    fn content() -> CardContent {
        CardContent {
            deck: "bio".into(),
            front: "ATP?".into(),
            back: "Mitochondria".into(),
            source: None,
        }
    }

    fn schedule(state: CardState, at: OffsetDateTime, days: i64) -> Schedule {
        Schedule {
            state,
            step: (state != CardState::Review).then_some(0),
            stability: Some(days as f64),
            difficulty: Some(5.0),
            due: at + time::Duration::days(days),
            last_review: Some(at),
        }
    }

    fn rec(sequence: u64, occurred_at: OffsetDateTime, event: CardEvent) -> Recorded {
        Recorded {
            sequence,
            occurred_at,
            event: LearnerEvent::Card {
                card_id: card(),
                event,
            },
        }
    }

    fn history() -> Vec<Recorded> {
        let (t1, t2) = (
            datetime!(2026-11-02 10:00 UTC),
            datetime!(2026-11-05 10:00 UTC),
        );
        vec![
            rec(
                1,
                datetime!(2026-11-01 09:00 UTC),
                CardEvent::CardCreated {
                    card_id: card(),
                    owner: OwnerId::new("alice").unwrap(),
                    content: content(),
                    at: datetime!(2026-11-01 09:00 UTC),
                },
            ),
            rec(
                4,
                t1,
                CardEvent::CardReviewed {
                    review_id: Uuid::from_u128(1),
                    rating: Rating::Good,
                    at: t1,
                    schedule: schedule(CardState::Review, t1, 3),
                },
            ),
            rec(
                9,
                t2,
                CardEvent::CardReviewed {
                    review_id: Uuid::from_u128(2),
                    rating: Rating::Again,
                    at: t2,
                    schedule: schedule(CardState::Relearning, t2, 1),
                },
            ),
            rec(
                12,
                datetime!(2026-11-06 10:00 UTC),
                CardEvent::CardSuspended,
            ),
        ]
    }

    #[test]
    fn the_state_as_of_an_instant_has_the_schedule_of_then() {
        let events = history();
        let mid = LearnerState::as_of(&events, datetime!(2026-11-03 00:00 UTC));
        let c = &mid.cards[&card()];
        assert_eq!(c.schedule.state, CardState::Review);
        assert_eq!(c.schedule.due, datetime!(2026-11-05 10:00 UTC));
        assert_eq!((c.reviews, c.suspended, c.last_sequence), (1, false, 4));
        assert_eq!(mid.reviews.len(), 1);
        assert_eq!(mid.reviews[0].state_before, CardState::Learning);

        let now = LearnerState::as_of(events.iter().rev(), datetime!(2026-12-01 00:00 UTC));
        let c = &now.cards[&card()];
        assert_eq!(
            (c.schedule.state, c.reviews, c.suspended),
            (CardState::Relearning, 2, true)
        );
        assert_eq!(now.reviews[1].state_before, CardState::Review);
        let stats = now.stats(datetime!(2026-11-05 12:00 UTC));
        assert_eq!((stats.reviews, stats.retention), (2, Some(0.0)));
        assert_eq!(now.last_sequence, 12);

        let before = LearnerState::as_of(&events, datetime!(2026-10-01 00:00 UTC));
        assert!(before.cards.is_empty() && before.reviews.is_empty());
    }

    #[test]
    fn differences_name_the_fields_and_ignore_nanoseconds() {
        let events = history();
        let state = LearnerState::as_of(&events, datetime!(2026-12-01 00:00 UTC));
        let mut read: Vec<CardView> = state.cards.values().cloned().collect();
        assert!(card_differences(&state.cards, &read).is_empty());
        read[0].schedule.due += time::Duration::nanoseconds(300);
        assert!(card_differences(&state.cards, &read).is_empty());
        read[0].schedule.stability = Some(2.5);
        read[0].suspended = false;
        assert_eq!(
            card_differences(&state.cards, &read),
            vec![
                format!("card {}: stability differs (events vs read model)", card()),
                format!("card {}: suspended differs (events vs read model)", card()),
            ]
        );
        assert_eq!(card_differences(&state.cards, &[]).len(), 1);
        assert_eq!(card_differences(&BTreeMap::new(), &read).len(), 1);
    }

    #[test]
    fn events_read_from_json_by_kind() {
        let json = serde_json::json!({"type": "CardSuspended"});
        let e = LearnerEvent::from_json("card", card(), json.clone()).unwrap();
        assert_eq!(
            e,
            Some(LearnerEvent::Card {
                card_id: card(),
                event: CardEvent::CardSuspended
            })
        );
        assert_eq!(
            LearnerEvent::from_json("question", card(), json).unwrap(),
            None
        );
        assert!(
            LearnerEvent::from_json("topic", card(), serde_json::json!({"type": "Nope"})).is_err()
        );
    }
}
