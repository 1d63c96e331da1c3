//! Errors of the extractor: why a document's text cannot be had
//! ([`ExtractError`], recorded on the document), and why the service or a
//! delivery failed ([`ExtractorError`], with a kind that decides the
//! consumer's outcome in one place: [`ExtractorError::outcome`]).

use mnemo_bus::consumer::Outcome;
use mnemo_bus::{BusError, ExecuteError};
use mnemo_domain::DocumentError;

/// Why a document's text could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("no text layer (OCR not supported)")]
    NoTextLayer,
    #[error("damaged PDF: {0}")]
    Damaged(String),
    #[error("encrypted PDF that needs a password")]
    NeedsPassword,
    #[error("gave up after {0} s (the PDF may loop forever)")]
    TimedOut(u64),
    #[error("the text is larger than {limit_mib} MiB")]
    TooLarge { limit_mib: u64 },
    #[error("{tool} is not installed: run deploy/local/bootstrap.sh")]
    ToolMissing { tool: String },
    #[error("cannot run the extractor: {0}")]
    Io(String),
}

impl ExtractError {
    /// Whether trying again later could help (a missing tool can be
    /// installed; a damaged file stays damaged).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ToolMissing { .. } | Self::Io(_))
    }

    /// A stable machine-readable code (`mnemo extract --json`, scripts).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTextLayer => "no_text_layer",
            Self::Damaged(_) => "damaged",
            Self::NeedsPassword => "needs_password",
            Self::TimedOut(_) => "timed_out",
            Self::TooLarge { .. } => "too_large",
            Self::ToolMissing { .. } => "tool_missing",
            Self::Io(_) => "io",
        }
    }
}

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractorErrorKind {
    /// The document's text cannot be had, and never will: record
    /// `DocumentFailed`.
    Document,
    /// NATS, the blob store or a tool is unavailable, or an append
    /// conflicted: try again later.
    Unavailable,
    /// The aggregate refused the result for a reason that is not moot (a
    /// bug: the extractor asked for something the document cannot do).
    Refused,
}

/// An error of the extractor service.
#[derive(Debug, thiserror::Error)]
pub enum ExtractorError {
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("appending the result: {0}")]
    Append(#[from] ExecuteError<DocumentError>),
    #[error("encoding the extracted text: {0}")]
    Encode(#[from] serde_json::Error),
    /// The sandbox asked for cannot be had here (the service cannot start).
    #[error("PDF sandbox: {0}")]
    Sandbox(String),
}

impl ExtractorError {
    pub fn kind(&self) -> ExtractorErrorKind {
        match self {
            Self::Extract(e) if !e.is_retryable() => ExtractorErrorKind::Document,
            Self::Append(ExecuteError::Refused(_)) => ExtractorErrorKind::Refused,
            Self::Extract(_) | Self::Bus(_) | Self::Append(_) | Self::Encode(_) => {
                ExtractorErrorKind::Unavailable
            }
            Self::Sandbox(_) => ExtractorErrorKind::Refused,
        }
    }

    /// What the consumer does with the delivery. (A `Document` error is
    /// recorded on the document first, by the handler; if that record
    /// fails, its own error decides.)
    pub fn outcome(&self) -> Outcome {
        let reason = self.to_string();
        match self {
            Self::Append(e) => mnemo_bus::consumer::append_outcome(e),
            // NATS or the blob store: not this document's fault, not an attempt.
            Self::Bus(e) => mnemo_bus::consumer::bus_outcome(e),
            // A tool missing, an I/O error around it: may pass, counts.
            Self::Extract(_) | Self::Encode(_) | Self::Sandbox(_) => Outcome::Retry { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lasting_extraction_failures_fail_the_document() {
        let lasting = ExtractorError::from(ExtractError::Damaged("xref".into()));
        assert_eq!(lasting.kind(), ExtractorErrorKind::Document);
        let missing = ExtractorError::from(ExtractError::ToolMissing {
            tool: "pdftotext".into(),
        });
        assert_eq!(missing.kind(), ExtractorErrorKind::Unavailable);
        assert!(matches!(missing.outcome(), Outcome::Retry { .. }));
        let down =
            ExtractorError::from(BusError::new(mnemo_bus::BusErrorKind::Unavailable, "down"));
        assert!(matches!(down.outcome(), Outcome::Unavailable { .. }));
        let refused = ExtractorError::from(ExecuteError::Refused(DocumentError::NotFound));
        assert!(matches!(refused.outcome(), Outcome::Reject { .. }));
    }
}
