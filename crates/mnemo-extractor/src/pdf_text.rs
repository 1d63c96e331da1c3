//! A PDF's text: pdf-rs first (in its worker process), `pdftotext` when
//! pdf-rs fails, or when it returns almost nothing and `pdftotext` finds
//! more. `ExtractedText.extractor` says
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
    let mut doubtful = None;
    if let Some(worker) = &config.pdf_worker {
        match pdf_worker::run(worker, file.path(), config, progress).await {
            Ok(result) => match pdf_worker::unusable(&result) {
                None => return Ok(pdf_rs(result.pages, result.page_errors)),
                Some(why) => {
                    tracing::info!(%why, "pdf-rs text doubtful; asking pdftotext too");
                    doubtful = Some((result.pages, result.page_errors));
                }
            },
            Err(WorkerError::NeedsPassword) => {
                tracing::info!("pdf-rs needs a password; trying pdftotext")
            }
            Err(WorkerError::Failed(why)) => {
                // A file pdf-rs calls damaged is common; a crash or a
                // timeout is a bug or a hostile file worth a look.
                if why.starts_with("damaged PDF") {
                    tracing::info!(%why, "pdf-rs failed; trying pdftotext");
                } else {
                    tracing::warn!(%why, "pdf-rs failed; trying pdftotext");
                }
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
    // The file is damaged when pdf-rs could not read some of its pages, or
    // could not read it at all and pdftotext complained of damage too (a
    // file both read without complaint, pdf-rs after a structural hiccup,
    // is a scan when it has no text). Then a page pdftotext returns blank
    // is one it could not read either: it does not say which it could not.
    let pdf_rs_page_errors = doubtful.as_ref().is_some_and(|(_, f)| *f > 0);
    let damaged = |theirs: &PdftotextText| {
        pdf_rs_page_errors || (pdf_rs_failure.is_some() && theirs.complained)
    };
    if let Some((ours, failed)) = doubtful {
        // A sparse but real document is sparse for pdftotext too.
        match &fallback {
            Ok(theirs) if !pdf_worker::keep_pdf_rs(&ours, &theirs.text.pages) => {}
            _ => return Ok(pdf_rs(ours, failed)),
        }
    }
    let fallback = fallback.map(|theirs| {
        let damaged = damaged(&theirs);
        let mut text = theirs.text;
        if damaged {
            text.pages_failed = text.pages.iter().filter(|p| p.trim().is_empty()).count() as u32;
        }
        text
    });
    match (fallback, pdf_rs_failure) {
        // pdftotext calling the file damaged says less than how pdf-rs died.
        (Err(ExtractError::Damaged(why)), Some(pdf_rs)) => {
            let pdf_rs = pdf_rs.trim_start_matches("damaged PDF: ");
            Err(ExtractError::Damaged(format!("{why} (pdf-rs: {pdf_rs})")))
        }
        // pdf-rs could not read the file and pdftotext read nothing out of
        // it: a damaged file, not a scan without a text layer (which pdf-rs
        // reads fine, finding no text).
        (Ok(text), Some(pdf_rs)) if text.is_blank() && text.pages_failed > 0 => {
            let pdf_rs = pdf_rs.trim_start_matches("damaged PDF: ");
            Err(ExtractError::Damaged(format!(
                "{pdf_rs} (pdftotext read no text either)"
            )))
        }
        (result, _) => result,
    }
}

/// pdf-rs's text; pages it could not read are empty and counted.
fn pdf_rs(pages: Vec<String>, failed: u32) -> ExtractedText {
    ExtractedText {
        pages,
        extractor: "pdf-rs".into(),
        pages_failed: failed,
    }
}

/// `pdftotext`'s text, and whether it complained of damage.
struct PdftotextText {
    text: ExtractedText,
    complained: bool,
}

async fn pdftotext(
    file: &PdfFile,
    config: &ExtractorConfig,
    progress: &Progress,
) -> Result<PdftotextText, ExtractError> {
    let total = file.page_count(config).await?;
    let mut pages = Vec::with_capacity(total.min(10_000) as usize);
    let mut complained = false;
    let step = config.pages_per_step.max(1);
    let mut first = 1;
    while first <= total {
        let last = first.saturating_add(step - 1).min(total);
        let read = file.pages(first, last, config).await?;
        complained |= read.complained;
        pages.extend(read.pages);
        let _ = progress.send((last, total));
        match last.checked_add(1) {
            Some(next) => first = next,
            None => break,
        }
    }
    Ok(PdftotextText {
        text: ExtractedText {
            pages,
            extractor: "pdftotext".into(),
            // pdftotext reads what it can of each page and does not say
            // which it could not (see `extract`).
            pages_failed: 0,
        },
        complained,
    })
}
