//! Errors of the chunker, with a kind, and the one place a failed delivery
//! becomes the consumer's outcome ([`ChunkerError::outcome`]).

use mnemo_bus::consumer::Outcome;
use mnemo_bus::{BusError, ExecuteError};
use mnemo_domain::chunking::ChunkError;
use mnemo_domain::DocumentError;

pub use crate::tokenizer::TokenizerError;

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkerErrorKind {
    /// The configuration is invalid, or the model's tokenizer is missing:
    /// the service cannot start.
    Config,
    /// NATS or the blob store is unavailable, or an append conflicted: the
    /// delivery is tried again later.
    Unavailable,
    /// The document's stored text can never be chunked (unreadable, or a
    /// word longer than the model takes): the document fails.
    Input,
    /// The aggregate refused the chunks for a reason that is not moot.
    Refused,
}

/// An error of the chunker service.
#[derive(Debug, thiserror::Error)]
pub enum ChunkerError {
    #[error("invalid chunker configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("stored text is unreadable: {0}")]
    UnreadableText(serde_json::Error),
    #[error(transparent)]
    Chunking(#[from] ChunkError),
    #[error("chunking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("appending the chunks: {0}")]
    Append(#[from] ExecuteError<DocumentError>),
}

impl ChunkerError {
    pub fn kind(&self) -> ChunkerErrorKind {
        match self {
            Self::Config(_) | Self::Tokenizer(_) => ChunkerErrorKind::Config,
            Self::Bus(_) | Self::Task(_) => ChunkerErrorKind::Unavailable,
            Self::UnreadableText(_) | Self::Chunking(_) => ChunkerErrorKind::Input,
            Self::Append(ExecuteError::Refused(_)) => ChunkerErrorKind::Refused,
            Self::Append(_) => ChunkerErrorKind::Unavailable,
        }
    }

    /// What the consumer does with the delivery: input that can never be
    /// chunked and refusals give up at once (the document fails, the event
    /// is dead-lettered); an outage is waited out without counting as an
    /// attempt; a chunking task that died is retried with backoff.
    pub fn outcome(&self) -> Outcome {
        let reason = self.to_string();
        match self {
            Self::Append(e) => mnemo_bus::consumer::append_outcome(e),
            Self::Bus(e) => mnemo_bus::consumer::bus_outcome(e),
            Self::UnreadableText(_) | Self::Chunking(_) => Outcome::Reject { reason },
            Self::Task(_) | Self::Config(_) | Self::Tokenizer(_) => Outcome::Retry { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_that_never_chunks_is_rejected_and_outages_retried() {
        let word = ChunkerError::from(ChunkError::WordTooLong("x".into()));
        assert!(matches!(word.outcome(), Outcome::Reject { .. }));
        let down = ChunkerError::from(BusError::new(mnemo_bus::BusErrorKind::Unavailable, "down"));
        assert!(matches!(down.outcome(), Outcome::Unavailable { .. }));
        let refused = ChunkerError::from(ExecuteError::Refused(DocumentError::NotFound));
        assert!(matches!(refused.outcome(), Outcome::Reject { .. }));
        let conflict = ChunkerError::from(ExecuteError::<DocumentError>::Conflict { attempts: 10 });
        assert!(matches!(conflict.outcome(), Outcome::Unavailable { .. }));
    }
}
