//! Running pdf-rs (crate `mnemo-pdf`) in a child process: `mnemo
//! extract-worker FILE` under `prlimit --as` (address space) and a
//! wall-clock limit between pages, reading one JSON line per page.
//!
//! Whatever the file does to the parser — panic, stack overflow, abort,
//! endless loop, memory blow-up — ends the child, and the parent gets a
//! reason instead of text.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::ExtractorConfig;

/// Where `(pages done, pages total)` go while a PDF is read.
pub type Progress = tokio::sync::mpsc::UnboundedSender<(u32, u32)>;

/// How to start the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfWorker {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl PdfWorker {
    /// This very program, when it is the `mnemo` binary
    /// (`mnemo extract-worker FILE`).
    pub fn from_current_exe() -> Option<Self> {
        let exe = std::env::current_exe().ok()?;
        let name = exe.file_stem()?.to_string_lossy().into_owned();
        (name == "mnemo").then(|| Self {
            program: exe,
            args: vec!["extract-worker".into()],
        })
    }
}

/// What the worker produced.
#[derive(Debug, Default)]
pub struct WorkerPages {
    pub pages: Vec<String>,
    /// Pages the worker could not read (left empty in `pages`).
    pub page_errors: u32,
}

/// Why the worker gave no usable result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerError {
    /// pdf-rs needs a password for this file.
    NeedsPassword,
    /// Anything else, said for logs and events.
    Failed(String),
}

/// Runs the worker on `path`; sends `(done, total)` after each page.
pub async fn run(
    worker: &PdfWorker,
    path: &Path,
    config: &ExtractorConfig,
    progress: &Progress,
) -> Result<WorkerPages, WorkerError> {
    let mut child = Command::new("prlimit")
        .arg(format!("--as={}", config.memory_limit_bytes))
        .arg("--")
        .arg(&worker.program)
        .args(&worker.args)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| WorkerError::Failed(format!("cannot start the PDF worker: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| WorkerError::Failed("the PDF worker has no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut out = WorkerPages::default();
    let mut total = 0u32;
    loop {
        // A page (or the opening) that takes longer than this is a loop.
        let next = tokio::time::timeout(config.step_timeout, lines.next_line()).await;
        let line = match next {
            Err(_) => {
                return Err(WorkerError::Failed(format!(
                    "gave up after {} s on one page (the PDF may loop forever)",
                    config.step_timeout.as_secs()
                )))
            }
            Ok(Err(e)) => return Err(WorkerError::Failed(format!("reading the worker: {e}"))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(line))) => line,
        };
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(n) = msg.get("pages").and_then(|v| v.as_u64()) {
            total = n as u32;
            out.pages.reserve(total as usize);
        } else if msg.get("page").is_some() {
            match msg.get("text").and_then(|t| t.as_str()) {
                Some(t) => out.pages.push(t.to_owned()),
                None => {
                    out.page_errors += 1;
                    out.pages.push(String::new());
                }
            }
            let _ = progress.send((out.pages.len() as u32, total));
        } else if let Some(err) = msg.get("error").and_then(|e| e.as_str()) {
            return Err(match msg.get("kind").and_then(|k| k.as_str()) {
                Some("needs_password") => WorkerError::NeedsPassword,
                _ => WorkerError::Failed(err.to_owned()),
            });
        }
    }
    let status = tokio::time::timeout(config.step_timeout, child.wait())
        .await
        .map_err(|_| WorkerError::Failed("the PDF worker did not exit".into()))?
        .map_err(|e| WorkerError::Failed(e.to_string()))?;
    if !status.success() || out.pages.len() as u32 != total {
        use std::os::unix::process::ExitStatusExt;
        return Err(WorkerError::Failed(match status.signal() {
            Some(sig) => format!(
                "the PDF worker crashed (signal {sig}) after {} of {total} pages",
                out.pages.len()
            ),
            None => format!(
                "the PDF worker stopped ({status}) after {} of {total} pages",
                out.pages.len()
            ),
        }));
    }
    Ok(out)
}

/// Whether pdf-rs's text is worth keeping, or "almost nothing" (a scan, a
/// font it cannot map, pages it could not read), in which case the
/// extractor asks `pdftotext`. Returns why not, if not.
pub fn unusable(result: &WorkerPages) -> Option<String> {
    let pages = result.pages.len().max(1);
    if result.page_errors as usize * 4 > pages {
        return Some(format!(
            "{} of {pages} pages unreadable",
            result.page_errors
        ));
    }
    let mut chars = 0usize;
    let mut alnum = 0usize;
    for p in &result.pages {
        for c in p.chars().filter(|c| !c.is_whitespace()) {
            chars += 1;
            if c.is_alphanumeric() {
                alnum += 1;
            }
        }
    }
    if chars < 10 * pages {
        return Some(format!("only {chars} characters on {pages} pages"));
    }
    if alnum * 2 < chars {
        return Some("mostly symbols: unmapped font encodings".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(texts: &[&str], errors: u32) -> WorkerPages {
        WorkerPages {
            pages: texts.iter().map(|t| t.to_string()).collect(),
            page_errors: errors,
        }
    }

    #[test]
    fn real_text_is_kept_and_almost_nothing_is_not() {
        assert_eq!(
            unusable(&pages(&["Mitochondria make ATP in cells."], 0)),
            None
        );
        assert!(unusable(&pages(&["", "", "x"], 0)).is_some());
        assert!(unusable(&pages(&["#$%^&*()!@#$%^&*()_+{}|:<>?~"], 0)).is_some());
        assert!(unusable(&pages(&["fine text here and more", "", ""], 2)).is_some());
    }
}
