//! The card aggregate: one flashcard and every review of it.
//!
//! Rules (tests below, given/when/then):
//! - a card is created once; edits, suspends and deletes need it to exist
//!   and not be deleted;
//! - a new card is learning at step 0 and due at once (py-fsrs 6's fresh
//!   card; see [`Schedule::new_card`]);
//! - a review needs an active card (not suspended, not deleted) and a
//!   rating 1..=4; its schedule comes from the [`Scheduler`] (FSRS-6 in
//!   production, [`crate::learn::fsrs`]) and is recorded in the event;
//! - reviews are idempotent by `review_id`: the same submission again
//!   appends nothing; a review *older* than the card's last one is refused
//!   (`StaleReview`), so a late retry can never double-count or rewrite the
//!   schedule.

use std::collections::BTreeSet;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::LearnError;
use super::schedule::{Rating, Schedule, Scheduler};
use crate::ids::DocumentId;
use crate::owner::OwnerId;

/// Where a card's content comes from, for citations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSource {
    pub document_id: DocumentId,
    pub chunk_id: String,
    pub page: u32,
}

/// What a card asks and answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardContent {
    pub deck: String,
    pub front: String,
    pub back: String,
    pub source: Option<CardSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CardCommand {
    Create {
        card_id: Uuid,
        owner: OwnerId,
        content: CardContent,
        at: OffsetDateTime,
    },
    Edit {
        content: CardContent,
    },
    Suspend,
    Resume,
    Delete,
    Review {
        review_id: Uuid,
        rating: u8,
        at: OffsetDateTime,
    },
}

/// Everything that can happen to a card, on
/// `<ns>.ev.learn.<owner token>.card.<card id>`.
///
/// Each variant says who emits it (the API service and the [`CardCommand`])
/// and who consumes it. Every card event is consumed by the learning
/// runner (`mnemo-projector`'s learning projection, also rebuilt by
/// `mnemo projections rebuild learning`) and by audit replay
/// (`AuditService.ReplayLearningHistory` streams it; `mnemo replay learner`
/// folds it), both through [`CardView::apply`](super::learner::CardView::apply).
/// docs/events.md is the same catalogue with payloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CardEvent {
    /// Emitted by the API: `LearningService.CreateCard`, and
    /// `QaService.GenerateCards` for each generated card (id: UUIDv5 of
    /// owner, document, deck, front and back, so generating again appends
    /// nothing), both through `Create`.
    /// Consumed by the learning runner (a `learning_cards` row, learning at
    /// step 0 and due at once) and audit replay.
    CardCreated {
        card_id: Uuid,
        owner: OwnerId,
        content: CardContent,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Emitted by the API (`LearningService.EditCard` → `Edit`).
    /// Consumed by the learning runner (the row's content) and audit replay.
    CardEdited { content: CardContent },
    /// Emitted by the API (`LearningService.SuspendCard` → `Suspend`).
    /// Consumed by the learning runner (suspended: no longer due) and audit
    /// replay.
    CardSuspended,
    /// Emitted by the API (`LearningService.ResumeCard` → `Resume`).
    /// Consumed by the learning runner (due again by its schedule) and
    /// audit replay.
    CardResumed,
    /// Emitted by the API (`LearningService.DeleteCard` → `Delete`).
    /// Consumed by the learning runner (the row is kept, marked deleted)
    /// and audit replay.
    CardDeleted,
    /// A review and the schedule it produced. Emitted by the API
    /// (`LearningService.SubmitReview` → `Review`; the schedule is FSRS-6's
    /// at the review, so no consumer runs the scheduler again).
    /// Consumed by the learning runner (the card's schedule and due; a
    /// `learning_reviews` row, which `StudyStats` counts) and audit replay
    /// (the schedule, and the review for the replayed stats).
    CardReviewed {
        review_id: Uuid,
        rating: Rating,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        schedule: Schedule,
    },
}

impl CardEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CardCreated { .. } => "CardCreated",
            Self::CardEdited { .. } => "CardEdited",
            Self::CardSuspended => "CardSuspended",
            Self::CardResumed => "CardResumed",
            Self::CardDeleted => "CardDeleted",
            Self::CardReviewed { .. } => "CardReviewed",
        }
    }
}

impl DomainEvent for CardEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl crate::schema::Upcast for CardEvent {
    fn upcasters() -> &'static [Box<dyn cqrs_es::persist::EventUpcaster>] {
        &[]
    }
}

/// What the card aggregate needs from outside: the scheduling algorithm.
#[derive(Clone)]
pub struct CardServices {
    pub scheduler: Arc<dyn Scheduler>,
}

/// A card as its events describe it. `Default` is "does not exist yet".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: Option<Uuid>,
    pub owner: Option<OwnerId>,
    pub content: Option<CardContent>,
    pub suspended: bool,
    pub deleted: bool,
    pub schedule: Option<Schedule>,
    pub reviews: u32,
    /// When the card was created (its `CardCreated`'s instant).
    #[serde(default)]
    pub created_at: Option<OffsetDateTime>,
    /// Review ids already recorded (idempotent submissions).
    pub review_ids: BTreeSet<Uuid>,
}

impl Card {
    fn existing(&self) -> Result<(), LearnError> {
        if self.id.is_none() {
            return Err(LearnError::NotFound("card"));
        }
        if self.deleted {
            return Err(LearnError::FailedPrecondition(
                "the card was deleted".into(),
            ));
        }
        Ok(())
    }

    /// Decides which events a command appends (pure).
    pub fn decide(
        &self,
        command: CardCommand,
        scheduler: &dyn Scheduler,
    ) -> Result<Vec<CardEvent>, LearnError> {
        use CardCommand as C;
        use CardEvent as E;
        match command {
            C::Create {
                card_id,
                owner,
                content,
                at,
            } => {
                if self.id.is_some() {
                    return if self.id == Some(card_id) && self.content.as_ref() == Some(&content) {
                        Ok(vec![]) // a repeated create
                    } else {
                        Err(LearnError::AlreadyExists("card"))
                    };
                }
                validate(&content)?;
                Ok(vec![E::CardCreated {
                    card_id,
                    owner,
                    content,
                    at,
                }])
            }
            C::Edit { content } => {
                self.existing()?;
                validate(&content)?;
                if self.content.as_ref() == Some(&content) {
                    return Ok(vec![]);
                }
                Ok(vec![E::CardEdited { content }])
            }
            C::Suspend => {
                self.existing()?;
                Ok(if self.suspended {
                    vec![]
                } else {
                    vec![E::CardSuspended]
                })
            }
            C::Resume => {
                self.existing()?;
                Ok(if self.suspended {
                    vec![E::CardResumed]
                } else {
                    vec![]
                })
            }
            C::Delete => {
                if self.id.is_none() {
                    return Err(LearnError::NotFound("card"));
                }
                Ok(if self.deleted {
                    vec![]
                } else {
                    vec![E::CardDeleted]
                })
            }
            C::Review {
                review_id,
                rating,
                at,
            } => {
                self.existing()?;
                if self.review_ids.contains(&review_id) {
                    return Ok(vec![]); // the same submission again
                }
                if self.suspended {
                    return Err(LearnError::FailedPrecondition(
                        "the card is suspended".into(),
                    ));
                }
                let rating = Rating::from_number(rating).ok_or_else(|| {
                    LearnError::InvalidInput(format!("rating must be 1..=4, got {rating}"))
                })?;
                let before = self.schedule.clone().ok_or(LearnError::NotFound("card"))?;
                if let Some(last) = before.last_review {
                    if at < last {
                        return Err(LearnError::StaleReview {
                            last: last.to_string(),
                            at: at.to_string(),
                        });
                    }
                }
                let schedule = scheduler.review(&before, rating, at);
                Ok(vec![E::CardReviewed {
                    review_id,
                    rating,
                    at,
                    schedule,
                }])
            }
        }
    }
}

fn validate(content: &CardContent) -> Result<(), LearnError> {
    if content.front.trim().is_empty() || content.back.trim().is_empty() {
        return Err(LearnError::InvalidInput(
            "a card needs a front and a back".into(),
        ));
    }
    if content.deck.trim().is_empty() {
        return Err(LearnError::InvalidInput("a card needs a deck".into()));
    }
    Ok(())
}

impl Aggregate for Card {
    const TYPE: &'static str = "card";
    type Command = CardCommand;
    type Event = CardEvent;
    type Error = LearnError;
    type Services = CardServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services.scheduler.as_ref())? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use CardEvent as E;
        match event {
            E::CardCreated {
                card_id,
                owner,
                content,
                at,
            } => {
                self.id = Some(card_id);
                self.owner = Some(owner);
                self.content = Some(content);
                self.created_at = Some(at);
                self.schedule = Some(Schedule::new_card(at));
            }
            E::CardEdited { content } => self.content = Some(content),
            E::CardSuspended => self.suspended = true,
            E::CardResumed => self.suspended = false,
            E::CardDeleted => self.deleted = true,
            E::CardReviewed {
                review_id,
                schedule,
                ..
            } => {
                self.review_ids.insert(review_id);
                self.reviews += 1;
                self.schedule = Some(schedule);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;

    use super::*;
    use crate::learn::schedule::CardState;

    /// A deterministic stand-in for FSRS: Again → 1 day, otherwise rating days.
    struct Days;

    impl Scheduler for Days {
        fn review(&self, before: &Schedule, rating: Rating, at: OffsetDateTime) -> Schedule {
            let days = if rating == Rating::Again {
                1
            } else {
                i64::from(rating.number())
            };
            Schedule {
                state: CardState::Review,
                step: None,
                stability: Some(days as f64),
                difficulty: before.difficulty.or(Some(5.0)),
                due: at + time::Duration::days(days),
                last_review: Some(at),
            }
        }
    }

    fn given() -> TestFramework<Card> {
        TestFramework::with(CardServices {
            scheduler: Arc::new(Days),
        })
    }

    fn card_id() -> Uuid {
        Uuid::from_u128(7)
    }

    fn content() -> CardContent {
        CardContent {
            deck: "biology".into(),
            front: "What makes ATP?".into(),
            back: "Mitochondria".into(),
            source: None,
        }
    }

    fn created() -> CardEvent {
        CardEvent::CardCreated {
            card_id: card_id(),
            owner: OwnerId::new("alice").unwrap(),
            content: content(),
            at: datetime!(2026-11-01 09:00 UTC),
        }
    }

    fn review(id: u128, rating: u8, at: OffsetDateTime) -> CardCommand {
        CardCommand::Review {
            review_id: Uuid::from_u128(id),
            rating,
            at,
        }
    }

    #[test]
    fn a_review_records_the_schedule_the_scheduler_gives() {
        let at = datetime!(2026-11-02 10:00 UTC);
        given()
            .given(vec![created()])
            .when(review(1, 3, at))
            .then_expect_events(vec![CardEvent::CardReviewed {
                review_id: Uuid::from_u128(1),
                rating: Rating::Good,
                at,
                schedule: Schedule {
                    state: CardState::Review,
                    step: None,
                    stability: Some(3.0),
                    difficulty: Some(5.0),
                    due: at + time::Duration::days(3),
                    last_review: Some(at),
                },
            }]);
    }

    #[test]
    fn a_new_card_is_learning_at_step_zero_and_due_at_creation() {
        let mut card = Card::default();
        card.apply(created());
        let schedule = card.schedule.unwrap();
        assert_eq!(
            (schedule.state, schedule.step),
            (CardState::Learning, Some(0))
        );
        assert_eq!(schedule.due, datetime!(2026-11-01 09:00 UTC));
        assert!(schedule.is_new() && schedule.interval().is_none());
    }

    #[test]
    fn the_same_submission_again_appends_nothing() {
        let at = datetime!(2026-11-02 10:00 UTC);
        let reviewed = Card::default()
            .decide(
                CardCommand::Create {
                    card_id: card_id(),
                    owner: OwnerId::new("alice").unwrap(),
                    content: content(),
                    at: datetime!(2026-11-01 09:00 UTC),
                },
                &Days,
            )
            .unwrap();
        let mut card = Card::default();
        for e in reviewed {
            card.apply(e);
        }
        for e in card.decide(review(1, 3, at), &Days).unwrap() {
            card.apply(e);
        }
        assert_eq!(card.decide(review(1, 3, at), &Days), Ok(vec![]));
        assert_eq!(card.reviews, 1);
    }

    #[test]
    fn a_review_older_than_the_last_is_refused() {
        let first = datetime!(2026-11-03 10:00 UTC);
        let mut card = Card::default();
        card.apply(created());
        let reviewed = card.decide(review(1, 3, first), &Days).unwrap();
        given()
            .given(vec![created(), reviewed[0].clone()])
            .when(review(2, 4, datetime!(2026-11-02 10:00 UTC)))
            .then_expect_error(LearnError::StaleReview {
                last: first.to_string(),
                at: datetime!(2026-11-02 10:00 UTC).to_string(),
            });
    }

    #[test]
    fn ratings_outside_one_to_four_are_refused() {
        given()
            .given(vec![created()])
            .when(review(1, 5, datetime!(2026-11-02 10:00 UTC)))
            .then_expect_error(LearnError::InvalidInput(
                "rating must be 1..=4, got 5".into(),
            ));
    }

    #[test]
    fn suspended_and_deleted_cards_are_not_reviewed() {
        given()
            .given(vec![created(), CardEvent::CardSuspended])
            .when(review(1, 3, datetime!(2026-11-02 10:00 UTC)))
            .then_expect_error(LearnError::FailedPrecondition(
                "the card is suspended".into(),
            ));
        given()
            .given(vec![created(), CardEvent::CardDeleted])
            .when(review(1, 3, datetime!(2026-11-02 10:00 UTC)))
            .then_expect_error(LearnError::FailedPrecondition(
                "the card was deleted".into(),
            ));
        given()
            .given(vec![])
            .when(review(1, 3, datetime!(2026-11-02 10:00 UTC)))
            .then_expect_error(LearnError::NotFound("card"));
    }

    #[test]
    fn create_is_idempotent_and_edits_validate() {
        given()
            .given(vec![created()])
            .when(CardCommand::Create {
                card_id: card_id(),
                owner: OwnerId::new("alice").unwrap(),
                content: content(),
                at: datetime!(2026-11-05 09:00 UTC),
            })
            .then_expect_events(vec![]);
        given()
            .given(vec![created()])
            .when(CardCommand::Edit {
                content: CardContent {
                    back: " ".into(),
                    ..content()
                },
            })
            .then_expect_error(LearnError::InvalidInput(
                "a card needs a front and a back".into(),
            ));
    }
}
