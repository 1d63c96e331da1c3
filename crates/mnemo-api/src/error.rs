//! Errors of the API *service* (starting and serving), with a kind. Errors
//! of a call become a `tonic::Status` in [`crate::status`], not here.

use mnemo_bus::BusError;

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// A flag or setting is wrong: fix the configuration.
    Config,
    /// NATS, PostgreSQL or the listening address is unavailable.
    Unavailable,
    /// The server itself failed.
    Internal,
}

/// An error starting or running the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("progress streams: {0}")]
    Progress(BusError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("search index: {0}")]
    Search(#[from] mnemo_search::SearchError),
    #[error(transparent)]
    Llm(#[from] mnemo_qa::LlmError),
}

impl ApiError {
    pub fn kind(&self) -> ApiErrorKind {
        match self {
            Self::Config(_) | Self::Llm(_) => ApiErrorKind::Config,
            Self::Listen { .. } | Self::Progress(_) | Self::Bus(_) => ApiErrorKind::Unavailable,
            Self::Search(e) if e.kind() == mnemo_search::SearchErrorKind::Unavailable => {
                ApiErrorKind::Unavailable
            }
            Self::Reflection(_) | Self::Transport(_) | Self::Search(_) => ApiErrorKind::Internal,
        }
    }
}
