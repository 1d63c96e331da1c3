//! Why the document aggregate refused a command.

use crate::document::Stage;

/// A refused command. Each variant says what the caller can do about it;
/// [`DocumentError::kind`] is what the API maps to a gRPC status and a
/// consumer to ack / terminate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// No document with this id exists (for this owner).
    #[error("document not found")]
    NotFound,
    /// Upload on an id that already exists with other content.
    #[error("document already exists")]
    AlreadyExists,
    /// A result for a run that is no longer current (cancelled or superseded).
    #[error("run {got} is stale: the document's current run is {current}")]
    StaleRun { current: u32, got: u32 },
    /// The command does not fit the document's stage.
    #[error("{command} is not allowed while the document is {stage}")]
    InvalidTransition { stage: Stage, command: &'static str },
    /// The command itself is malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Coarse classes of [`DocumentError`], for mapping to outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentErrorKind {
    NotFound,
    AlreadyExists,
    /// The result belongs to an old run: drop it, never retry.
    Stale,
    /// Wrong stage for this command.
    FailedPrecondition,
    InvalidArgument,
}

impl DocumentError {
    pub fn kind(&self) -> DocumentErrorKind {
        match self {
            Self::NotFound => DocumentErrorKind::NotFound,
            Self::AlreadyExists => DocumentErrorKind::AlreadyExists,
            Self::StaleRun { .. } => DocumentErrorKind::Stale,
            Self::InvalidTransition { .. } => DocumentErrorKind::FailedPrecondition,
            Self::InvalidInput(_) => DocumentErrorKind::InvalidArgument,
        }
    }

    /// Whether the refusal only means the work is moot: the result belongs
    /// to a run that was cancelled or superseded, or the document has moved
    /// past the stage the result is for. A service drops such a result (and
    /// acknowledges its delivery) instead of retrying or failing the
    /// document. The one place this rule is written: every service and the
    /// backfill ask here.
    pub fn is_moot(&self) -> bool {
        matches!(
            self.kind(),
            DocumentErrorKind::Stale | DocumentErrorKind::FailedPrecondition
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_runs_and_wrong_stages_are_moot() {
        assert!(DocumentError::StaleRun { current: 2, got: 1 }.is_moot());
        assert!(DocumentError::InvalidTransition {
            stage: Stage::Cancelled,
            command: "RecordChunks"
        }
        .is_moot());
        for live in [
            DocumentError::NotFound,
            DocumentError::AlreadyExists,
            DocumentError::InvalidInput("x".into()),
        ] {
            assert!(!live.is_moot(), "{live:?}");
        }
    }
}
