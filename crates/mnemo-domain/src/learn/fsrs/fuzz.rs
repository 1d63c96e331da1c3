//! Interval fuzz: spreads review intervals of 3 days or more over a small
//! range so cards learnt together do not stay due together.
//!
//! The range is py-fsrs 6.3.2's. The draw is not Python's `random()` (which
//! would make a schedule depend on hidden global state): it is a hash of the
//! configured seed and the review (the schedule before it, the rating and
//! the instant), so a history re-run with the same seed gives the same dues.

use time::OffsetDateTime;

use crate::learn::schedule::{Rating, Schedule};

/// (start, end, factor): each band of the interval widens the range by factor per day.
const FUZZ_RANGES: [(f64, f64, f64); 3] = [
    (2.5, 7.0, 0.15),
    (7.0, 20.0, 0.1),
    (20.0, f64::INFINITY, 0.05),
];

/// The smallest and largest fuzzed interval for `days`.
pub(super) fn range(days: i64, maximum_interval: u32) -> (i64, i64) {
    let ivl = days as f64;
    let delta = FUZZ_RANGES
        .iter()
        .fold(1.0, |delta, &(start, end, factor)| {
            delta + factor * (ivl.min(end) - start).max(0.0)
        });
    let max = ((ivl + delta).round_ties_even() as i64).min(i64::from(maximum_interval));
    let min = ((ivl - delta).round_ties_even() as i64).max(2).min(max);
    (min, max)
}

/// `days` fuzzed by `draw` in [0, 1).
pub(super) fn fuzz(days: i64, maximum_interval: u32, draw: f64) -> i64 {
    if days < 3 {
        return days; // py-fsrs leaves intervals under 2.5 days alone
    }
    let (min, max) = range(days, maximum_interval);
    // As py-fsrs: a uniform pick over max − min + 1 days, rounded half to even.
    let fuzzed = (draw * (max - min + 1) as f64 + min as f64).round_ties_even() as i64;
    fuzzed.min(i64::from(maximum_interval))
}

/// A uniform number in [0, 1) determined by the seed and the review.
pub(super) fn draw(seed: u64, before: &Schedule, rating: Rating, at: OffsetDateTime) -> f64 {
    let nanos = |t: OffsetDateTime| t.unix_timestamp_nanos() as u128;
    let at = nanos(at);
    let last = before.last_review.map_or(u128::MAX, nanos);
    let words = [
        at as u64,
        (at >> 64) as u64,
        last as u64,
        (last >> 64) as u64,
        before.stability.map_or(u64::MAX, f64::to_bits),
        before.difficulty.map_or(u64::MAX, f64::to_bits),
        u64::from(rating.number()),
    ];
    let state = words.iter().fold(seed, |state, &w| splitmix64(state ^ w));
    (state >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash step.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ranges_are_py_fsrs_ranges() {
        assert_eq!(range(3, 36_500), (2, 4));
        assert_eq!(range(10, 36_500), (8, 12));
        assert_eq!(range(100, 36_500), (93, 107));
        assert_eq!(range(36_500, 36_500), (34_673, 36_500));
    }

    #[test]
    fn short_intervals_are_not_fuzzed_and_long_ones_stay_in_range() {
        assert_eq!(fuzz(1, 36_500, 0.99), 1);
        assert_eq!(fuzz(2, 36_500, 0.99), 2);
        for i in 0..1000 {
            let u = f64::from(i) / 1000.0;
            let f = fuzz(100, 36_500, u);
            assert!((93..=108).contains(&f), "{f}");
            assert!(fuzz(36_500, 36_500, u) <= 36_500);
        }
    }

    #[test]
    fn draws_are_reproducible_and_depend_on_the_seed() {
        let before = Schedule::new_card(datetime!(2026-01-01 00:00 UTC));
        let at = datetime!(2026-01-02 00:00 UTC);
        let a = draw(1, &before, Rating::Good, at);
        assert_eq!(a, draw(1, &before, Rating::Good, at));
        assert_ne!(a, draw(2, &before, Rating::Good, at));
        assert_ne!(a, draw(1, &before, Rating::Easy, at));
        assert!((0.0..1.0).contains(&a));
        let mean = (0..10_000)
            .map(|i| draw(i, &before, Rating::Good, at))
            .sum::<f64>()
            / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
