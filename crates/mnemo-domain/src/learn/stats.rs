//! Study statistics, folded from a learner's reviews (pure).
//!
//! - *retention*: among reviews of cards that were in the `review` state
//!   when reviewed (the learning and relearning steps say little about
//!   memory), the share rated 2 (hard) or better; `None` when there is no
//!   such review;
//! - *reviews per day*: reviews divided by the days from the first review's
//!   day to `now`'s day, both counted;
//! - *current streak*: consecutive days with at least one review, ending
//!   today — or yesterday, since today is not over yet.
//!
//! Days are UTC calendar days (a learner's time zone is not known).
//! The API computes these from the read model's reviews, audit replay from
//! the events: both call [`StudyStats::from_reviews`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::schedule::{CardState, Rating};

/// One recorded review, with the state the card was in before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewFact {
    pub card_id: Uuid,
    pub review_id: Uuid,
    pub at: OffsetDateTime,
    pub rating: Rating,
    pub state_before: CardState,
}

/// A learner's study figures as of an instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyStats {
    pub reviews: u64,
    /// Reviews of cards in the review state (retention's denominator).
    pub review_state_reviews: u64,
    /// Of those, rated hard or better (retention's numerator).
    pub review_state_recalled: u64,
    pub retention: Option<f64>,
    pub reviews_per_day: f64,
    /// Distinct UTC days with a review.
    pub days_studied: u64,
    pub current_streak_days: u64,
    pub reviews_today: u64,
}

impl StudyStats {
    /// The figures of `reviews` (in any order) as seen at `now`; reviews
    /// after `now` are not counted.
    pub fn from_reviews<'a>(
        reviews: impl IntoIterator<Item = &'a ReviewFact>,
        now: OffsetDateTime,
    ) -> Self {
        let today = utc_day(now);
        let mut days = BTreeSet::new();
        let (mut total, mut in_review, mut recalled, mut on_today) = (0u64, 0u64, 0u64, 0u64);
        for r in reviews.into_iter().filter(|r| r.at <= now) {
            total += 1;
            let day = utc_day(r.at);
            days.insert(day);
            if day == today {
                on_today += 1;
            }
            if r.state_before == CardState::Review {
                in_review += 1;
                if r.rating.number() >= 2 {
                    recalled += 1;
                }
            }
        }
        let reviews_per_day = match days.first() {
            Some(first) => total as f64 / ((today - *first).whole_days() + 1) as f64,
            None => 0.0,
        };
        Self {
            reviews: total,
            review_state_reviews: in_review,
            review_state_recalled: recalled,
            retention: (in_review > 0).then(|| recalled as f64 / in_review as f64),
            reviews_per_day,
            days_studied: days.len() as u64,
            current_streak_days: streak(&days, today),
            reviews_today: on_today,
        }
    }
}

fn utc_day(t: OffsetDateTime) -> Date {
    t.to_offset(time::UtcOffset::UTC).date()
}

/// Consecutive days in `days` ending at `today`, or at yesterday when
/// today has none yet.
fn streak(days: &BTreeSet<Date>, today: Date) -> u64 {
    let mut day = if days.contains(&today) {
        today
    } else {
        match today.previous_day() {
            Some(d) if days.contains(&d) => d,
            _ => return 0,
        }
    };
    let mut n = 0;
    while days.contains(&day) {
        n += 1;
        match day.previous_day() {
            Some(d) => day = d,
            None => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn review(n: u128, at: OffsetDateTime, rating: Rating, before: CardState) -> ReviewFact {
        ReviewFact {
            card_id: Uuid::from_u128(1),
            review_id: Uuid::from_u128(n),
            at,
            rating,
            state_before: before,
        }
    }

    #[test]
    fn retention_counts_only_reviews_of_cards_in_review() {
        let reviews = vec![
            review(
                1,
                datetime!(2026-11-01 09:00 UTC),
                Rating::Again,
                CardState::Learning,
            ),
            review(
                2,
                datetime!(2026-11-01 09:10 UTC),
                Rating::Good,
                CardState::Learning,
            ),
            review(
                3,
                datetime!(2026-11-03 09:00 UTC),
                Rating::Hard,
                CardState::Review,
            ),
            review(
                4,
                datetime!(2026-11-04 09:00 UTC),
                Rating::Again,
                CardState::Review,
            ),
            review(
                5,
                datetime!(2026-11-04 09:05 UTC),
                Rating::Good,
                CardState::Relearning,
            ),
            review(
                6,
                datetime!(2026-11-05 09:00 UTC),
                Rating::Easy,
                CardState::Review,
            ),
        ];
        let s = StudyStats::from_reviews(&reviews, datetime!(2026-11-05 20:00 UTC));
        assert_eq!(s.reviews, 6);
        assert_eq!((s.review_state_reviews, s.review_state_recalled), (3, 2));
        assert_eq!(s.retention, Some(2.0 / 3.0));
        // 1st to 5th November: five days.
        assert_eq!(s.reviews_per_day, 6.0 / 5.0);
        assert_eq!(s.days_studied, 4);
        // 3rd, 4th, 5th (the 2nd has none).
        assert_eq!(s.current_streak_days, 3);
        assert_eq!(s.reviews_today, 1);
    }

    #[test]
    fn a_streak_survives_until_today_ends_and_future_reviews_do_not_count() {
        let reviews = vec![
            review(
                1,
                datetime!(2026-11-03 23:59 UTC),
                Rating::Good,
                CardState::Review,
            ),
            review(
                2,
                datetime!(2026-11-04 00:01 UTC),
                Rating::Good,
                CardState::Review,
            ),
            review(
                3,
                datetime!(2026-11-09 00:00 UTC),
                Rating::Good,
                CardState::Review,
            ),
        ];
        let s = StudyStats::from_reviews(&reviews, datetime!(2026-11-05 12:00 UTC));
        assert_eq!(
            (s.reviews, s.current_streak_days, s.reviews_today),
            (2, 2, 0)
        );
        let s = StudyStats::from_reviews(&reviews, datetime!(2026-11-06 00:00 UTC));
        assert_eq!(s.current_streak_days, 0);
        let none = StudyStats::from_reviews(&[], datetime!(2026-11-06 00:00 UTC));
        assert_eq!(
            (none.reviews, none.retention, none.reviews_per_day),
            (0, None, 0.0)
        );
    }
}
