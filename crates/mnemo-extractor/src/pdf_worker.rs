//! Running pdf-rs (crate `mnemo-pdf`) in a child process: `mnemo
//! extract-worker FILE` in the [`crate::sandbox`] (address space, CPU
//! seconds, capped output), with a wall-clock limit per page and one for
//! the whole document, reading one JSON line per page.
//!
//! Whatever the file does to the parser — panic, stack overflow, abort,
//! endless loop, memory blow-up, a flood of output — ends the child, and
//! the parent gets a reason (with the child's own last words from stderr)
//! instead of text.

use std::path::{Path, PathBuf};

use tokio::time::Instant;

use crate::sandbox::{self, ReadError, Sandboxed};
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
    let args: Vec<&std::ffi::OsStr> = worker
        .args
        .iter()
        .map(|a| a.as_ref())
        .chain([path.as_os_str()])
        .collect();
    let mut child = Sandboxed::spawn(config, &worker.program, &args, &[path])
        .map_err(|e| WorkerError::Failed(format!("cannot start the PDF worker: {e}")))?;
    let deadline = Instant::now() + config.document_timeout;
    let mut out = WorkerPages::default();
    let mut total = 0u32;
    let failed = |why: String, out: &WorkerPages, total: u32, said: String| {
        let at = format!("after {} of {total} pages", out.pages.len());
        WorkerError::Failed(match said.is_empty() {
            true => format!("{why} {at}"),
            false => format!("{why} {at}: {said}"),
        })
    };
    loop {
        // A page (or the opening) that takes longer than the step is a
        // loop; a document that takes longer than its deadline is too slow.
        let step_end = (Instant::now() + config.step_timeout).min(deadline);
        let line = match tokio::time::timeout_at(step_end, child.next_line()).await {
            Err(_) => {
                let why = if Instant::now() >= deadline {
                    format!(
                        "gave up after {} s on the document (the PDF may loop forever)",
                        config.document_timeout.as_secs()
                    )
                } else {
                    format!(
                        "gave up after {} s on one page (the PDF may loop forever)",
                        config.step_timeout.as_secs()
                    )
                };
                let said = child.kill().await;
                return Err(failed(why, &out, total, said));
            }
            Ok(Err(ReadError::TooLarge { limit_bytes })) => {
                let said = child.kill().await;
                let why = format!(
                    "the PDF worker wrote more than {} MiB of text",
                    limit_bytes / (1024 * 1024)
                );
                return Err(failed(why, &out, total, said));
            }
            Ok(Err(ReadError::Io(e))) => {
                let said = child.kill().await;
                return Err(failed(
                    format!("reading the worker: {e}"),
                    &out,
                    total,
                    said,
                ));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(line))) => line,
        };
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        if let Some(n) = msg.get("pages").and_then(|v| v.as_u64()) {
            total = u32::try_from(n).unwrap_or(u32::MAX);
            // Trust a count only as far as it is cheap: pages arrive anyway.
            out.pages.reserve(total.min(10_000) as usize);
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
            let err = err.to_owned();
            let _ = child.kill().await;
            return Err(match msg.get("kind").and_then(|k| k.as_str()) {
                Some("needs_password") => WorkerError::NeedsPassword,
                _ => WorkerError::Failed(err),
            });
        }
    }
    // Stdout is closed; the exit follows at once unless something is wrong.
    let (status, said) = match tokio::time::timeout(config.step_timeout, child.wait()).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return Err(WorkerError::Failed(e.to_string())),
        Err(_) => return Err(WorkerError::Failed("the PDF worker did not exit".into())),
    };
    if !status.success() || out.pages.len() as u32 != total {
        let how = sandbox::describe(status);
        let why = if status.code().is_some() {
            format!("the PDF worker stopped ({how})")
        } else {
            format!("the PDF worker crashed ({how})")
        };
        return Err(failed(why, &out, total, said));
    }
    Ok(out)
}

/// Letters and digits in `pages`: how two extractors' texts of one file
/// are compared when pdf-rs's looked doubtful.
pub fn alphanumerics<S: AsRef<str>>(pages: &[S]) -> usize {
    pages
        .iter()
        .map(|p| p.as_ref().chars().filter(|c| c.is_alphanumeric()).count())
        .sum()
}

/// After [`unusable`] sent a file to `pdftotext` as well: whether pdf-rs's
/// text still wins, i.e. `pdftotext` found no more letters and digits (a
/// short document is sparse for both; a scan is empty for both).
pub fn keep_pdf_rs<S: AsRef<str>, T: AsRef<str>>(ours: &[S], theirs: &[T]) -> bool {
    alphanumerics(ours) >= alphanumerics(theirs)
}

/// Whether pdf-rs's text is worth keeping, or "almost nothing" (a scan, a
/// font it cannot map, pages it could not read), in which case the
/// extractor asks `pdftotext` too (and keeps the text with more letters,
/// [`keep_pdf_rs`]). Returns why not, if not.
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

    #[test]
    fn doubtful_text_is_kept_unless_pdftotext_finds_more() {
        // A title page with one line: sparse for both extractors.
        assert!(keep_pdf_rs(&["Title", ""], &["Title\n", "\u{c}"]));
        // A scan: empty for both; pdf-rs's empty text then says "no text layer".
        assert!(keep_pdf_rs(&["", ""], &["", ""]));
        // Pages pdf-rs could not read, that pdftotext could.
        assert!(!keep_pdf_rs(&["one", ""], &["one", "two three"]));
    }
}
