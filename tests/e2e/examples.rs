//! The examples in `examples/` run against a real server, so what
//! docs/api.md shows never rots: each quickstart (Python, TypeScript)
//! uploads a real PDF, watches it to `indexed` and finds it by search;
//! given a broken PDF it reports the failure's stage and code; given a
//! bad token, the refusal's code and reason.
//!
//! Python: `MNEMO_EXAMPLES_PYTHON`, else `<repo>/.mnemo/venv-examples`
//! (made by `examples/python/setup.sh`); TypeScript: the packages and
//! generated clients `examples/typescript/setup.sh` installs. Both scripts
//! are run by deploy/local/test.sh.

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

/// The TypeScript example's folder, set up (packages and generated clients).
fn typescript() -> PathBuf {
    let dir = repo().join("examples/typescript");
    assert!(
        dir.join("node_modules/.bin/tsx").exists() && dir.join("gen").exists(),
        "run examples/typescript/setup.sh (deploy/local/test.sh does)"
    );
    dir
}

#[derive(Clone, Copy, Debug)]
enum Example {
    Python,
    TypeScript,
}

impl Example {
    /// The command that runs this quickstart, before its arguments.
    fn command(self) -> tokio::process::Command {
        match self {
            Example::Python => {
                let mut c = tokio::process::Command::new(python());
                c.arg(repo().join("examples/python/quickstart.py"));
                c
            }
            Example::TypeScript => {
                let dir = typescript();
                let mut c = tokio::process::Command::new(dir.join("node_modules/.bin/tsx"));
                c.current_dir(&dir).arg("quickstart.ts");
                c
            }
        }
    }
}

/// Runs the quickstart on `pdf` and `query`; its exit code and JSON lines.
async fn quickstart(
    example: Example,
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
    let out = example
        .command()
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
        .output();
    // A hung example fails its test instead of hanging CI.
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), out)
        .await
        .unwrap_or_else(|_| panic!("{example:?} quickstart did not finish"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "{example:?}: not a JSON line ({e}): {l}\nstderr: {}",
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
    quickstarts_work(Example::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_quickstart_typechecks_uploads_watches_and_searches() {
    // The example compiles against the clients generated from protos/.
    let tsc = tokio::process::Command::new(typescript().join("node_modules/.bin/tsc"))
        .current_dir(typescript())
        .arg("--noEmit")
        .output()
        .await
        .unwrap();
    assert!(
        tsc.status.success(),
        "{}",
        String::from_utf8_lossy(&tsc.stdout)
    );
    quickstarts_work(Example::TypeScript).await;
}

/// One example's run: indexed and found, failed with a code, refused.
async fn quickstarts_work(example: Example) {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;

    let token = env.token("alice");
    let (code, lines) = quickstart(
        example,
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
    let (code, lines) = quickstart(
        example,
        &env,
        &token,
        "broken_infinite_loop103.pdf",
        "anything",
    )
    .await;
    assert_eq!(code, 1, "{lines:#?}");
    let failed = events(&lines, "failed");
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert_eq!(failed[0]["stage"], "STAGE_EXTRACTING");
    assert_eq!(failed[0]["code"], "FAILURE_CODE_DAMAGED");

    // A refused call: exit 2 with the status code and a reason to act on.
    let (code, lines) =
        quickstart(example, &env, "not-a-token", "paper_journal_3b2.pdf", "x").await;
    assert_eq!(code, 2, "{lines:#?}");
    let refused = events(&lines, "refused");
    assert_eq!(refused[0]["code"], "UNAUTHENTICATED", "{lines:#?}");
    assert!(
        refused[0]["reason"].as_str().unwrap().contains("not a JWT"),
        "{lines:#?}"
    );
}

/// `buf curl` (pinned in tools/buf), as docs/api.md shows it: the server's
/// reflection describes the API (v1alpha too, which older tools ask for),
/// the token comes from stdin, and a search finds what was indexed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buf_curl_reads_the_api_by_reflection_and_searches() {
    let buf = repo().join("tools/buf/node_modules/.bin/buf");
    assert!(
        buf.exists(),
        "run tools/buf/setup.sh (deploy/local/test.sh does)"
    );
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let up = mnemo_tests::upload(
        &mut docs,
        "cells.md",
        b"# Cells\n\nMitochondria make ATP for the cell.\n",
    )
    .await
    .unwrap();
    let indexed = mnemo_tests::terminal_update(&env, "alice", &up.document_id).await;
    let url = format!("http://{}", env.addr.unwrap());
    let curl = |args: Vec<String>| {
        let buf = buf.clone();
        let header = format!("authorization: Bearer {}\n", env.token("alice"));
        async move {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new(buf)
                .arg("curl")
                .args(["--protocol", "grpc", "--http2-prior-knowledge", "-H", "@-"])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(header.as_bytes()).await.unwrap();
            drop(stdin);
            let out = child.wait_with_output().await.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    for protocol in ["grpc-v1", "grpc-v1alpha"] {
        let services = curl(vec![
            "--reflect-protocol".into(),
            protocol.into(),
            "--list-services".into(),
            url.clone(),
        ])
        .await;
        assert!(
            services.contains("mnemo.v1.SearchService"),
            "{protocol}: {services}"
        );
    }
    let body = serde_json::json!({
        "query": "what makes ATP",
        "k": 3,
        "minSequence": indexed.sequence.to_string(),
    });
    let found: serde_json::Value = serde_json::from_str(
        &curl(vec![
            "-d".into(),
            body.to_string(),
            format!("{url}/mnemo.v1.SearchService/Search"),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(found["hits"][0]["title"], "cells.md", "{found}");
}
