//! Extractor configuration: its flags (flattened into `mnemo serve`, env
//! fallbacks `MNEMO_EXTRACT_*`) and the limits [`crate::run`] works under.

use std::path::PathBuf;
use std::time::Duration;

use crate::pdf_worker::PdfWorker;

/// Default most text per document, in MiB: the largest text whose whole
/// pipeline stays within `mnemo bench abuse`'s 256 MiB growth target
/// (docs/benchmarks.md, *Abuse*), about 1,400 dense pages.
pub const DEFAULT_MAX_TEXT_MIB: u64 = 4;

/// The extractor's own flags. Defaults are [`ExtractorConfig::default`]'s.
#[derive(clap::Args, Debug, Clone)]
pub struct ExtractorArgs {
    /// Documents extracted at once by this process.
    #[arg(long = "extract-concurrency", env = "MNEMO_EXTRACT_CONCURRENCY", default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub extract_concurrency: usize,
    /// How long a delivery may go unacknowledged before JetStream hands it
    /// to another copy; the extractor reports progress every quarter of it.
    #[arg(long = "extract-ack-wait", env = "MNEMO_EXTRACT_ACK_WAIT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub extract_ack_wait: Duration,
    /// Wall-clock limit for each page of the pdf-rs worker, and for each
    /// pdfinfo/pdftotext step.
    #[arg(long = "extract-step-timeout", env = "MNEMO_EXTRACT_STEP_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub extract_step_timeout: Duration,
    /// Wall-clock limit for a whole document (each extractor in turn).
    #[arg(long = "extract-document-timeout", env = "MNEMO_EXTRACT_DOCUMENT_TIMEOUT", default_value = "180s", value_parser = humantime::parse_duration)]
    pub extract_document_timeout: Duration,
    /// CPU time each PDF child process may use (RLIMIT_CPU).
    #[arg(long = "extract-cpu-limit", env = "MNEMO_EXTRACT_CPU_LIMIT", default_value = "180s", value_parser = humantime::parse_duration)]
    pub extract_cpu_limit: Duration,
    /// Address space of each PDF child process, in MiB.
    #[arg(long = "extract-memory-limit-mib", env = "MNEMO_EXTRACT_MEMORY_LIMIT_MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(64..))]
    pub extract_memory_limit_mib: u64,
    /// Most text read back from one child process, in MiB.
    #[arg(long = "extract-max-output-mib", env = "MNEMO_EXTRACT_MAX_OUTPUT_MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub extract_max_output_mib: u64,
    /// Most text one document may have, in MiB: beyond it the document
    /// fails ("the text is larger than N MiB") instead of the pipeline
    /// holding it (a 600-page book has a few MiB).
    #[arg(long = "extract-max-text-mib", env = "MNEMO_EXTRACT_MAX_TEXT_MIB", default_value_t = DEFAULT_MAX_TEXT_MIB, value_parser = clap::value_parser!(u64).range(1..))]
    pub extract_max_text_mib: u64,
    /// How PDF readers are isolated: bubblewrap when it works here (auto),
    /// bubblewrap or refuse to start, or limits only.
    #[arg(
        long = "extract-sandbox",
        env = "MNEMO_EXTRACT_SANDBOX",
        value_enum,
        default_value = "auto"
    )]
    pub extract_sandbox: crate::isolation::SandboxMode,
    /// poppler's pdftotext (the fallback extractor).
    #[arg(
        long = "pdftotext",
        env = "MNEMO_PDFTOTEXT",
        default_value = "pdftotext"
    )]
    pub pdftotext: PathBuf,
    /// poppler's pdfinfo (page counts for the fallback).
    #[arg(long = "pdfinfo", env = "MNEMO_PDFINFO", default_value = "pdfinfo")]
    pub pdfinfo: PathBuf,
}

impl ExtractorArgs {
    pub fn config(&self) -> ExtractorConfig {
        ExtractorConfig {
            concurrency: self.extract_concurrency,
            ack_wait: self.extract_ack_wait,
            step_timeout: self.extract_step_timeout,
            document_timeout: self.extract_document_timeout,
            cpu_limit: self.extract_cpu_limit,
            memory_limit_bytes: self.extract_memory_limit_mib * 1024 * 1024,
            max_output_bytes: self.extract_max_output_mib * 1024 * 1024,
            max_text_bytes: self.extract_max_text_mib * 1024 * 1024,
            pdftotext: self.pdftotext.clone(),
            pdfinfo: self.pdfinfo.clone(),
            sandbox: self.extract_sandbox,
            ..ExtractorConfig::default()
        }
    }
}

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
    /// Most text one document may have (plain text as uploaded, or a PDF's
    /// extracted pages); more fails the document as too large.
    pub max_text_bytes: u64,
    /// Pages extracted per child process; progress is reported between steps.
    pub pages_per_step: u32,
    /// Fewest milliseconds between two `ExtractionProgressed` events.
    pub progress_every: Duration,
    /// JetStream's ack wait for the extractor's consumer. While a document
    /// is worked on, the handler tells JetStream so every quarter of it, so
    /// it can be short: a crashed extractor's document goes to another copy
    /// within about this long.
    pub ack_wait: Duration,
    pub pdftotext: PathBuf,
    pub pdfinfo: PathBuf,
    /// Documents extracted at once by this process.
    pub concurrency: usize,
    /// The pdf-rs worker (primary); `None` leaves PDFs to `pdftotext`.
    pub pdf_worker: Option<PdfWorker>,
    /// How the readers are isolated ([`crate::isolation`]).
    pub sandbox: crate::isolation::SandboxMode,
    /// Read-ahead that serves owners in turn (`mnemo_bus::fair`).
    pub fair: mnemo_bus::fair::FairShare,
}

impl Default for ExtractorConfig {
    fn default() -> Self {
        Self {
            step_timeout: Duration::from_secs(60),
            document_timeout: Duration::from_secs(180),
            cpu_limit: Duration::from_secs(180),
            memory_limit_bytes: 1024 * 1024 * 1024,
            max_output_bytes: 64 * 1024 * 1024,
            max_text_bytes: DEFAULT_MAX_TEXT_MIB * 1024 * 1024,
            pages_per_step: 25,
            progress_every: Duration::from_millis(250),
            ack_wait: Duration::from_secs(15),
            pdftotext: PathBuf::from("pdftotext"),
            pdfinfo: PathBuf::from("pdfinfo"),
            concurrency: 2,
            pdf_worker: PdfWorker::from_current_exe(),
            sandbox: crate::isolation::SandboxMode::Auto,
            fair: mnemo_bus::fair::FairShare::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        extractor: ExtractorArgs,
    }

    #[test]
    fn flag_defaults_are_the_config_defaults() {
        let parsed = Cli::try_parse_from(["t"]).map(|c| c.extractor.config());
        let Ok(parsed) = parsed else {
            panic!("defaults parse")
        };
        let default = ExtractorConfig::default();
        assert_eq!(parsed.concurrency, default.concurrency);
        assert_eq!(parsed.ack_wait, default.ack_wait);
        assert_eq!(parsed.step_timeout, default.step_timeout);
        assert_eq!(parsed.document_timeout, default.document_timeout);
        assert_eq!(parsed.cpu_limit, default.cpu_limit);
        assert_eq!(parsed.memory_limit_bytes, default.memory_limit_bytes);
        assert_eq!(parsed.max_output_bytes, default.max_output_bytes);
        assert_eq!(parsed.pdftotext, default.pdftotext);
    }

    #[test]
    fn durations_take_units_and_limits_are_checked() {
        let c = Cli::try_parse_from([
            "t",
            "--extract-ack-wait",
            "2m",
            "--extract-step-timeout",
            "500ms",
        ]);
        let c = c
            .map(|c| {
                (
                    c.extractor.extract_ack_wait,
                    c.extractor.extract_step_timeout,
                )
            })
            .ok();
        assert_eq!(
            c,
            Some((Duration::from_secs(120), Duration::from_millis(500)))
        );
        assert!(Cli::try_parse_from(["t", "--extract-concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["t", "--extract-memory-limit-mib", "1"]).is_err());
    }
}
