//! `mnemo bench …` and `mnemo eval …` hand their command line to the
//! `mnemo-bench` binary. A stand-in script (through `MNEMO_BENCH_BIN`)
//! prints what it was given, so these run without building the benchmarks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `mnemo-bench` that prints its arguments, then the variables the
/// forwarder sets, and exits 3 (so the status is seen to pass through).
fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("mnemo-bench");
    std::fs::write(
        &path,
        "#!/bin/sh\necho \"args: $*\"\necho \"owner: $MNEMO_OWNER\"\necho \"log: $MNEMO_LOG\"\nexit 3\n",
    )
    .expect("write the stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the stand-in executable");
    path
}

/// Runs `mnemo ARGS` with the stand-in as `mnemo-bench`; checks that the
/// stand-in's exit status came back, and returns what it printed.
fn forwarded(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .args(args)
        .env("MNEMO_BENCH_BIN", stand_in(dir.path()))
        .env_remove("MNEMO_OWNER")
        .env_remove("MNEMO_LOG")
        .output()
        .expect("run mnemo");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bench_runs_mnemo_bench_with_the_rest_of_the_command_line() {
    let out = forwarded(&[
        "--owner", "bob", "bench", "pipeline", "some dir", "--keep", "--log", "debug", "--help",
    ]);
    assert_eq!(
        out,
        "args: pipeline some dir --keep --log debug --help\nowner: bob\nlog: \n"
    );
}

#[test]
fn eval_runs_mnemo_bench_eval() {
    let out = forwarded(&["--log", "info", "eval", "ir", "--corpus", "c.jsonl"]);
    assert_eq!(
        out,
        "args: eval ir --corpus c.jsonl\nowner: local\nlog: info\n"
    );
}

#[test]
fn bench_without_mnemo_bench_says_how_to_build_it() {
    // The build directory may hold a mnemo-bench; a copy of mnemo alone in
    // a folder has none beside it.
    let dir = tempfile::tempdir().expect("a temp dir");
    let alone = dir.path().join("mnemo");
    std::fs::copy(env!("CARGO_BIN_EXE_mnemo"), &alone).expect("copy mnemo");
    let out = Command::new(&alone)
        .args(["bench", "append"])
        .env_remove("MNEMO_BENCH_BIN")
        .output()
        .expect("run the copy");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`mnemo-bench` is not built") && stderr.contains("-p mnemo-bench"),
        "{stderr}"
    );
}

#[test]
fn help_lists_neither_bench_nor_eval() {
    let out = Command::new(env!("CARGO_BIN_EXE_mnemo"))
        .arg("--help")
        .output()
        .expect("run mnemo --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("  upload"), "{help}");
    for hidden in ["  bench", "  eval", "  extract-worker"] {
        assert!(!help.contains(hidden), "{hidden} is listed:\n{help}");
    }
}
