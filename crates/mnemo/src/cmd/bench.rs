//! `mnemo bench …` and `mnemo eval …`, hidden: the benchmarks and
//! evaluations are their own binary, `mnemo-bench`, so that this one does
//! not carry them. These keep the documented commands working by running
//! `mnemo-bench` in this process's place with the rest of the command line
//! (`mnemo bench pipeline DIR` is `mnemo-bench pipeline DIR`, `mnemo eval
//! ir …` is `mnemo-bench eval ir …`).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Global;

/// Everything after `bench` (or `eval`), `--help` included, for `mnemo-bench`.
#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct ForwardArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Replaces this process with `mnemo-bench PREFIX ARGS…`, so its output, exit
/// status and signals (Ctrl-C stops the benchmark, which cleans up) are the
/// benchmark's own. Returns only when it cannot be started.
pub fn forward(global: &Global, prefix: &[&str], args: ForwardArgs) -> Result<ExitCode> {
    let program = crate::binary::sibling("mnemo-bench", "MNEMO_BENCH_BIN")?;
    let mut command = std::process::Command::new(&program);
    command.args(prefix).args(&args.args);
    // Global flags given before `bench` were parsed here, not by the child:
    // they reach it as the variables it reads them from (a flag after
    // `bench` is the child's own and still wins).
    command.envs(global.env());
    let error = command.exec();
    Err(error).with_context(|| format!("cannot run {}", program.display()))
}
