//! The extractor: turns an uploaded document into text, page by page.
//!
//! Consumes: `DocumentUploaded` and `ReprocessRequested` (durable consumer
//! `<ns>_extractor`).
//! Emits (through the document aggregate): throttled `ExtractionProgressed`,
//! then `TextExtracted` (the text itself goes to the blob store as
//! [`mnemo_domain::text::ExtractedText`]), or `DocumentFailed` with a reason
//! a person understands ("no text layer (OCR not supported)", "damaged PDF:
//! …", "gave up after 60 s").
//! Must not: let one document take the service down. PDF parsing runs in
//! child processes (the pdf-rs worker `mnemo extract-worker`, and
//! `pdftotext`) under wall-clock limits (per page or step, and per
//! document), a CPU-time and an address-space limit, and a cap on the output
//! read back, so a crash, a loop or a memory blow-up fails that document
//! alone. While it works on a document, the handler tells JetStream so
//! (`in_progress`) every quarter of the ack wait, so nothing is redelivered
//! to another copy mid-work.
//!
//! Plain text and Markdown skip parsing. PDFs go through pdf-rs (crate
//! `mnemo-pdf`, mnemo's own content-stream walker) first; when it fails or
//! returns almost nothing, through poppler's `pdftotext`.
//! `TextExtracted.extractor` records which (`pdf-rs` / `pdftotext`).
//!
//! # Layout
//! - [`config`]: its flags ([`ExtractorArgs`]), limits and tool paths.
//! - [`error`]: why a document's text cannot be had ([`ExtractError`]),
//!   and the service's errors with the consumer outcome each maps to.
//! - [`pdf_text`]: pdf-rs first, `pdftotext` as the fallback.
//! - [`pdf_worker`]: the pdf-rs worker process (`mnemo extract-worker`).
//! - [`pdf`]: running `pdfinfo` / `pdftotext` in a sandboxed child process.
//! - [`isolation`]: how a reader is isolated (bubblewrap where it works;
//!   an empty environment, limits and `nobody` always).
//! - [`sandbox`]: the isolated child processes, capped stdout, the head and
//!   tail of stderr for failure reasons.
//! - [`handler`]: the consumer handler (which events, what it appends).

pub mod config;
pub mod error;
pub mod handler;
pub mod isolation;
pub mod pdf;
pub mod pdf_text;
pub mod pdf_worker;
pub mod sandbox;

pub use config::{ExtractorArgs, ExtractorConfig};
pub use error::{ExtractError, ExtractorError, ExtractorErrorKind};
pub use handler::Extractor;

/// Extracts a whole file locally, as the service would (for `mnemo extract`).
pub async fn extract_bytes(
    bytes: &[u8],
    content_type: mnemo_domain::content::ContentType,
    config: &ExtractorConfig,
) -> Result<mnemo_domain::text::ExtractedText, ExtractError> {
    use mnemo_domain::content::ContentType;
    let text = match content_type {
        ContentType::PlainText | ContentType::Markdown => mnemo_domain::text::ExtractedText {
            pages: String::from_utf8_lossy(bytes)
                .split('\u{c}')
                .map(str::to_owned)
                .collect(),
            extractor: "utf8".into(),
            pages_failed: 0,
        },
        ContentType::Pdf => {
            let (progress, _ignored) = tokio::sync::mpsc::unbounded_channel();
            pdf_text::extract(bytes, config, &progress).await?
        }
    };
    if text.is_blank() {
        return Err(ExtractError::NoTextLayer);
    }
    Ok(text)
}

/// Runs the extractor until `shutdown` resolves: its durable consumer
/// `<ns>_extractor` on the document subjects, `concurrency` documents at
/// once.
pub async fn run(
    bus: mnemo_bus::Bus,
    config: ExtractorConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ExtractorError> {
    let spec = mnemo_bus::ConsumerSpec::document_events(&bus.namespace, "extractor")
        .with_concurrency(config.concurrency)
        .with_fair_share(config.fair.clone())
        .with_ack_wait(config.ack_wait);
    let isolation =
        isolation::Isolation::resolve(config.sandbox).map_err(ExtractorError::Sandbox)?;
    match &isolation {
        isolation::Isolation::Bubblewrap { .. } => {
            tracing::info!(isolation = %isolation.describe(), "PDF readers are sandboxed")
        }
        isolation::Isolation::LimitsOnly { .. } => {
            tracing::warn!(isolation = %isolation.describe(), "PDF readers are not fully sandboxed")
        }
    }
    // Files a killed extractor on this machine left behind.
    let swept = tokio::task::spawn_blocking(pdf::sweep_spools)
        .await
        .unwrap_or(0);
    if swept > 0 {
        tracing::info!(swept, "spools of extractors that are gone removed");
    }
    let handler = Extractor::new(&bus, config).await?;
    Ok(mnemo_bus::consumer::run(&bus, spec, handler, shutdown).await?)
}
