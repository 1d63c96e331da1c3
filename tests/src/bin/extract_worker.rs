//! `mnemo-extract-worker FILE`: the pdf-rs worker for the e2e tests' in-process
//! extractor — the same code as `mnemo extract-worker` — plus fault injection
//! that exists only in this test binary.
//!
//! A file whose first line after `%PDF-` is `%mnemo-test-fault KIND [ARG]`
//! makes this worker misbehave the way a hostile PDF can make a parser
//! misbehave, for real, on the worker's own parsing thread:
//! - `panic`: a panic (after filling stderr with warnings, as parsers do);
//! - `abort`: `std::process::abort()`;
//! - `stack-overflow`: unbounded recursion;
//! - `loop`: a busy endless loop on the first page;
//! - `memory`: allocating (and touching) memory until the limit stops it;
//! - `flood`: a first page of endless text;
//! - `slow-pages`: a page every 200 ms, forever (each page is quick);
//! - `sleep SECS PATH`: appends a line to PATH (to count the runs), sleeps
//!   SECS seconds without a word, then reads the file's real page.
//!
//! Anything else is read by `mnemo_pdf::worker::main`, as in production.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The marker's prefix; the production worker has no such thing.
const MARKER: &str = "%mnemo-test-fault ";

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: mnemo-extract-worker FILE");
        return ExitCode::from(2);
    };
    match fault_in(&path) {
        Some(fault) => mnemo_pdf::worker::on_parser_thread(move || run(fault, &path)),
        None => mnemo_pdf::worker::main(&path),
    }
}

/// The fault named in the file's second line, if any.
fn fault_in(path: &Path) -> Option<Vec<String>> {
    let head = std::fs::read(path).ok()?;
    let head = String::from_utf8_lossy(&head[..head.len().min(1024)]).into_owned();
    let line = head.lines().nth(1)?.strip_prefix(MARKER)?;
    Some(line.split_whitespace().map(str::to_owned).collect())
}

fn say(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn run(fault: Vec<String>, path: &Path) -> u8 {
    let kind = fault.first().map(String::as_str).unwrap_or("");
    match kind {
        "sleep" => {
            let secs: u64 = fault.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            if let Some(count) = fault.get(2) {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(count);
                if let Ok(mut f) = file {
                    let _ = writeln!(f, "run");
                }
            }
            std::thread::sleep(Duration::from_secs(secs));
            say(serde_json::json!({"pages": 1}));
            let text = "A slow but honest page about mitochondria and ribosomes.";
            say(serde_json::json!({"page": 1, "text": text}));
            0
        }
        "slow-pages" => {
            say(serde_json::json!({"pages": 1_000_000}));
            for page in 1.. {
                std::thread::sleep(Duration::from_millis(200));
                say(serde_json::json!({"page": page, "text": "slow"}));
            }
            0
        }
        "flood" => {
            say(serde_json::json!({"pages": 1}));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"{\"page\":1,\"text\":\"");
            let block = [b'a'; 64 * 1024];
            while out.write_all(&block).is_ok() {}
            0
        }
        other => {
            say(serde_json::json!({"pages": 2}));
            say(serde_json::json!({"page": 1, "text": "the first page was fine"}));
            fail(other, path)
        }
    }
}

/// Misbehaves on "page 2" as `kind` says.
fn fail(kind: &str, path: &Path) -> u8 {
    match kind {
        "panic" => {
            for i in 0..2_000 {
                eprintln!("Syntax Warning: ignoring junk in object {i}");
            }
            let bad: Vec<u8> = Vec::new();
            let index = std::hint::black_box(7);
            // A real out-of-bounds index, as a parser bug would have.
            u8::from(bad[index] > 0)
        }
        "abort" => std::process::abort(),
        "stack-overflow" => {
            let depth = recurse(std::hint::black_box(0), &[0; 32]);
            u8::from(depth == 0)
        }
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Every page touched, so it is real memory and not just a
                // reservation (one byte a page keeps it quick).
                let mut block = vec![0u8; 64 * 1024 * 1024];
                for i in (0..block.len()).step_by(4096) {
                    block[i] = 1;
                }
                hoard.push(std::hint::black_box(block));
            }
        }
        _ => {
            eprintln!("{}: unknown fault {kind:?}", path.display());
            2
        }
    }
}

/// Each frame lends its locals to the next call, so no optimiser can turn
/// this into a loop. Never returning is the point.
#[allow(unconditional_recursion)]
fn recurse(depth: u64, caller: &[u64; 32]) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    recurse(depth + 1, &frame) + caller[0]
}
