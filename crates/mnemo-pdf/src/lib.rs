//! PDF text, page by page, with pdf-rs (the `pdf` crate) and mnemo's own
//! content-stream walker — pdf-rs parses files and decrypts them but has no
//! text API.
//!
//! Owns: opening a PDF (decrypting it with the empty user password when it
//! is encrypted: RC4 40/128, AES-128, AES-256 — pdf-rs with the patches in
//! `vendor/pdf/PATCHES.md`),
//! turning each page's content stream into positioned glyphs ([`walker`]),
//! fonts and encodings ([`fonts`]), and glyphs into readable text
//! ([`layout`]); and the worker-process entry point ([`worker`]).
//! Must not: run inside a long-lived service process. PDF parsing meets
//! hostile input (loops, deep recursion, huge allocations): services run
//! [`worker::main`] in a child process under a timeout and a memory limit
//! (see `mnemo-extractor`), so a crash costs one document.
//!
//! # Layout
//! - [`fonts`]: `FontDecoder`: codes → text and widths.
//! - [`walker`]: the text-state machine over content-stream operators.
//! - [`layout`]: placed glyphs → lines, words, columns.
//! - [`quality`]: word-level F1 against a reference extractor.
//! - [`worker`]: `mnemo extract-worker FILE`: one JSON line per page.
//!
//! pdf-rs itself is the patched copy in `vendor/pdf` (decision 011).

pub mod fonts;
pub mod layout;
pub mod quality;
pub mod walker;
pub mod worker;

use pdf::file::FileOptions;
use pdf::object::ParseOptions;

/// Why a PDF could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error("encrypted PDF that needs a password")]
    NeedsPassword,
    #[error("damaged PDF: {0}")]
    Damaged(String),
}

impl PdfError {
    fn from_pdf(e: pdf::error::PdfError) -> Self {
        if needs_password(&e) {
            Self::NeedsPassword
        } else {
            Self::Damaged(innermost(&e))
        }
    }

    /// A stable machine-readable code (`needs_password`, `damaged`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NeedsPassword => "needs_password",
            Self::Damaged(_) => "damaged",
        }
    }
}

/// Whether the empty password was refused (under pdf-rs's `Try` wrappers).
/// A stream that fails to decrypt is damage, not this.
fn needs_password(e: &pdf::error::PdfError) -> bool {
    use pdf::error::PdfError as E;
    match e {
        E::InvalidPassword => true,
        E::Try { source, .. } | E::FromPrimitive { source, .. } => needs_password(source),
        _ => false,
    }
}

/// pdf-rs wraps errors in `Try at file:line` layers: the innermost cause is
/// the one a person can read.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    first_line(&cur.to_string())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// An opened PDF.
pub struct Pdf {
    file: pdf::file::CachedFile<Vec<u8>>,
}

impl Pdf {
    /// Parses the file (and decrypts it with the empty password if needed).
    pub fn open(bytes: Vec<u8>) -> Result<Self, PdfError> {
        // An optional entry pdf-rs cannot read (an outline, an OpenAction
        // destination, metadata) counts as absent: text does not need it,
        // and strict parsing would fail the whole file over it.
        let options = ParseOptions {
            allow_error_in_option: true,
            ..ParseOptions::strict()
        };
        let file = FileOptions::cached()
            .parse_options(options)
            .load(bytes)
            .map_err(PdfError::from_pdf)?;
        Ok(Self { file })
    }

    pub fn page_count(&self) -> u32 {
        self.file.num_pages()
    }

    /// The text of page `index` (0-based). A page that cannot be read is an
    /// error for that page only.
    pub fn page_text(&self, index: u32) -> Result<String, PdfError> {
        let resolver = self.file.resolver();
        let page = self
            .file
            .get_page(index)
            .map_err(|e| PdfError::Damaged(innermost(&e)))?;
        let Some(contents) = page.contents.as_ref() else {
            return Ok(String::new());
        };
        let ops = contents
            .operations(&resolver)
            .map_err(|e| PdfError::Damaged(innermost(&e)))?;
        let resources = page.resources().ok().map(|r| &**r);
        let mut walker = walker::Walker::new(&resolver);
        walker.run(&ops, resources, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 0);
        let glyphs = walker.finish();
        let (left, right) = match page.media_box() {
            Ok(b) => (b.left.min(b.right), b.left.max(b.right)),
            Err(_) => (0.0, 612.0),
        };
        Ok(layout::page_text(glyphs, left, right))
    }
}

/// Every page's text.
pub fn extract(bytes: Vec<u8>) -> Result<Vec<String>, PdfError> {
    let pdf = Pdf::open(bytes)?;
    (0..pdf.page_count()).map(|i| pdf.page_text(i)).collect()
}
