//! A PDF's text: pdf-rs first (in its worker process), `pdftotext` when
//! pdf-rs fails or returns almost nothing. `ExtractedText.extractor` says
//! which one produced the text (`pdf-rs` or `pdftotext`).

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
                tracing::info!(%why, "pdf-rs failed; trying pdftotext")
            }
        }
    }
    let total = file.page_count(config).await?;
    let mut pages = Vec::with_capacity(total as usize);
    let step = config.pages_per_step.max(1);
    let mut first = 1;
    while first <= total {
        let last = (first + step - 1).min(total);
        pages.extend(file.pages(first, last, config).await?);
        let _ = progress.send((last, total));
        first = last + 1;
    }
    Ok(ExtractedText {
        pages,
        extractor: "pdftotext".into(),
    })
}
