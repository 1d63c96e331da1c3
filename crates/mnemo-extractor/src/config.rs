//! Extractor configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::pdf_worker::PdfWorker;

/// Limits for one document's extraction, and where the tools are.
#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    /// Wall-clock limit for each page of the pdf-rs worker, and for each
    /// `pdfinfo` / `pdftotext` child (one step of pages).
    pub step_timeout: Duration,
    /// Wall-clock limit for a whole document in the pdf-rs worker, and
    /// again for the whole `pdftotext` fallback: a file whose every page is
    /// slow (but under `step_timeout`) still ends.
    pub document_timeout: Duration,
    /// CPU seconds each child may use (`RLIMIT_CPU`): the kernel stops a
    /// runaway child even if this process cannot.
    pub cpu_limit: Duration,
    /// Address-space limit of each child process.
    pub memory_limit_bytes: u64,
    /// Most bytes read from one child's stdout (the text of a 600-page
    /// book is a few MiB).
    pub max_output_bytes: u64,
    /// Pages extracted per child process; progress is reported between steps.
    pub pages_per_step: u32,
    /// Fewest milliseconds between two `ExtractionProgressed` events.
    pub progress_every: Duration,
    /// JetStream's ack wait for the extractor's consumer. While a document
    /// is worked on, the handler tells JetStream so every quarter of it.
    pub ack_wait: Duration,
    pub pdftotext: PathBuf,
    pub pdfinfo: PathBuf,
    /// Documents extracted at once by this process.
    pub concurrency: usize,
    /// The pdf-rs worker (primary); `None` leaves PDFs to `pdftotext`.
    pub pdf_worker: Option<PdfWorker>,
}

impl ExtractorConfig {
    /// How often a delivery in progress is reported to JetStream.
    pub fn heartbeat(&self) -> Duration {
        (self.ack_wait / 4).max(Duration::from_millis(100))
    }
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        Self {
            step_timeout: Duration::from_secs(60),
            document_timeout: Duration::from_secs(180),
            cpu_limit: Duration::from_secs(180),
            memory_limit_bytes: 1024 * 1024 * 1024,
            max_output_bytes: 64 * 1024 * 1024,
            pages_per_step: 25,
            progress_every: Duration::from_millis(250),
            ack_wait: Duration::from_secs(120),
            pdftotext: PathBuf::from("pdftotext"),
            pdfinfo: PathBuf::from("pdfinfo"),
            concurrency: 2,
            pdf_worker: PdfWorker::from_current_exe(),
        }
    }
}
