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
//! - [`cli`]: every flag and subcommand.
//! - [`secret`]: where the JWT secret comes from (flag, env, or a local file).
//! - [`serve`]: `mnemo serve [all|api|projector]`.
//! - [`client`]: gRPC channel with the bearer token.
//! - [`cmd`]: one module per client command.
//! - [`bench`]: `mnemo bench append|pipeline|extract|embed|progress|replay|search`.

mod bench;
mod cli;
mod client;
mod cmd;
mod eval;
mod secret;
mod serve;

use clap::Parser;

use crate::cli::{Cli, Command};

/// mimalloc instead of the system allocator: replay and rebuild decode
/// and free small allocations on several threads, where glibc's malloc was
/// the top symbol of a profile (decision 017).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`, which `libmimalloc-sys` names no
/// constant for: in the vendored v2 header it is the option right after
/// `mi_option_eager_commit_delay` (a test pins the vendored version).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_eager_commit_delay + 1;

/// Memory freed is handed back to the OS after a second, not mimalloc's
/// 10 ms: a rebuild frees and reallocates each batch's ~100 MB, and giving
/// it back at once made the kernel fault in and zero fresh pages for every
/// batch (a tenth of this process's CPU in a rebuild). `MIMALLOC_PURGE_DELAY`
/// in the environment still wins.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores an integer option (an atomic write
        // in mimalloc); the option id is checked by the test below.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1_000) };
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tune_allocator();
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
            cli::EvalCommand::Ir(ir) => eval::run(&cli.global, ir).await,
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

#[cfg(test)]
mod tests {
    /// The purge-delay option id was read off this mimalloc's header: a
    /// new vendored version must be checked again.
    #[test]
    fn the_allocator_option_ids_are_those_of_the_vendored_mimalloc() {
        // SAFETY: plain getters.
        let version = unsafe { libmimalloc_sys::mi_version() };
        assert_eq!(
            version, 20302,
            "mimalloc {version}: re-check MI_OPTION_PURGE_DELAY"
        );
        super::tune_allocator();
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(
            delay == 1_000 || std::env::var_os("MIMALLOC_PURGE_DELAY").is_some(),
            "{delay}"
        );
    }
}
