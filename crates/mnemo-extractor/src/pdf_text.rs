//! A PDF's text: pdf-rs first (in its worker process), `pdftotext` when
//! pdf-rs fails or returns almost nothing. `ExtractedText.extractor` says
//! which one produced the text (`pdf-rs` or `pdftotext`). When both fail,
//! the reason says why each did.

use mnemo_domain::text::ExtractedText;

use crate::pdf::PdfFile;
use crate::pdf_worker::{self, Progress, WorkerError};
use crate::{ExtractError, ExtractorConfig};

/// Extracts `bytes`; sends `(done, total)` to `progress` as pages come.
pub async fn extract(
    bytes: &[u8],
    config: &ExtractorConfig,
    progress: &Progress,
) -> Result<ExtractedText, ExtractError> {
    let file = PdfFile::write(bytes)?;
    let mut pdf_rs_failure = None;
    if let Some(worker) = &config.pdf_worker {
        match pdf_worker::run(worker, file.path(), config, progress).await {
            Ok(result) => match pdf_worker::unusable(&result) {
                None => {
                    return Ok(ExtractedText {
                        pages: result.pages,
                        extractor: "pdf-rs".into(),
                    })
                }
                Some(why) => tracing::info!(%why, "pdf-rs text unusable; trying pdftotext"),
            },
            Err(WorkerError::NeedsPassword) => {
                tracing::info!("pdf-rs needs a password; trying pdftotext")
            }
            Err(WorkerError::Failed(why)) => {
                tracing::warn!(%why, "pdf-rs failed; trying pdftotext");
                pdf_rs_failure = Some(why);
            }
        }
    }
    let fallback =
        tokio::time::timeout(config.document_timeout, pdftotext(&file, config, progress))
            .await
            .unwrap_or(Err(ExtractError::TimedOut(
                config.document_timeout.as_secs(),
            )));
    match (fallback, pdf_rs_failure) {
        // pdftotext calling the file damaged says less than how pdf-rs died.
        (Err(ExtractError::Damaged(why)), Some(pdf_rs)) => {
            Err(ExtractError::Damaged(format!("{why} (pdf-rs: {pdf_rs})")))
        }
        (result, _) => result,
    }
}

async fn pdftotext(
    file: &PdfFile,
    config: &ExtractorConfig,
    progress: &Progress,
) -> Result<ExtractedText, ExtractError> {
    let total = file.page_count(config).await?;
    let mut pages = Vec::with_capacity(total.min(10_000) as usize);
    let step = config.pages_per_step.max(1);
    let mut first = 1;
    while first <= total {
        let last = first.saturating_add(step - 1).min(total);
        pages.extend(file.pages(first, last, config).await?);
        let _ = progress.send((last, total));
        match last.checked_add(1) {
            Some(next) => first = next,
            None => break,
        }
    }
    Ok(ExtractedText {
        pages,
        extractor: "pdftotext".into(),
    })
}
