//! FSRS-6 parameters and options, with py-fsrs 6.3.2's defaults and bounds.
//!
//! The serialised form follows py-fsrs's `Scheduler.to_dict()` (steps in
//! whole seconds) so a configuration can be compared with, or moved to, a
//! py-fsrs scheduler; `fuzz_seed` replaces py-fsrs's `enable_fuzzing`
//! because our fuzz is a pure function of the seed (see `fuzz`).

use serde::{Deserialize, Serialize};

/// The 21 FSRS-6 weights py-fsrs 6.3.2 ships (`DEFAULT_PARAMETERS`).
pub const DEFAULT_PARAMETERS: [f64; 21] = [
    0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796, 1.4835,
    0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912, 0.0658, 0.1542,
];

/// Smallest stability the model produces, in days.
pub const STABILITY_MIN: f64 = 0.001;

/// Inclusive bounds per weight, as py-fsrs validates them: weights an
/// optimiser could never produce are refused rather than clamped, so a bad
/// parameter set fails loudly when it is plugged in.
pub const PARAMETER_BOUNDS: [(f64, f64); 21] = [
    (STABILITY_MIN, 100.0),
    (STABILITY_MIN, 100.0),
    (STABILITY_MIN, 100.0),
    (STABILITY_MIN, 100.0),
    (1.0, 10.0),
    (0.001, 4.0),
    (0.001, 4.0),
    (0.001, 0.75),
    (0.0, 4.5),
    (0.0, 0.8),
    (0.001, 3.5),
    (0.001, 5.0),
    (0.001, 0.25),
    (0.001, 0.9),
    (0.0, 4.0),
    (0.0, 1.0),
    (1.0, 6.0),
    (0.0, 2.0),
    (0.0, 2.0),
    (0.0, 0.8),
    (0.1, 0.8),
];

pub const DEFAULT_DESIRED_RETENTION: f64 = 0.9;
pub const DEFAULT_LEARNING_STEPS_SECS: [u32; 2] = [60, 600];
pub const DEFAULT_RELEARNING_STEPS_SECS: [u32; 1] = [600];
pub const DEFAULT_MAXIMUM_INTERVAL_DAYS: u32 = 36_500;

/// How an [`Fsrs`](super::Fsrs) scheduler is set up. Build it with
/// `FsrsConfig::default().with_…()`; [`Fsrs::new`](super::Fsrs::new) checks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FsrsConfig {
    /// w0..w20 (a learner's optimised weights, or [`DEFAULT_PARAMETERS`]).
    pub parameters: Vec<f64>,
    /// Probability of recall the review intervals aim at, in (0, 1).
    pub desired_retention: f64,
    /// Learning steps, in seconds (empty: a new card goes straight to review).
    pub learning_steps: Vec<u32>,
    /// Relearning steps after a lapse, in seconds (empty: a lapse stays in review).
    pub relearning_steps: Vec<u32>,
    /// Longest review interval, in days.
    pub maximum_interval: u32,
    /// `None`: no fuzz (the default, and what matches py-fsrs with
    /// `enable_fuzzing=False`). `Some(seed)`: review intervals of 3 days or
    /// more are spread over py-fsrs's fuzz range by a draw derived from the
    /// seed and the review, so the same history always gives the same due.
    #[serde(default)]
    pub fuzz_seed: Option<u64>,
}

impl Default for FsrsConfig {
    fn default() -> Self {
        Self {
            parameters: DEFAULT_PARAMETERS.to_vec(),
            desired_retention: DEFAULT_DESIRED_RETENTION,
            learning_steps: DEFAULT_LEARNING_STEPS_SECS.to_vec(),
            relearning_steps: DEFAULT_RELEARNING_STEPS_SECS.to_vec(),
            maximum_interval: DEFAULT_MAXIMUM_INTERVAL_DAYS,
            fuzz_seed: None,
        }
    }
}

impl FsrsConfig {
    pub fn with_parameters(mut self, parameters: &[f64]) -> Self {
        self.parameters = parameters.to_vec();
        self
    }

    pub fn with_desired_retention(mut self, retention: f64) -> Self {
        self.desired_retention = retention;
        self
    }

    pub fn with_learning_steps(mut self, seconds: &[u32]) -> Self {
        self.learning_steps = seconds.to_vec();
        self
    }

    pub fn with_relearning_steps(mut self, seconds: &[u32]) -> Self {
        self.relearning_steps = seconds.to_vec();
        self
    }

    pub fn with_maximum_interval(mut self, days: u32) -> Self {
        self.maximum_interval = days;
        self
    }

    pub fn with_fuzz_seed(mut self, seed: Option<u64>) -> Self {
        self.fuzz_seed = seed;
        self
    }

    /// The weights as an array, or why they cannot be used.
    pub(super) fn checked_parameters(&self) -> Result<[f64; 21], FsrsConfigError> {
        let weights: [f64; 21] = self
            .parameters
            .as_slice()
            .try_into()
            .map_err(|_| FsrsConfigError::ParameterCount(self.parameters.len()))?;
        for (index, (&value, &(low, high))) in weights.iter().zip(&PARAMETER_BOUNDS).enumerate() {
            // Written so that NaN fails too.
            if !(low <= value && value <= high) {
                return Err(FsrsConfigError::ParameterOutOfBounds {
                    index,
                    value,
                    low,
                    high,
                });
            }
        }
        if !(self.desired_retention > 0.0 && self.desired_retention < 1.0) {
            return Err(FsrsConfigError::DesiredRetention(self.desired_retention));
        }
        if self.maximum_interval == 0 {
            return Err(FsrsConfigError::MaximumInterval);
        }
        if self
            .learning_steps
            .iter()
            .chain(&self.relearning_steps)
            .any(|&s| s == 0)
        {
            return Err(FsrsConfigError::ZeroStep);
        }
        Ok(weights)
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FsrsConfigError {
    #[error("FSRS-6 takes 21 parameters, got {0}")]
    ParameterCount(usize),
    #[error("parameter w{index} = {value} is outside its bounds [{low}, {high}]")]
    ParameterOutOfBounds {
        index: usize,
        value: f64,
        low: f64,
        high: f64,
    },
    #[error("desired retention must be strictly between 0 and 1, got {0}")]
    DesiredRetention(f64),
    #[error("the maximum interval must be at least 1 day")]
    MaximumInterval,
    #[error("learning and relearning steps must be at least 1 second")]
    ZeroStep,
}
