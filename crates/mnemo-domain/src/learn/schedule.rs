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

/// Where a card is in its learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Never reviewed.
    New,
    Learning,
    Review,
    Relearning,
}

/// A card's schedule after its last review (or at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub state: CardState,
    /// Learning or relearning step, when in one.
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
    /// A new card is due at once.
    pub fn new_card(at: OffsetDateTime) -> Self {
        Self {
            state: CardState::New,
            step: None,
            stability: None,
            difficulty: None,
            due: at,
            last_review: None,
        }
    }
}

/// Computes the schedule after a review. Must be deterministic: the same
/// schedule, rating and instant always give the same answer.
pub trait Scheduler: Send + Sync {
    fn review(&self, before: &Schedule, rating: Rating, at: OffsetDateTime) -> Schedule;
}
