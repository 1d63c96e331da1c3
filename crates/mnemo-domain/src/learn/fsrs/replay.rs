//! A card's reviews run through the scheduler in order, with what the
//! learner would have seen at each one — for `mnemo fsrs simulate`, and for
//! checking recorded schedules against the algorithm.

use time::OffsetDateTime;

use super::{DueOutOfRange, Fsrs};
use crate::learn::schedule::{Rating, Schedule};

/// One review and its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedReview {
    pub at: OffsetDateTime,
    pub rating: Rating,
    /// Whole days since the previous review (floored, negative if this
    /// review is earlier); `None` for the first review.
    pub elapsed_days: Option<i64>,
    /// R at the review instant, before the review updates the card — what
    /// py-fsrs's `get_card_retrievability(card, review_datetime)` gives for
    /// the card as it was (0 on the first review).
    pub retrievability: f64,
    /// The schedule the review produced.
    pub schedule: Schedule,
}

/// The review (0-based) whose due could not be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("review {index}: {source}")]
pub struct ReplayError {
    pub index: usize,
    pub source: DueOutOfRange,
}

impl Fsrs {
    /// Runs `reviews` over a card created at `created`, in the order given
    /// (like py-fsrs, a review earlier than the previous one is not refused:
    /// its negative elapsed time counts as a same-day review).
    pub fn replay(
        &self,
        created: OffsetDateTime,
        reviews: impl IntoIterator<Item = (OffsetDateTime, Rating)>,
    ) -> Result<Vec<ReplayedReview>, ReplayError> {
        let mut schedule = Schedule::new_card(created);
        let mut out = Vec::new();
        for (index, (at, rating)) in reviews.into_iter().enumerate() {
            let retrievability = self.retrievability(&schedule, at);
            let elapsed_days = schedule
                .last_review
                .map(|last| Self::elapsed_days(last, at));
            schedule = self
                .next(&schedule, rating, at)
                .map_err(|source| ReplayError { index, source })?;
            out.push(ReplayedReview {
                at,
                rating,
                elapsed_days,
                retrievability,
                schedule: schedule.clone(),
            });
        }
        Ok(out)
    }
}
