//! What a review does to a card's schedule, independent of the algorithm.
//!
//! The card aggregate asks a [`Scheduler`] (FSRS-6 in production, anything
//! deterministic in tests) for the schedule after a review and records the
//! answer in the `CardReviewed` event.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How well the learner recalled the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Again = 1,
    Hard = 2,
    Good = 3,
    Easy = 4,
}

impl Rating {
    /// 1..=4 as learners and py-fsrs number them.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::Again),
            2 => Some(Self::Hard),
            3 => Some(Self::Good),
            4 => Some(Self::Easy),
            _ => None,
        }
    }

    pub fn number(&self) -> u8 {
        *self as u8
    }
}

/// Where a card is in its learning — py-fsrs 6's `State`. There is no
/// "new" state: a card never reviewed is `Learning` at step 0 with no
/// stability (see [`Schedule::new_card`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Going through the learning steps (1 min, 10 min by default).
    /// (`"new"`, the state a never-reviewed card had before FSRS-6, reads
    /// as this: such a card is learning at step 0.)
    #[serde(alias = "new")]
    Learning = 1,
    /// Scheduled in days by the memory model.
    Review = 2,
    /// Going through the relearning steps after a lapse.
    Relearning = 3,
}

impl CardState {
    /// 1..=3, py-fsrs's `State` values.
    pub fn number(&self) -> u8 {
        *self as u8
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Learning => "learning",
            Self::Review => "review",
            Self::Relearning => "relearning",
        }
    }
}

/// A card's schedule after its last review (or at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub state: CardState,
    /// Learning or relearning step (0-based); `None` in review.
    pub step: Option<u32>,
    /// Memory stability in days (None before the first review).
    pub stability: Option<f64>,
    /// Difficulty 1..=10 (None before the first review).
    pub difficulty: Option<f64>,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_review: Option<OffsetDateTime>,
}

impl Schedule {
    /// A card that was never reviewed: learning, step 0, due at once — a
    /// fresh py-fsrs `Card(due=at)`.
    pub fn new_card(at: OffsetDateTime) -> Self {
        Self {
            state: CardState::Learning,
            step: Some(0),
            stability: None,
            difficulty: None,
            due: at,
            last_review: None,
        }
    }

    /// Never reviewed (no memory state yet).
    pub fn is_new(&self) -> bool {
        self.last_review.is_none() || self.stability.is_none()
    }

    /// From the last review to the due; `None` before the first review.
    pub fn interval(&self) -> Option<time::Duration> {
        self.last_review.map(|last| self.due - last)
    }
}

/// Computes the schedule after a review. Must be deterministic: the same
/// schedule, rating and instant always give the same answer.
pub trait Scheduler: Send + Sync {
    fn review(&self, before: &Schedule, rating: Rating, at: OffsetDateTime) -> Schedule;
}
