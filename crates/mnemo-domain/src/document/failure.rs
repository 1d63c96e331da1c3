//! Why a document failed, as a code clients can switch on
//! (`DocumentFailed.code`, schema v2) next to the reason people read.
//!
//! Services report a failure as a reason sentence (`RecordFailure.reason`);
//! the aggregate derives the code from it with [`FailureCode::classify`],
//! and the v1→v2 upcaster ([`super::upcast`]) does the same for failures
//! recorded before codes existed — one function for both, so old and new
//! events agree.

use serde::{Deserialize, Serialize};

/// The kind of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// A scan without text: OCR is not supported.
    NoTextLayer,
    /// The file is broken or not what its type says.
    Damaged,
    /// Encrypted with a password we do not have.
    NeedsPassword,
    /// Parsing did not finish in time (e.g. a PDF that loops forever).
    TimedOut,
    /// A service tried the bounded number of times and gave up.
    RetriesExhausted,
    /// The extracted text is above the configured limit
    /// (`--extract-max-text-mib`).
    TooLarge,
    /// Anything else (the reason says what); also a code this build does
    /// not know (written by a newer one), so old readers keep reading.
    #[serde(other)]
    Other,
}

impl FailureCode {
    /// The code of a failure reason as mnemo's services word them (the
    /// extractor's `ExtractError` messages, the consumer loop's give-up
    /// message).
    pub fn classify(reason: &str) -> Self {
        let r = reason.to_ascii_lowercase();
        if r.contains("no text layer") {
            Self::NoTextLayer
        } else if r.contains("needs a password") || r.contains("incorrect password") {
            Self::NeedsPassword
        } else if r.contains("damaged pdf") || r.contains("damaged") {
            Self::Damaged
        } else if (r.contains("gave up after") && r.contains(" s ")) || r.contains("timed out") {
            Self::TimedOut
        } else if r.contains("text is larger than") {
            Self::TooLarge
        } else if r.contains("attempts") {
            Self::RetriesExhausted
        } else {
            Self::Other
        }
    }

    /// The code named by [`FailureCode::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NoTextLayer,
            Self::Damaged,
            Self::NeedsPassword,
            Self::TimedOut,
            Self::RetriesExhausted,
            Self::TooLarge,
            Self::Other,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoTextLayer => "no_text_layer",
            Self::Damaged => "damaged",
            Self::NeedsPassword => "needs_password",
            Self::TimedOut => "timed_out",
            Self::RetriesExhausted => "retries_exhausted",
            Self::TooLarge => "too_large",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureCode as C;

    #[test]
    fn reasons_as_the_services_word_them() {
        assert_eq!(
            C::classify("no text layer (OCR not supported)"),
            C::NoTextLayer
        );
        assert_eq!(
            C::classify("damaged PDF: Couldn't find trailer dictionary"),
            C::Damaged
        );
        assert_eq!(
            C::classify("encrypted PDF that needs a password"),
            C::NeedsPassword
        );
        assert_eq!(
            C::classify("gave up after 60 s (the PDF may loop forever)"),
            C::TimedOut
        );
        assert_eq!(
            C::classify("gave up after 5 attempts: embedding a batch failed"),
            C::RetriesExhausted
        );
        assert_eq!(C::classify("the text is larger than 64 MiB"), C::TooLarge);
        assert_eq!(C::classify("something new"), C::Other);
    }

    #[test]
    fn codes_serialize_as_their_names() {
        for c in [
            C::NoTextLayer,
            C::Damaged,
            C::NeedsPassword,
            C::TimedOut,
            C::RetriesExhausted,
            C::TooLarge,
            C::Other,
        ] {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
            assert_eq!(C::parse(c.as_str()), Some(c));
        }
    }
}
