//! The examples in `examples/` run against a real server, so what
//! docs/api.md shows never rots: the Python quickstart uploads a real PDF,
//! watches it to `indexed` and finds it by search; given a broken PDF it
//! reports the failure's stage and code.
//!
//! Python: `MNEMO_EXAMPLES_PYTHON`, else `<repo>/.mnemo/venv-examples`
//! (made by `examples/python/setup.sh`, which deploy/local/test.sh runs).

use std::path::PathBuf;
use std::process::Stdio;

use mnemo_tests::{corpus_dir, EnvOptions, TestEnv};

fn repo() -> PathBuf {
    // This crate is `<repo>/tests`.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let python = std::env::var_os("MNEMO_EXAMPLES_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".mnemo/venv-examples/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run examples/python/setup.sh (deploy/local/test.sh does), \
         or point MNEMO_EXAMPLES_PYTHON at a python with grpcio and grpcio-tools",
        python.display()
    );
    python
}

/// Runs the quickstart on `pdf` and `query`; its exit code and JSON lines.
async fn quickstart(
    env: &TestEnv,
    token: &str,
    pdf: &str,
    query: &str,
) -> (i32, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    // The token goes in a file (0600), as a user would keep it: never in
    // the child's environment or command line.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = tokio::process::Command::new(python())
        .arg(repo().join("examples/python/quickstart.py"))
        .arg("--server")
        .arg(env.addr.unwrap().to_string())
        .arg("--token-file")
        .arg(&token_file)
        .arg(corpus_dir().join(pdf))
        .arg(query)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "not a JSON line ({e}): {l}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn events<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_quickstart_uploads_watches_and_searches() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;

    let token = env.token("alice");
    let (code, lines) = quickstart(
        &env,
        &token,
        "paper_journal_3b2.pdf",
        "shift work interventions and work-family conflict",
    )
    .await;
    assert_eq!(code, 0, "{lines:#?}");
    assert_eq!(events(&lines, "uploaded").len(), 1, "{lines:#?}");
    let stages: Vec<&str> = events(&lines, "progress")
        .iter()
        .map(|l| l["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages.last(), Some(&"STAGE_INDEXED"), "{stages:?}");
    let fractions: Vec<f64> = events(&lines, "progress")
        .iter()
        .map(|l| l["fraction"].as_f64().unwrap())
        .collect();
    assert!(fractions.windows(2).all(|w| w[1] >= w[0]), "{fractions:?}");
    let hits = events(&lines, "hit");
    assert!(!hits.is_empty(), "{lines:#?}");
    assert_eq!(hits[0]["title"], "paper_journal_3b2.pdf");
    assert!(
        hits[0]["snippet"].as_str().unwrap().contains('«'),
        "{:?}",
        hits[0]
    );

    // A broken PDF: exit 1, with where and why as codes.
    let (code, lines) = quickstart(&env, &token, "broken_infinite_loop103.pdf", "anything").await;
    assert_eq!(code, 1, "{lines:#?}");
    let failed = events(&lines, "failed");
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert_eq!(failed[0]["stage"], "STAGE_EXTRACTING");
    assert_eq!(failed[0]["code"], "FAILURE_CODE_DAMAGED");

    // A refused call: exit 2 with the status code and a reason to act on.
    let (code, lines) = quickstart(&env, "not-a-token", "paper_journal_3b2.pdf", "x").await;
    assert_eq!(code, 2, "{lines:#?}");
    let refused = events(&lines, "refused");
    assert_eq!(refused[0]["code"], "UNAUTHENTICATED", "{lines:#?}");
    assert!(
        refused[0]["reason"].as_str().unwrap().contains("not a JWT"),
        "{lines:#?}"
    );
}
