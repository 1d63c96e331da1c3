//! What both of this package's binaries do around a command: set up
//! logging, turn its result into the exit status, and find each other.
//!
//! `mnemo` and `mnemo-bench` are built into the same target directory, so
//! each looks for the other beside itself: `mnemo bench …` runs
//! `mnemo-bench`, and the benchmarks start `mnemo serve …` and `mnemo
//! extract-worker` children (the real services, not copies linked into the
//! benchmark). An environment variable overrides the place, for an install
//! that keeps them apart.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

/// Logs go to stderr: stdout is for results (tables, `--json`) and, for
/// `extract-worker`, a protocol. Commands other than `serve` export no
/// traces ([`crate::telemetry`]).
pub fn init_tracing(filter: &str) {
    if let Err(e) = crate::telemetry::init(filter, None) {
        eprintln!("warning: {e:#}");
    }
}

/// A command's outcome as the process's exit status; an error is printed
/// with its causes, on one line.
pub fn exit_code(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The package's binary `name`: `$env` if set, else the file of that name
/// beside the running executable. Missing, it says how to build it.
pub fn sibling(name: &str, env: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{env} is {}, which is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let path = exe.with_file_name(name);
    if !path.is_file() {
        // The same profile as this binary, so the two land side by side.
        let release = if cfg!(debug_assertions) {
            ""
        } else {
            " --release"
        };
        bail!(
            "`{name}` is not built: expected {}, beside this binary. Build it with `cargo build{release} -p {name}` (or set {env} to its path)",
            path.display()
        );
    }
    Ok(path)
}
