//! The pdf-rs worker's protocol as the parent reads it, with stand-in
//! workers. Real faults (panic, abort, stack overflow, loops, memory,
//! floods) are injected into the real worker in `tests/e2e/isolation.rs`.

use std::path::PathBuf;
use std::time::Duration;

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
async fn missing_pages_are_a_failure_quoting_stderr() {
    let w = shell(r#"echo '{"pages":3}'; echo '{"page":1,"text":"one"}'; echo 'Error: gone' >&2"#);
    match run(&w).await {
        Err(WorkerError::Failed(why)) => assert_eq!(
            why,
            "the PDF worker stopped (exit status 0) after 1 of 3 pages: Error: gone"
        ),
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

/// An executable stand-in for a poppler tool: `sh` running `script`.
fn tool(dir: &std::path::Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// pdf-rs cannot read the file and pdftotext reads nothing out of it: the
/// file is damaged. Saying "no text layer (OCR not supported)" would send
/// the learner to scan it again.
#[tokio::test]
async fn a_file_neither_reader_gets_text_from_is_damaged_not_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let config = ExtractorConfig {
        pdf_worker: Some(shell(
            r#"echo '{"error":"damaged PDF: the xref table is broken","kind":"damaged"}'; exit 2"#,
        )),
        pdfinfo: tool(dir.path(), "pdfinfo", "echo 'Pages: 2'"),
        // poppler reads what it can, complains, and exits 0.
        pdftotext: tool(
            dir.path(),
            "pdftotext",
            r#"printf '\f\f'; echo 'Syntax Error: Unknown font tag' >&2"#,
        ),
        ..config()
    };
    let got = mnemo_extractor::extract_bytes(
        b"%PDF-1.4 not much else",
        mnemo_domain::content::ContentType::Pdf,
        &config,
    )
    .await;
    match got {
        Err(mnemo_extractor::ExtractError::Damaged(why)) => {
            assert!(why.contains("xref"), "{why}");
            assert!(why.contains("pdftotext read no text"), "{why}");
        }
        other => panic!("{other:?}"),
    }

    // A scan pdf-rs cannot open (a structural hiccup) but pdftotext reads
    // without complaint: no text layer, not damage.
    let quiet = ExtractorConfig {
        pdftotext: tool(dir.path(), "pdftotext-quiet", r#"printf '\f\f'"#),
        ..config.clone()
    };
    let got = mnemo_extractor::extract_bytes(
        b"%PDF-1.4 not much else",
        mnemo_domain::content::ContentType::Pdf,
        &quiet,
    )
    .await;
    assert_eq!(got.err(), Some(mnemo_extractor::ExtractError::NoTextLayer));

    // A real scan (pdf-rs reads it and finds no text) stays a scan.
    let config = ExtractorConfig {
        pdf_worker: Some(shell(r#"echo '{"pages":1}'; echo '{"page":1,"text":""}'"#)),
        ..config
    };
    let got = mnemo_extractor::extract_bytes(
        b"%PDF-1.4 not much else",
        mnemo_domain::content::ContentType::Pdf,
        &config,
    )
    .await;
    assert_eq!(got.err(), Some(mnemo_extractor::ExtractError::NoTextLayer));
}
