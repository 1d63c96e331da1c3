//! FSRS-6, the scheduler behind card reviews: pure and deterministic, with
//! the semantics of py-fsrs 6.3.2 (the reference implementation on PyPI).
//!
//! Given the same configuration (fuzz off), [`Fsrs`] gives the same state,
//! step and due as py-fsrs's `Scheduler.review_card`, and the same
//! stability and difficulty — bit for bit on the 241,295 generated reviews
//! `tests/fsrs/reference.py` runs through py-fsrs (the target is 1e-6
//! relative); `testdata/` holds a small sample for the unit tests here.
//! What that takes:
//! - elapsed time is whole days, floored (Python's `timedelta.days`), at
//!   full precision of the instants;
//! - a review less than a whole day after the previous one uses the
//!   short-term stability formula;
//! - review intervals are the model's interval rounded half to even, then
//!   clamped to `[1, maximum_interval]` days; due = review instant + steps or
//!   whole days;
//! - a card that was never reviewed is `Learning` at step 0 (py-fsrs 6 has
//!   no `New` state).
//!
//! See docs/decisions/008-fsrs-6.md for the state mapping and the fuzz.
//!
//! # Layout
//! - [`config`]: parameters and options ([`FsrsConfig`]), defaults, bounds.
//! - `model`: the memory model (stability, difficulty, retrievability).
//! - `steps`: the learning/review/relearning state machine.
//! - `fuzz`: the seeded interval fuzz.
//! - [`replay`]: a card's reviews in order, with R before each one.

pub mod config;
mod fuzz;
mod model;
pub mod replay;
mod steps;
#[cfg(test)]
mod tests;

use time::{Duration, OffsetDateTime};

pub use config::{FsrsConfig, FsrsConfigError, DEFAULT_PARAMETERS};
pub use replay::{ReplayError, ReplayedReview};

use self::model::Model;
use self::steps::Next;
use crate::learn::schedule::{Rating, Schedule, Scheduler};

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

/// An FSRS-6 scheduler with a checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Fsrs {
    config: FsrsConfig,
    model: Model,
}

/// A due date past what an instant can hold (year 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the due date after a review at {at} would be past the year 9999")]
pub struct DueOutOfRange {
    pub at: OffsetDateTime,
}

impl Default for Fsrs {
    /// py-fsrs 6.3.2's defaults, without fuzz.
    fn default() -> Self {
        Self {
            config: FsrsConfig::default(),
            model: Model::new(DEFAULT_PARAMETERS),
        }
    }
}

impl Fsrs {
    pub fn new(config: FsrsConfig) -> Result<Self, FsrsConfigError> {
        let weights = config.checked_parameters()?;
        Ok(Self {
            config,
            model: Model::new(weights),
        })
    }

    pub fn config(&self) -> &FsrsConfig {
        &self.config
    }

    /// Whole days from `from` to `to`, floored like Python's
    /// `(to - from).days` (negative when `to` is earlier).
    pub fn elapsed_days(from: OffsetDateTime, to: OffsetDateTime) -> i64 {
        let days = (to - from).whole_nanoseconds().div_euclid(NANOS_PER_DAY);
        // ±10,000 years of days always fits.
        days as i64
    }

    /// The probability of recalling the card at `at`: the forgetting curve
    /// at the whole days elapsed since its last review (0 when `at` is
    /// earlier). 0 for a card never reviewed, as py-fsrs's
    /// `get_card_retrievability` returns.
    pub fn retrievability(&self, schedule: &Schedule, at: OffsetDateTime) -> f64 {
        match (schedule.last_review, schedule.stability) {
            (Some(last), Some(s)) => {
                let days = Self::elapsed_days(last, at).max(0);
                self.model.retrievability(days as f64, s)
            }
            _ => 0.0,
        }
    }

    /// The review interval in days for `stability`, before fuzz: the time
    /// until R falls to the desired retention, rounded half to even and
    /// clamped to `[1, maximum_interval]`.
    pub fn interval_days(&self, stability: f64) -> u32 {
        let days = self
            .model
            .interval(stability, self.config.desired_retention);
        days.clamp(1.0, f64::from(self.config.maximum_interval)) as u32
    }

    /// The schedule after `rating` at `at`.
    pub fn next(
        &self,
        before: &Schedule,
        rating: Rating,
        at: OffsetDateTime,
    ) -> Result<Schedule, DueOutOfRange> {
        match self.schedule(before, rating, at) {
            (schedule, false) => Ok(schedule),
            (_, true) => Err(DueOutOfRange { at }),
        }
    }

    /// The schedule after the review, and whether its due had to be
    /// capped at the latest instant there is.
    fn schedule(&self, before: &Schedule, rating: Rating, at: OffsetDateTime) -> (Schedule, bool) {
        let m = &self.model;
        let (stability, difficulty) = match (before.stability, before.difficulty) {
            (Some(s), Some(d)) => {
                let same_day = before
                    .last_review
                    .is_some_and(|last| Self::elapsed_days(last, at) < 1);
                let s = if same_day {
                    m.short_term_stability(s, rating)
                } else {
                    m.next_stability(d, s, self.retrievability(before, at), rating)
                };
                (s, m.next_difficulty(d, rating))
            }
            // The first review (in any state, though py-fsrs only has it in Learning).
            _ => (m.initial_stability(rating), m.initial_difficulty(rating)),
        };
        let (state, step, next) = steps::transition(
            before.state,
            before.step,
            rating,
            &self.config.learning_steps,
            &self.config.relearning_steps,
        );
        let interval = match next {
            Next::Step(step) => step,
            Next::ModelInterval => {
                let mut days = i64::from(self.interval_days(stability));
                if let Some(seed) = self.config.fuzz_seed {
                    let draw = fuzz::draw(seed, before, rating, at);
                    days = fuzz::fuzz(days, self.config.maximum_interval, draw);
                }
                Duration::days(days)
            }
        };
        let overflow = at.checked_add(interval).is_none();
        let schedule = Schedule {
            state,
            step,
            stability: Some(stability),
            difficulty: Some(difficulty),
            due: at.saturating_add(interval),
            last_review: Some(at),
        };
        (schedule, overflow)
    }
}

impl Scheduler for Fsrs {
    /// As [`Fsrs::next`]; a due past the year 9999 (a review in the last
    /// century before it) is capped there rather than refused.
    fn review(&self, before: &Schedule, rating: Rating, at: OffsetDateTime) -> Schedule {
        self.schedule(before, rating, at).0
    }
}
