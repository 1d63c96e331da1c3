//! `mnemo`: the one binary. Servers (`mnemo serve …`) and the client
//! commands (`upload`, `docs list`, `progress`, `search`, `ask`, `token`, `doctor`, `bench`,
//! `cards`, `topics`, `review`, `study stats`, `replay learner`),
//! and `fsrs simulate`, which runs the domain's scheduler locally.
//!
//! Owns: command-line parsing, configuration (flags with env fallbacks),
//! logging setup, signal handling, and presenting results to people
//! (tables, progress bars) or scripts (`--json`).
//! Must not: hold business logic. Servers are the library crates' `run`/`serve`;
//! client commands speak only the public gRPC API.
//!
//! # Layout
//! - [`allocator`]: the global allocator (mimalloc) and its tuning.
//! - [`cli`]: every flag and subcommand.
//! - [`secret`]: where the JWT secret comes from (flag, env, or a local file).
//! - [`serve`]: `mnemo serve [all|api|projector]`.
//! - [`client`]: gRPC channel with the bearer token.
//! - [`cmd`]: one module per client command.
//! - [`bench`]: `mnemo bench append|pipeline|extract|embed|progress|replay|search`.

mod allocator;
mod bench;
mod cli;
mod client;
mod cmd;
mod eval;
mod secret;
mod serve;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Serve(_) => "info",
        // The worker's stdout is a protocol and its parent reports failures.
        Command::ExtractWorker { .. } => "off",
        _ => "warn",
    };
    init_tracing(cli.global.log.as_deref().unwrap_or(default_log));
    let result = match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Token(args) => cmd::token::run(&cli.global, args),
        Command::Upload(args) => cmd::upload::run(&cli.global, args).await,
        Command::Docs(args) => cmd::docs::run(&cli.global, args).await,
        Command::Progress(args) => cmd::progress::run(&cli.global, args).await,
        Command::Doctor(args) => cmd::doctor::run(&cli.global, args).await,
        Command::Stats(args) => cmd::stats::run(&cli.global, args).await,
        Command::Search(args) => cmd::search::run(&cli.global, args).await,
        Command::Ask(args) => cmd::ask::run(&cli.global, args).await,
        Command::Cards(args) => cmd::cards::run(&cli.global, args).await,
        Command::Projections(args) => cmd::projections::run(args).await,
        Command::Eval(args) => match args.command {
            eval::EvalCommand::Ir(ir) => eval::run(&cli.global, ir).await,
        },
        Command::Dlq(args) => cmd::dlq::run(args).await,
        Command::Extract(args) => cmd::extract::run(args).await,
        Command::ExtractWorker { file } => Ok(mnemo_pdf::worker::main(&file)),
        Command::Bench(args) => bench::run(&cli.global, args).await,
        Command::Fsrs(args) => cmd::fsrs::run(args),
        Command::Model(args) => cmd::model::run(&cli.global, args).await,
        Command::Backfill(args) => cmd::backfill::run(args).await,
        Command::Topics(args) => cmd::topics::run(&cli.global, args).await,
        Command::Review(args) => cmd::review::run(&cli.global, args).await,
        Command::Study(args) => cmd::study::run(&cli.global, args).await,
        Command::Replay(args) => cmd::replay::run(&cli.global, args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
