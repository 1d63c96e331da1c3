//! `mnemo fsrs simulate [FILE] [--json]`: review histories through the
//! domain's FSRS-6 scheduler, locally, printing what each review did.
//!
//! The whole input is read and computed before anything is printed, so bad
//! input gives one error naming the sequence and review and no partial
//! output.

mod input;
mod output;

use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mnemo_domain::learn::fsrs::{Fsrs, FsrsConfig, ReplayedReview};

#[derive(Args)]
pub struct FsrsArgs {
    #[command(subcommand)]
    pub command: FsrsCommand,
}

#[derive(Subcommand)]
pub enum FsrsCommand {
    /// Run review histories through FSRS-6 and print each review's outcome.
    ///
    /// Input (stdin, or FILE): a JSON list of
    /// {"id", "created", "reviews": [{"ts", "rating"}]}, timestamps as
    /// ISO-8601 (no offset = UTC) or epoch seconds, ratings 1..=4 or
    /// again/hard/good/easy. Prints, after each review, R at the review
    /// (before it), stability, difficulty, state, step, due and interval
    /// (with --json: one object per review, `interval` in days).
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub struct SimulateArgs {
    /// Read the histories from this file ("-": stdin).
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// One JSON object per review (JSON lines) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Desired retention, in (0, 1).
    #[arg(long, env = "MNEMO_FSRS_RETENTION", default_value_t = mnemo_domain::learn::fsrs::config::DEFAULT_DESIRED_RETENTION)]
    pub retention: f64,
    /// The 21 FSRS-6 weights, comma-separated (default: py-fsrs 6.3.2's).
    #[arg(long, env = "MNEMO_FSRS_PARAMS")]
    pub params: Option<String>,
    /// Learning steps, e.g. `1m,10m` (units s, m, h, d; `none` for none).
    #[arg(long, env = "MNEMO_FSRS_LEARNING_STEPS", default_value = "1m,10m")]
    pub learning_steps: String,
    /// Relearning steps after a lapse, e.g. `10m` (`none` for none).
    #[arg(long, env = "MNEMO_FSRS_RELEARNING_STEPS", default_value = "10m")]
    pub relearning_steps: String,
    /// Longest review interval, in days.
    #[arg(long, env = "MNEMO_FSRS_MAX_INTERVAL", default_value_t = mnemo_domain::learn::fsrs::config::DEFAULT_MAXIMUM_INTERVAL_DAYS)]
    pub max_interval: u32,
    /// Fuzz review intervals, reproducibly from this seed (default: no fuzz).
    #[arg(long, env = "MNEMO_FSRS_FUZZ_SEED")]
    pub fuzz_seed: Option<u64>,
}

pub fn run(args: FsrsArgs) -> Result<ExitCode> {
    match args.command {
        FsrsCommand::Simulate(args) => simulate(args),
    }
}

fn simulate(args: SimulateArgs) -> Result<ExitCode> {
    let fsrs = Fsrs::new(config(&args)?).context("invalid FSRS configuration")?;
    let text = read_input(&args)?;
    let sequences = input::parse(&text).map_err(|e| anyhow!(e))?;
    let mut runs = Vec::with_capacity(sequences.len());
    let mut unordered = vec![];
    for (n, seq) in sequences.iter().enumerate() {
        let name = format!("sequence {} (input[{n}])", seq.id);
        if let Some(i) = seq.reviews.windows(2).position(|w| w[1].0 < w[0].0) {
            unordered.push(format!("{name}: reviews[{}]", i + 1));
        }
        let replayed = fsrs
            .replay(seq.created, seq.reviews.iter().copied())
            .map_err(|e| anyhow!("{name}: reviews[{}]: {}", e.index, e.source))?;
        runs.push((seq, replayed));
    }
    if let Some(first) = unordered.first() {
        eprintln!(
            "warning: {} sequence(s) have a review earlier than the one before it (first: {first}); \
             computed as py-fsrs does: a negative elapsed time counts as a same-day review",
            unordered.len()
        );
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    match print(&mut out, &runs, args.json).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `| head` closing the pipe is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write the output"),
    }
}

fn print(
    out: &mut impl Write,
    runs: &[(&input::Sequence, Vec<ReplayedReview>)],
    json: bool,
) -> std::io::Result<()> {
    if json {
        for (seq, replayed) in runs {
            for (i, r) in replayed.iter().enumerate() {
                writeln!(out, "{}", output::json(&seq.id, i, r))?;
            }
        }
        return Ok(());
    }
    let ids: Vec<String> = runs
        .iter()
        .map(|(seq, _)| output::id_text(&seq.id))
        .collect();
    let width = ids
        .iter()
        .map(|id| id.chars().count())
        .max()
        .unwrap_or(0)
        .max(2);
    writeln!(out, "{}", output::table_header(width))?;
    for ((_, replayed), id) in runs.iter().zip(&ids) {
        if replayed.is_empty() {
            writeln!(out, "{id:<width$}  (no reviews)")?;
        }
        for (i, r) in replayed.iter().enumerate() {
            writeln!(out, "{}", output::table_row(id, width, i, r))?;
        }
    }
    Ok(())
}

fn read_input(args: &SimulateArgs) -> Result<String> {
    if args.input.as_os_str() == "-" {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("reading review histories (JSON) from stdin; end with Ctrl-D");
        }
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))
    }
}

fn config(args: &SimulateArgs) -> Result<FsrsConfig> {
    let mut config = FsrsConfig::default()
        .with_desired_retention(args.retention)
        .with_learning_steps(&steps(&args.learning_steps).context("--learning-steps")?)
        .with_relearning_steps(&steps(&args.relearning_steps).context("--relearning-steps")?)
        .with_maximum_interval(args.max_interval)
        .with_fuzz_seed(args.fuzz_seed);
    if let Some(params) = &args.params {
        // Also accepts a pasted list: `[0.212, 1.2931, …]`.
        let weights = params
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|w| {
                w.trim()
                    .parse::<f64>()
                    .map_err(|_| anyhow!("--params: {:?} is not a number", w.trim()))
            })
            .collect::<Result<Vec<_>>>()?;
        config = config.with_parameters(&weights);
    }
    Ok(config)
}

/// `1m,10m` → [60, 600]; `none` or nothing → [].
fn steps(text: &str) -> Result<Vec<u32>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(vec![]);
    }
    text.split(',')
        .map(|step| {
            let step = step.trim();
            let split = step
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(step.len());
            let (number, unit) = step.split_at(split);
            let unit_seconds = match unit.trim() {
                "" | "s" => 1,
                "m" => 60,
                "h" => 3_600,
                "d" => 86_400,
                _ => bail!("{step:?} is not a step (e.g. 30s, 1m, 10m, 1h, 1d)"),
            };
            number
                .parse::<u32>()
                .ok()
                .and_then(|n| n.checked_mul(unit_seconds))
                .ok_or_else(|| anyhow!("{step:?} is not a step (e.g. 30s, 1m, 10m, 1h, 1d)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_take_units() {
        assert_eq!(steps("1m,10m").unwrap(), [60, 600]);
        assert_eq!(steps(" 30s, 1h ,2d").unwrap(), [30, 3600, 172_800]);
        assert_eq!(steps("90").unwrap(), [90]);
        assert!(steps("none").unwrap().is_empty());
        assert!(steps("").unwrap().is_empty());
        assert!(steps("5x").is_err());
        assert!(steps("m").is_err());
    }
}
