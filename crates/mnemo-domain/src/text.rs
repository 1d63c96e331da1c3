//! Extracted text as stored in the blob store (addressed by the SHA-256 of
//! this JSON): the contract between the extractor, which writes it, and the
//! chunker, which reads it. `TextExtracted.text_sha256` points at it.

use serde::{Deserialize, Serialize};

/// A document's text, one string per page (page 1 first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedText {
    pub pages: Vec<String>,
    /// Which extractor produced it (`utf8`, `pdftotext`, `pdf-rs`).
    pub extractor: String,
    /// Pages the extractor could not read (kept as empty pages): a damaged
    /// file yields part of its text, and says so. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages_failed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ExtractedText {
    pub fn chars(&self) -> u64 {
        self.pages.iter().map(|p| p.chars().count() as u64).sum()
    }

    /// Whether there is any text at all (a scan without a text layer has none).
    pub fn is_blank(&self) -> bool {
        self.pages.iter().all(|p| p.trim().is_empty())
    }
}
