//! The FSRS-6 memory model: how stability, difficulty and retrievability
//! evolve, as py-fsrs 6.3.2 computes them.
//!
//! Bit-for-bit agreement with py-fsrs matters where a value is rounded
//! (the interval in days), so every expression keeps Python's evaluation
//! order, and `e^x` is computed as `E.powf(x)` — Python's `math.e ** x` is
//! C `pow(e, x)`, which can differ from `exp(x)` in the last bit.

use std::f64::consts::E;

use super::config::STABILITY_MIN;
use crate::learn::schedule::Rating;

const MIN_DIFFICULTY: f64 = 1.0;
const MAX_DIFFICULTY: f64 = 10.0;

/// The weights and the forgetting-curve constants derived from them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Model {
    w: [f64; 21],
    /// −w20: the forgetting curve's exponent.
    decay: f64,
    /// Chosen so that R = 0.9 when the elapsed time equals the stability.
    factor: f64,
}

fn e_pow(x: f64) -> f64 {
    E.powf(x)
}

/// The rating as the integer py-fsrs does arithmetic with.
fn g(rating: Rating) -> f64 {
    f64::from(rating.number())
}

fn clamp_difficulty(d: f64) -> f64 {
    d.clamp(MIN_DIFFICULTY, MAX_DIFFICULTY)
}

fn clamp_stability(s: f64) -> f64 {
    s.max(STABILITY_MIN)
}

impl Model {
    pub(super) fn new(w: [f64; 21]) -> Self {
        let decay = -w[20];
        let factor = 0.9f64.powf(1.0 / decay) - 1.0;
        Self { w, decay, factor }
    }

    /// Probability of recall after `elapsed_days` whole days at stability `s`.
    pub(super) fn retrievability(&self, elapsed_days: f64, s: f64) -> f64 {
        (1.0 + self.factor * elapsed_days / s).powf(self.decay)
    }

    /// The interval in whole days that brings R down to `retention`, before
    /// clamping: Python's `round()` (half to even) of the exact solution.
    pub(super) fn interval(&self, s: f64, retention: f64) -> f64 {
        let days = (s / self.factor) * (retention.powf(1.0 / self.decay) - 1.0);
        days.round_ties_even()
    }

    pub(super) fn initial_stability(&self, rating: Rating) -> f64 {
        clamp_stability(self.w[usize::from(rating.number()) - 1])
    }

    fn initial_difficulty_unclamped(&self, rating: Rating) -> f64 {
        self.w[4] - e_pow(self.w[5] * (g(rating) - 1.0)) + 1.0
    }

    pub(super) fn initial_difficulty(&self, rating: Rating) -> f64 {
        clamp_difficulty(self.initial_difficulty_unclamped(rating))
    }

    /// Difficulty moves by the rating, damped near 10, and reverts a little
    /// towards the initial difficulty of an Easy.
    pub(super) fn next_difficulty(&self, d: f64, rating: Rating) -> f64 {
        let target = self.initial_difficulty_unclamped(Rating::Easy);
        let delta = -(self.w[6] * (g(rating) - 3.0));
        let damped = d + (10.0 - d) * delta / 9.0;
        clamp_difficulty(self.w[7] * target + (1.0 - self.w[7]) * damped)
    }

    /// Stability after a review less than a day after the previous one.
    pub(super) fn short_term_stability(&self, s: f64, rating: Rating) -> f64 {
        let mut increase = e_pow(self.w[17] * (g(rating) - 3.0 + self.w[18])) * s.powf(-self.w[19]);
        if rating != Rating::Again {
            // A successful same-day review never lowers stability.
            increase = increase.max(1.0);
        }
        clamp_stability(s * increase)
    }

    /// Stability after a review a day or more after the previous one, at
    /// retrievability `r`.
    pub(super) fn next_stability(&self, d: f64, s: f64, r: f64, rating: Rating) -> f64 {
        let next = if rating == Rating::Again {
            self.forget_stability(d, s, r)
        } else {
            self.recall_stability(d, s, r, rating)
        };
        clamp_stability(next)
    }

    fn forget_stability(&self, d: f64, s: f64, r: f64) -> f64 {
        let w = &self.w;
        let long_term =
            w[11] * d.powf(-w[12]) * ((s + 1.0).powf(w[13]) - 1.0) * e_pow((1.0 - r) * w[14]);
        let short_term = s / e_pow(w[17] * w[18]);
        // py-fsrs's min() keeps the first of two equal values; the values
        // are equal then, so the order only matters for NaN, which bounded
        // weights cannot produce.
        long_term.min(short_term)
    }

    fn recall_stability(&self, d: f64, s: f64, r: f64, rating: Rating) -> f64 {
        let w = &self.w;
        let hard_penalty = if rating == Rating::Hard { w[15] } else { 1.0 };
        let easy_bonus = if rating == Rating::Easy { w[16] } else { 1.0 };
        s * (1.0
            + e_pow(w[8])
                * (11.0 - d)
                * s.powf(-w[9])
                * (e_pow((1.0 - r) * w[10]) - 1.0)
                * hard_penalty
                * easy_bonus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::fsrs::config::DEFAULT_PARAMETERS;

    fn model() -> Model {
        Model::new(DEFAULT_PARAMETERS)
    }

    #[test]
    fn retrievability_is_ninety_percent_after_one_stability() {
        let m = model();
        assert!((m.retrievability(10.0, 10.0) - 0.9).abs() < 1e-12);
        assert_eq!(m.retrievability(0.0, 3.0), 1.0);
        assert!(m.retrievability(20.0, 10.0) < 0.9);
    }

    #[test]
    fn at_ninety_percent_retention_the_interval_is_the_stability() {
        let m = model();
        assert_eq!(m.interval(10.0, 0.9), 10.0);
        assert_eq!(m.interval(2.5, 0.9), 2.0, "Python rounds half to even");
        assert_eq!(m.interval(3.5, 0.9), 4.0);
        assert!(m.interval(10.0, 0.8) > 10.0);
    }

    #[test]
    fn first_ratings_give_the_initial_weights() {
        let m = model();
        assert_eq!(m.initial_stability(Rating::Good), 2.3065);
        // w4 − e^(w5·(G−1)) + 1, clamped to [1, 10]
        assert!((m.initial_difficulty(Rating::Again) - 6.4133).abs() < 1e-12);
        assert_eq!(m.initial_difficulty(Rating::Easy), 1.0);
    }

    #[test]
    fn a_successful_same_day_review_never_lowers_stability() {
        let m = model();
        for s in [0.01, 1.0, 50.0, 5000.0] {
            for rating in [Rating::Hard, Rating::Good, Rating::Easy] {
                assert!(m.short_term_stability(s, rating) >= s);
            }
            assert!(m.short_term_stability(s, Rating::Again) < s);
        }
    }
}
