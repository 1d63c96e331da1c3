//! The `mnemo` binary: parses the command line, sets up logging and runs
//! the command. What each command does, and the layout, are in the
//! library's docs (`lib.rs`).

use clap::Parser;
use mnemo::cli::{Cli, Command};
use mnemo::{allocator, binary, cmd, serve, telemetry};

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
    let filter = cli.global.log.as_deref().unwrap_or(default_log);
    // Only `serve` exports traces (--otlp-endpoint), under its service's name.
    let otlp = match &cli.command {
        Command::Serve(args) => Some((&args.otlp, args.service.name())),
        _ => None,
    };
    let telemetry = match telemetry::init(filter, otlp) {
        Ok(t) => t,
        Err(e) => return binary::exit_code(Err(e)),
    };
    let code = binary::exit_code(match cli.command {
        Command::Serve(args) => serve::run(&cli.global, *args).await,
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
        Command::Bench(args) => cmd::bench::forward(&cli.global, &[], args),
        Command::Eval(args) => cmd::bench::forward(&cli.global, &["eval"], args),
        Command::Dlq(args) => cmd::dlq::run(args).await,
        Command::Nats(args) => cmd::nats::run(args).await,
        Command::Extract(args) => cmd::extract::run(args).await,
        Command::ExtractWorker { file } => Ok(mnemo_pdf::worker::main(&file)),
        Command::Fsrs(args) => cmd::fsrs::run(args),
        Command::Model(args) => cmd::model::run(&cli.global, args).await,
        Command::Backfill(args) => cmd::backfill::run(args).await,
        Command::Topics(args) => cmd::topics::run(&cli.global, args).await,
        Command::Review(args) => cmd::review::run(&cli.global, args).await,
        Command::Study(args) => cmd::study::run(&cli.global, args).await,
        Command::Replay(args) => cmd::replay::run(&cli.global, args).await,
        Command::Learner(args) => cmd::learner::run(args).await,
        Command::Keys(args) => cmd::keys::run(args),
    });
    // The last spans go out before the process ends (blocking: off the runtime).
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}
