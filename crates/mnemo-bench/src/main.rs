//! `mnemo-bench`: mnemo's benchmarks and evaluations, kept out of the
//! user-facing `mnemo` binary. `mnemo-bench append|progress|pipeline|extract|
//! embed|search|replay|abuse|fairness|load|chaos` each print a table of measurements (docs/benchmarks.md
//! has the figures and how they were taken); `mnemo-bench eval ir` scores
//! retrieval on a BEIR dataset. `mnemo bench …` and `mnemo eval …` run this
//! binary with the rest of their command line.
//!
//! Owns: setting up what is measured (a throwaway namespace, synthetic
//! events, the real services as `mnemo serve` child processes), the clock,
//! and the tables.
//! Must not: be needed to run mnemo, or leave anything behind — every run
//! deletes its namespace (streams, bucket, schema) unless `--keep`. The
//! processes it measures (`pipeline`'s, `chaos`'s and `eval ir`'s services, `extract`'s
//! PDF worker) are started from the `mnemo` binary beside this one (or
//! `MNEMO_BIN`), so what is measured is what ships.
//!
//! # Layout
//! - [`cli`]: the global flags and the list of benchmarks.
//! - [`append`]: `append` (commands/s, upload latency), and the command
//!   executor and synthetic upload `progress` shares.
//! - [`progress`]: `progress` (event appended → watcher received).
//! - [`pipeline`]: `pipeline DIR` (a folder through the real services).
//! - [`extract`]: `extract DIR` (pdf-rs against pdftotext).
//! - [`embed`]: `embed CORPUS` (the model's tokens per CPU-second).
//! - [`search`]: `search` (vector index exact vs HNSW, hybrid search, many
//!   owners within the API's memory budget).
//! - [`replay`]: `replay` (rebuilding the read models from sequence 1).
//! - [`eval`]: `eval ir` (nDCG@10, recall@100 on a BEIR dataset).
//! - [`abuse`]: `abuse` (pathological inputs, peak RSS per case).
//! - [`fairness`]: `fairness` (a small upload under another owner's batch).
//! - [`load`]: `load` (many owners' watchers, searches and uploads; a
//!   bystander's latency).
//! - [`chaos`]: `chaos` (every service killed and stopped mid-run, a
//!   rolling restart under load).
//! - [`services`]: the `mnemo` binary's services as child processes.
//! - [`timing`]: percentiles and milliseconds as the tables print them.

mod abuse;
mod append;
mod chaos;
mod cli;
mod embed;
mod eval;
mod extract;
mod fairness;
mod load;
mod pipeline;
mod progress;
mod replay;
mod search;
mod services;
mod timing;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    // The same allocator and tuning as `mnemo`: `replay` measures rebuild
    // throughput, which depends on it (decision 017).
    mnemo::allocator::tune();
    let cli = Cli::parse();
    mnemo::binary::init_tracing(cli.global.log.as_deref().unwrap_or("warn"));
    let global = cli.global;
    mnemo::binary::exit_code(match cli.command {
        Command::Append(bench) => append::run(bench).await,
        Command::Progress(bench) => progress::run(bench).await.map(|_| ExitCode::SUCCESS),
        Command::Extract(bench) => extract::run(bench).await,
        Command::Replay(bench) => replay::run(bench).await,
        Command::Embed(bench) => embed::run(bench).await,
        Command::Search(bench) => search::run(bench).await,
        Command::Pipeline(bench) => pipeline::run(&global, bench).await,
        Command::Abuse(bench) => abuse::run(&global, bench).await,
        Command::Fairness(bench) => fairness::run(&global, bench).await,
        Command::Load(bench) => load::run(&global, bench).await,
        Command::Chaos(bench) => chaos::run(&global, bench).await,
        Command::Eval(args) => match args.command {
            eval::EvalCommand::Ir(ir) => eval::run(&global, ir).await,
        },
    })
}
