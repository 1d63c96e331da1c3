//! How mnemo waits before trying again: exponential delays from the
//! `backon` crate, for every loop that retries (command conflicts, the
//! projector's reconnects, the progress pump, clients that resume a stream).
//! One well-kept implementation instead of a doubling written in each place.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays that start at `min` and double up to `max`; unlimited unless
/// [`Backoff::with_max_times`] says otherwise. [`Backoff::reset`] starts
/// over, e.g. after a success, so one bad spell long ago does not make the
/// next retry wait the maximum.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self::from_builder(
            ExponentialBuilder::new()
                .with_min_delay(min)
                .with_max_delay(max)
                .without_max_times(),
        )
    }

    /// Random jitter on each delay, so copies that failed together (a
    /// conflict, a restarted server) do not retry in lockstep.
    pub fn with_jitter(self) -> Self {
        Self::from_builder(self.builder.with_jitter())
    }

    /// At most `times` delays, then [`Backoff::next_delay`] says `None`.
    pub fn with_max_times(self, times: usize) -> Self {
        Self::from_builder(self.builder.with_max_times(times))
    }

    fn from_builder(builder: ExponentialBuilder) -> Self {
        Self {
            delays: builder.build(),
            builder,
        }
    }

    /// The next delay, or `None` once the allowed times are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.delays.next()
    }

    /// Starts over from the shortest delay.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_on_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let seen: Vec<u128> = (0..5)
            .filter_map(|_| b.next_delay())
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(seen, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn max_times_ends_the_delays() {
        let mut b =
            Backoff::new(Duration::from_millis(1), Duration::from_millis(8)).with_max_times(2);
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert_eq!(b.next_delay(), None);
    }

    #[test]
    fn jitter_stays_within_one_delay_more() {
        let mut b =
            Backoff::new(Duration::from_millis(10), Duration::from_millis(10)).with_jitter();
        for _ in 0..50 {
            let d = b.next_delay().map(|d| d.as_millis()).unwrap_or_default();
            assert!((10..=20).contains(&d), "{d}");
        }
    }
}
