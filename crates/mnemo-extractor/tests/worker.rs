//! The pdf-rs worker's sandbox, with stand-in workers that misbehave the
//! ways a hostile PDF can make a parser misbehave.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mnemo_extractor::pdf_worker::{self, PdfWorker, WorkerError};
use mnemo_extractor::ExtractorConfig;

fn shell(script: &str) -> PdfWorker {
    // `sh -c SCRIPT FILE`: the worker gets the file as $0.
    PdfWorker {
        program: PathBuf::from("sh"),
        args: vec!["-c".into(), script.into()],
    }
}

fn config() -> ExtractorConfig {
    ExtractorConfig {
        step_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

async fn run(worker: &PdfWorker) -> Result<pdf_worker::WorkerPages, WorkerError> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    pdf_worker::run(worker, std::path::Path::new("/dev/null"), &config(), &tx).await
}

#[tokio::test]
async fn pages_arrive_line_by_line() {
    let w = shell(
        r#"echo '{"pages":2}'; echo '{"page":1,"text":"one"}'; echo '{"page":2,"error":"bad page"}'"#,
    );
    let got = run(&w).await.unwrap();
    assert_eq!(got.pages, vec!["one".to_string(), String::new()]);
    assert_eq!(got.page_errors, 1);
}

#[tokio::test]
async fn a_crash_is_a_failure_with_the_signal() {
    let w = shell(r#"echo '{"pages":3}'; echo '{"page":1,"text":"one"}'; kill -SEGV $$"#);
    match run(&w).await {
        Err(WorkerError::Failed(why)) => assert!(why.contains("signal 11"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_endless_loop_is_cut_at_the_timeout() {
    let started = Instant::now();
    let w = shell(r#"echo '{"pages":1}'; while :; do :; done"#);
    match run(&w).await {
        Err(WorkerError::Failed(why)) => assert!(why.contains("gave up after 2 s"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_memory_blow_up_hits_the_address_space_limit() {
    // Ask for 2 GiB under a 1 GiB limit: the allocation fails, the worker dies.
    let w = shell(r#"echo '{"pages":1}'; exec python3 -c 'x = bytearray(2 * 1024 ** 3)'"#);
    match run(&w).await {
        Err(WorkerError::Failed(why)) => assert!(why.contains("after 0 of 1 pages"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_password_error_is_reported_as_such() {
    let w = shell(
        r#"echo '{"error":"encrypted PDF that needs a password","kind":"needs_password"}'; exit 2"#,
    );
    assert_eq!(run(&w).await.unwrap_err(), WorkerError::NeedsPassword);
}
