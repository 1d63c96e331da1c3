//! Latency figures as the tables print them.

use std::time::Duration;

/// The `p` quantile (0..=1) of latencies sorted ascending, by nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints whether a benchmark's `target` was met and exits accordingly
/// (non-zero when not: scripts and CI can tell).
pub fn verdict(target: &str, met: bool) -> std::process::ExitCode {
    println!();
    println!("{target}: {}", if met { "met" } else { "NOT met" });
    if met {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
