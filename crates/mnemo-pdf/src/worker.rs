//! The worker process: `mnemo extract-worker FILE` reads one PDF and writes
//! its pages to stdout as JSON lines, so the parent (the extractor service)
//! can report progress and keep what arrived even if the worker dies later.
//!
//! Protocol, one JSON object per line:
//! - `{"pages": N}` once the file is open;
//! - `{"page": i, "text": "…"}` for each page `i` = 1..=N, in order
//!   (`"error"` instead of `"text"` when that page alone cannot be read);
//! - or, instead of everything, `{"error": "…", "kind": "needs_password" |
//!   "damaged"}` when the file cannot be opened (exit status 2).
//!
//! The parent runs this under wall-clock, CPU-time and address-space limits
//! and caps what it reads; a panic, a stack overflow or an abort ends this
//! process only, and what it printed to stderr (a panic message) becomes
//! part of the parent's failure reason.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::Pdf;

/// Stack for the parsing thread: deep but legal PDFs (nested forms, long
/// object chains) need more than the default 8 MiB main stack.
const STACK_BYTES: usize = 256 * 1024 * 1024;

/// Runs the worker on `path`; returns the process exit code.
pub fn main(path: &Path) -> ExitCode {
    let path = path.to_owned();
    on_parser_thread(move || work(&path))
}

/// Runs `parse` on the parsing thread (named `pdf`, with its deep stack)
/// and turns its result into the exit code; a panic is exit status 101
/// after the panic hook printed its message to stderr, which the parent
/// quotes in its failure reason.
pub fn on_parser_thread(parse: impl FnOnce() -> u8 + Send + 'static) -> ExitCode {
    let run = std::thread::Builder::new()
        .name("pdf".into())
        .stack_size(STACK_BYTES)
        .spawn(parse);
    match run.map(|h| h.join()) {
        Ok(Ok(code)) => ExitCode::from(code),
        _ => ExitCode::from(101),
    }
}

fn work(path: &Path) -> u8 {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let _ = line(
                &mut out,
                &serde_json::json!({"error": format!("cannot read the file: {e}"), "kind": "io"}),
            );
            return 2;
        }
    };
    let pdf = match Pdf::open(bytes) {
        Ok(p) => p,
        Err(e) => {
            let _ = line(
                &mut out,
                &serde_json::json!({"error": e.to_string(), "kind": e.code()}),
            );
            return 2;
        }
    };
    let pages = pdf.page_count();
    if line(&mut out, &serde_json::json!({ "pages": pages })).is_err() {
        return 3;
    }
    for i in 0..pages {
        let msg = match pdf.page_text(i) {
            Ok(text) => serde_json::json!({"page": i + 1, "text": text}),
            Err(e) => serde_json::json!({"page": i + 1, "error": e.to_string()}),
        };
        if line(&mut out, &msg).is_err() {
            return 3; // the parent went away
        }
    }
    0
}

fn line(out: &mut impl Write, value: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}
