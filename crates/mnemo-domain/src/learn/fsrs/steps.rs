//! Which state a review moves a card to, and whether its next due comes
//! from a (re)learning step or from the memory model — py-fsrs 6.3.2's
//! state machine.
//!
//! ```text
//!  Learning(step) ──Again──▶ Learning(0)        (first step)
//!                 ──Hard───▶ Learning(step)     (step 0: between steps 0 and 1)
//!                 ──Good───▶ Learning(step+1) | Review after the last step
//!                 ──Easy───▶ Review
//!  Review ──Again──▶ Relearning(0) (Review if there are no relearning steps)
//!         ──other──▶ Review
//!  Relearning: as Learning, over the relearning steps.
//! ```

use time::Duration;

use crate::learn::schedule::{CardState, Rating};

/// Where the next due comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// A fixed (re)learning step from now.
    Step(Duration),
    /// The memory model's interval in whole days (the card is in review).
    ModelInterval,
}

/// The state, step and kind of interval after `rating`.
pub(super) fn transition(
    state: CardState,
    step: Option<u32>,
    rating: Rating,
    learning_steps: &[u32],
    relearning_steps: &[u32],
) -> (CardState, Option<u32>, Next) {
    const REVIEW: (CardState, Option<u32>, Next) = (CardState::Review, None, Next::ModelInterval);
    match state {
        CardState::Review => match (rating, relearning_steps.first()) {
            (Rating::Again, Some(&first)) => {
                (CardState::Relearning, Some(0), Next::Step(seconds(first)))
            }
            _ => REVIEW,
        },
        CardState::Learning | CardState::Relearning => {
            let steps = if state == CardState::Learning {
                learning_steps
            } else {
                relearning_steps
            };
            // A step missing from a card in (re)learning is the first one.
            let step = step.unwrap_or(0) as usize;
            // A card can sit on a step the current steps no longer have (they
            // were shortened since): any pass graduates it, as in py-fsrs.
            if steps.is_empty() || (step >= steps.len() && rating != Rating::Again) {
                return REVIEW;
            }
            let here = |step: usize| (state, Some(step as u32), Next::Step(seconds(steps[step])));
            match rating {
                Rating::Again => here(0),
                Rating::Hard => {
                    let interval = match (step, steps) {
                        // 1.5 × and the mean of two whole-second steps are
                        // exact in microseconds, as py-fsrs's timedeltas are.
                        (0, [only]) => Duration::milliseconds(i64::from(*only) * 1500),
                        (0, [first, second, ..]) => {
                            Duration::milliseconds((i64::from(*first) + i64::from(*second)) * 500)
                        }
                        _ => seconds(steps[step]),
                    };
                    (state, Some(step as u32), Next::Step(interval))
                }
                Rating::Good if step + 1 == steps.len() => REVIEW,
                Rating::Good => here(step + 1),
                Rating::Easy => REVIEW,
            }
        }
    }
}

fn seconds(s: u32) -> Duration {
    Duration::seconds(i64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEARN: &[u32] = &[60, 600];
    const RELEARN: &[u32] = &[600];

    fn t(state: CardState, step: u32, rating: Rating) -> (CardState, Option<u32>, Next) {
        transition(state, Some(step), rating, LEARN, RELEARN)
    }

    #[test]
    fn learning_walks_the_steps_then_graduates() {
        use CardState::*;
        let step = |s| Next::Step(Duration::seconds(s));
        assert_eq!(t(Learning, 0, Rating::Again), (Learning, Some(0), step(60)));
        assert_eq!(t(Learning, 0, Rating::Hard), (Learning, Some(0), step(330)));
        assert_eq!(t(Learning, 0, Rating::Good), (Learning, Some(1), step(600)));
        assert_eq!(t(Learning, 1, Rating::Hard), (Learning, Some(1), step(600)));
        assert_eq!(
            t(Learning, 1, Rating::Good),
            (Review, None, Next::ModelInterval)
        );
        assert_eq!(
            t(Learning, 0, Rating::Easy),
            (Review, None, Next::ModelInterval)
        );
    }

    #[test]
    fn a_lapse_relearns_then_returns_to_review() {
        use CardState::*;
        let ten_minutes = Next::Step(Duration::minutes(10));
        let fifteen_minutes = Next::Step(Duration::minutes(15));
        assert_eq!(
            t(Review, 0, Rating::Again),
            (Relearning, Some(0), ten_minutes)
        );
        assert_eq!(
            t(Relearning, 0, Rating::Hard),
            (Relearning, Some(0), fifteen_minutes)
        );
        assert_eq!(
            t(Relearning, 0, Rating::Good),
            (Review, None, Next::ModelInterval)
        );
        assert_eq!(
            transition(Review, None, Rating::Again, LEARN, &[]),
            (Review, None, Next::ModelInterval)
        );
    }

    #[test]
    fn no_steps_or_a_step_beyond_them_graduates() {
        use CardState::*;
        assert_eq!(
            transition(Learning, Some(0), Rating::Again, &[], RELEARN),
            (Review, None, Next::ModelInterval)
        );
        assert_eq!(
            t(Learning, 5, Rating::Hard),
            (Review, None, Next::ModelInterval)
        );
        assert_eq!(
            t(Learning, 5, Rating::Again),
            (Learning, Some(0), Next::Step(Duration::minutes(1)))
        );
    }
}
