//! The pdf-rs worker's sandbox against real faults: the test worker
//! (`tests/src/bin/extract_worker.rs`) really panics, aborts, overflows its
//! stack, loops, eats memory, floods its output or crawls when a file asks
//! it to. Each fault fails that document alone, with a reason that says
//! what happened; the service goes on with the next document.

use std::time::Duration;

use mnemo_extractor::pdf_worker::{self, WorkerError};
use mnemo_extractor::ExtractorConfig;
use mnemo_proto::v1 as pb;
use mnemo_tests::{
    corpus_pdf, extractor_config, minimal_pdf, terminal_update, upload, EnvOptions, TestEnv,
};

/// A file the test worker reads as `fault`. Not a PDF past its first
/// line, so `pdftotext` (the fallback) fails on it as well.
fn fault_file(fault: &str) -> Vec<u8> {
    format!("%PDF-1.4\n%mnemo-test-fault {fault}\n% nothing else here\n").into_bytes()
}

/// Tight limits, so the slow faults end quickly.
fn tight() -> ExtractorConfig {
    ExtractorConfig {
        step_timeout: Duration::from_secs(2),
        document_timeout: Duration::from_secs(4),
        cpu_limit: Duration::from_secs(30),
        max_output_bytes: 1024 * 1024,
        ..extractor_config()
    }
}

/// Runs the test worker on a fault file; returns its failure reason.
async fn worker_failure(fault: &str, config: &ExtractorConfig) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fault.pdf");
    std::fs::write(&path, fault_file(fault)).unwrap();
    let worker = config.pdf_worker.clone().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    match pdf_worker::run(&worker, &path, config, &tx).await {
        Err(WorkerError::Failed(why)) => why,
        other => panic!("{fault}: expected a failure, got {other:?}"),
    }
}

/// The whole pipeline with this extractor config.
async fn pipeline(extractor: ExtractorConfig) -> TestEnv {
    TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        extractor: Some(extractor),
        ..Default::default()
    })
    .await
}

fn assert_says(why: &str, parts: &[&str]) {
    for p in parts {
        assert!(why.contains(p), "{p:?} not in {why:?}");
    }
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let why = worker_failure("panic", &tight()).await;
    assert_says(
        &why,
        &[
            "the PDF worker stopped (exit status 101) after 1 of 2 pages",
            "thread 'pdf'",
            "panicked at",
            "index out of bounds",
        ],
    );
    // Stderr is quoted, not dumped: 2,000 warning lines came before the panic.
    assert!(why.len() < 600, "{} bytes: {why}", why.len());
}

#[tokio::test]
async fn an_abort_is_a_crash_with_its_signal() {
    let why = worker_failure("abort", &tight()).await;
    assert_says(&why, &["crashed (signal 6 (abort)) after 1 of 2 pages"]);
}

#[tokio::test]
async fn a_stack_overflow_is_a_crash_not_a_service_death() {
    let why = worker_failure("stack-overflow", &tight()).await;
    assert_says(
        &why,
        &["crashed (signal 6 (abort))", "overflowed its stack"],
    );
}

#[tokio::test]
async fn an_endless_loop_is_cut_at_the_page_timeout() {
    let started = std::time::Instant::now();
    let why = worker_failure("loop", &tight()).await;
    assert_says(
        &why,
        &["gave up after 2 s on one page", "after 1 of 2 pages"],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_document_of_slow_pages_is_cut_at_the_document_deadline() {
    // Every page arrives well within the 2 s page limit; the 4 s document
    // deadline still ends it.
    let why = worker_failure("slow-pages", &tight()).await;
    assert_says(&why, &["gave up after 4 s on the document"]);
}

#[tokio::test]
async fn the_cpu_limit_stops_a_loop_the_clock_would_allow() {
    let config = ExtractorConfig {
        step_timeout: Duration::from_secs(60),
        document_timeout: Duration::from_secs(60),
        cpu_limit: Duration::from_secs(1),
        ..tight()
    };
    let started = std::time::Instant::now();
    let why = worker_failure("loop", &config).await;
    assert_says(&why, &["crashed (signal", "after 1 of 2 pages"]);
    assert!(
        why.contains("signal 24 (CPU time limit)") || why.contains("signal 9 (killed)"),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_memory_blow_up_hits_the_address_space_limit() {
    // A gigabyte takes a while to fill on a busy machine: a looser clock.
    let config = ExtractorConfig {
        step_timeout: Duration::from_secs(30),
        document_timeout: Duration::from_secs(30),
        ..tight()
    };
    let why = worker_failure("memory", &config).await;
    assert_says(
        &why,
        &["crashed (signal 6 (abort))", "memory allocation of"],
    );
}

#[tokio::test]
async fn a_flood_of_output_is_cut_at_the_cap() {
    let why = worker_failure("flood", &tight()).await;
    assert_says(
        &why,
        &["wrote more than 1 MiB of text", "after 0 of 1 pages"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_its_document_alone_and_the_service_goes_on() {
    let config = ExtractorConfig {
        step_timeout: Duration::from_secs(5),
        document_timeout: Duration::from_secs(20),
        ..tight()
    };
    let env = pipeline(config).await;
    let mut docs = env.documents("alice").await;
    let faults = [
        ("panic", "index out of bounds"),
        ("abort", "signal 6 (abort)"),
        ("stack-overflow", "overflowed its stack"),
        ("loop", "gave up after 5 s on one page"),
        ("memory", "memory allocation of"),
    ];
    let mut uploaded = Vec::new();
    for (fault, _) in faults {
        let up = upload(&mut docs, &format!("{fault}.pdf"), &fault_file(fault))
            .await
            .unwrap();
        uploaded.push(up.document_id);
    }
    // Uploaded last: it is extracted after every fault has happened.
    let paper = upload(
        &mut docs,
        "vespa.pdf",
        &corpus_pdf("bio_vespa_bioinformatics.pdf"),
    )
    .await
    .unwrap();
    for ((fault, says), id) in faults.iter().zip(&uploaded) {
        let end = terminal_update(&env, "alice", id).await;
        assert_eq!(
            end.stage,
            pb::Stage::Failed as i32,
            "{fault}: {}",
            end.message
        );
        // pdftotext could not read the file either; the reason keeps both.
        assert!(
            end.message.contains("damaged PDF") && end.message.contains(says),
            "{fault}: {}",
            end.message
        );
    }
    let end = terminal_update(&env, "alice", &paper.document_id).await;
    assert_eq!(end.stage, pb::Stage::Indexed as i32, "{}", end.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_extraction_keeps_its_delivery_without_redelivery() {
    // Ack wait 2 s, a worker silent for 6 s: without the handler's
    // heartbeat JetStream would hand the document to the second slot.
    // The worker counts its starts in a file of the test's: the sandbox
    // would (rightly) keep it from writing there, so this test, about the
    // heartbeat, runs its readers with limits only, and lets `nobody`
    // write that one directory.
    let config = ExtractorConfig {
        step_timeout: Duration::from_secs(20),
        document_timeout: Duration::from_secs(30),
        ack_wait: Duration::from_secs(2),
        sandbox: mnemo_extractor::isolation::SandboxMode::Limits,
        ..extractor_config()
    };
    let env = pipeline(config).await;
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let runs = dir.path().join("runs");
    let mut file = format!("%PDF-1.4\n%mnemo-test-fault sleep 6 {}\n", runs.display()).into_bytes();
    file.extend_from_slice(&minimal_pdf()[9..]);
    let mut docs = env.documents("alice").await;
    let up = upload(&mut docs, "slow.pdf", &file).await.unwrap();
    let end = terminal_update(&env, "alice", &up.document_id).await;
    assert_eq!(end.stage, pb::Stage::Indexed as i32, "{}", end.message);
    let started = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(started.lines().count(), 1, "the worker ran {started:?}");
}
