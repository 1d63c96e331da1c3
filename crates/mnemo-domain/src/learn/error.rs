//! Why a learning command was refused.

/// A refused learning command; [`LearnError::kind`] maps it to a gRPC status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LearnError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// E.g. reviewing a suspended or deleted card.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A review older than the card's last one: it would rewrite history.
    #[error("stale review: the card was last reviewed at {last}, this review is at {at}")]
    StaleReview { last: String, at: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// Coarse classes of [`LearnError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnErrorKind {
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
}

impl LearnError {
    pub fn kind(&self) -> LearnErrorKind {
        match self {
            Self::NotFound(_) => LearnErrorKind::NotFound,
            Self::AlreadyExists(_) => LearnErrorKind::AlreadyExists,
            Self::FailedPrecondition(_) | Self::StaleReview { .. } => {
                LearnErrorKind::FailedPrecondition
            }
            Self::InvalidInput(_) => LearnErrorKind::InvalidArgument,
        }
    }
}
