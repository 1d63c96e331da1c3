//! Extractor configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::pdf_worker::PdfWorker;

/// Limits for one document's extraction, and where the tools are.
#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    /// Wall-clock limit for each child process (one step of pages), and for
    /// each page of the pdf-rs worker.
    pub step_timeout: Duration,
    /// Address-space limit of each child process.
    pub memory_limit_bytes: u64,
    /// Pages extracted per child process; progress is reported between steps.
    pub pages_per_step: u32,
    /// Fewest milliseconds between two `ExtractionProgressed` events.
    pub progress_every: Duration,
    pub pdftotext: PathBuf,
    pub pdfinfo: PathBuf,
    /// Documents extracted at once by this process.
    pub concurrency: usize,
    /// The pdf-rs worker (primary); `None` leaves PDFs to `pdftotext`.
    pub pdf_worker: Option<PdfWorker>,
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        Self {
            step_timeout: Duration::from_secs(60),
            memory_limit_bytes: 1024 * 1024 * 1024,
            pages_per_step: 25,
            progress_every: Duration::from_millis(250),
            pdftotext: PathBuf::from("pdftotext"),
            pdfinfo: PathBuf::from("pdfinfo"),
            concurrency: 2,
            pdf_worker: PdfWorker::from_current_exe(),
        }
    }
}
