//! The `mnemo` binary as a user meets it off a terminal (piped, as in a
//! script or CI log): every file's outcome in full, a summary, exit codes
//! that say whether anything failed, and errors that say what to do.

use std::path::PathBuf;
use std::process::{Output, Stdio};

use mnemo_tests::{corpus_pdf, EnvOptions, TestEnv};

/// The `mnemo` binary cargo built beside this test (`cargo test
/// --workspace` builds it: the `mnemo` package has integration tests).
fn mnemo_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/mnemo
    let bin = exe.parent().unwrap().parent().unwrap().join("mnemo");
    assert!(bin.exists(), "{} is not built", bin.display());
    bin
}

/// A child that outlives this is hung: the test fails instead of CI.
const CHILD_WITHIN: std::time::Duration = std::time::Duration::from_secs(180);

/// Runs `mnemo ARGS` against the env's API as alice, stdout and stderr piped.
async fn mnemo(env: &TestEnv, token: &str, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(mnemo_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // A bare host:port, as users type it.
        .env("MNEMO_SERVER", env.addr.unwrap().to_string())
        .env("MNEMO_TOKEN", token)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(CHILD_WITHIN, run)
        .await
        .unwrap_or_else(|_| panic!("mnemo {args:?} did not finish"))
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_watch_off_a_terminal_says_each_outcome_and_fails_when_one_failed() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let token = env.token("alice");
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.md");
    std::fs::write(&notes, "# Cells\n\nMitochondria make ATP for the cell.\n").unwrap();
    let broken = dir.path().join("broken.pdf");
    std::fs::write(&broken, corpus_pdf("broken_infinite_loop103.pdf")).unwrap();
    let (notes, broken) = (notes.to_str().unwrap(), broken.to_str().unwrap());

    let out = mnemo(&env, &token, &["upload", "--watch", notes, broken]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let line = |file: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(file))
            .unwrap_or_else(|| panic!("no line for {file}: {stdout}"))
            .to_owned()
    };
    assert!(
        line(notes).contains(": indexed: 1 chunk searchable"),
        "{stdout}"
    );
    let failed = line(broken);
    assert!(
        failed.contains(": failed while extracting: damaged PDF") && failed.ends_with("[damaged]"),
        "{failed}"
    );
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.starts_with("2 files: 1 failed, 1 indexed (batch "),
        "{summary}"
    );
    let batch = summary
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();

    // The same batch followed later: its outcome, and the same exit rule.
    let out = mnemo(&env, &token, &["progress", "--batch", &batch]).await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("[damaged]"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("2 documents: 1 indexed, 1 failed"),
        "{stdout}"
    );

    // The same bytes again: the earlier document, not a second run.
    let out = mnemo(&env, &token, &["upload", "--watch", notes]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(": indexed: already uploaded as "),
        "{stdout}"
    );

    // A file that failed, uploaded again: that document, the same exit
    // rule, and how to run it again.
    let out = mnemo(&env, &token, &["upload", "--watch", broken]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(": failed: already uploaded as ")
            && stdout.contains("mnemo docs reprocess"),
        "{stdout}"
    );

    // A directory: said once, plainly, nothing uploaded.
    let out = mnemo(&env, &token, &["upload", dir.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("is a directory").count(), 1, "{stderr}");
    assert!(!stderr.contains("metadata"), "{stderr}");
}

#[tokio::test]
async fn a_refused_token_says_why_and_gives_no_resume_advice() {
    let env = TestEnv::start().await;
    // Signed with another secret.
    let other = mnemo_api::auth::Authenticator::new(b"another-secret-0123456789abcdef-0123");
    let token = other
        .issue(&mnemo_domain::OwnerId::new("alice").unwrap(), 60, false)
        .unwrap();
    let out = mnemo(&env, &token, &["progress", "--all"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("signed with a different secret"),
        "{stderr}"
    );
    assert!(!stderr.contains("--from"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes off a terminal: {stderr:?}"
    );
}

#[tokio::test]
async fn doctor_fails_when_the_api_does_not_answer() {
    let env = TestEnv::start().await;
    let doctor = |server: String| async move {
        let run = tokio::process::Command::new(mnemo_bin())
            .args(["doctor", "--server", &server])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(CHILD_WITHIN, run)
            .await
            .expect("doctor finishes")
            .unwrap()
    };
    let out = doctor("127.0.0.1:9".into()).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] api"), "{stdout}");
    assert!(
        stdout.contains("nothing answers at 127.0.0.1:9"),
        "{stdout}"
    );
    // Without a key file (the environment is cleared) it says so.
    assert!(stdout.contains("[FAIL] key file"), "{stdout}");
    // And passes that check against a running API (bare host:port).
    let addr = env.addr.unwrap().to_string();
    let out = doctor(addr.clone()).await;
    let stdout = text(&out.stdout);
    let api = stdout
        .lines()
        .find(|l| l.contains("] api"))
        .unwrap_or_default();
    assert!(
        api.starts_with("[ok  ]") && api.ends_with(&format!("{addr} serves mnemo")),
        "{stdout}"
    );
}
