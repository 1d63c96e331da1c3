//! Extractor configuration.

use std::path::PathBuf;
use std::time::Duration;

/// Limits for one document's extraction, and where the tools are.
#[derive(Debug, Clone)]
pub struct ExtractorConfig {
    /// Wall-clock limit for each child process (one step of pages).
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
        }
    }
}
