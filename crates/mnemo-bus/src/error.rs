//! Errors of the bus, with a kind callers can match on (as async-nats does).

use std::fmt;

/// What went wrong, coarsely: enough to decide retry, refuse or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusErrorKind {
    /// Bad configuration or names (a namespace, an aggregate id).
    Config,
    /// NATS or JetStream could not be reached or did not answer in time:
    /// retrying later may succeed.
    Unavailable,
    /// Another writer appended to the aggregate first.
    Conflict,
    /// Stored data could not be decoded (corrupt or unknown event).
    Corrupt,
    /// A blob that should exist does not.
    NotFound,
    /// Anything else JetStream said no to.
    Rejected,
    /// A stream is at the size an operator set (`mnemo nats setup
    /// --max-event-mib/--max-blob-mib`): nothing more is stored until the
    /// limit is raised. Retrying does not help.
    Full,
    /// The owner was erased (their data key destroyed): nothing of theirs
    /// is read or written again. Retrying does not help.
    Erased,
}

/// An error from the bus.
#[derive(Debug, thiserror::Error)]
pub struct BusError {
    kind: BusErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BusError {
    pub fn new(kind: BusErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: BusErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(BusErrorKind::Config, message)
    }

    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::with_source(BusErrorKind::Unavailable, message, source)
    }

    pub fn kind(&self) -> BusErrorKind {
        self.kind
    }

    /// mnemo's own words, without the source's (which may carry a server's
    /// internals): what an API may pass on.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Whether JetStream refused a write because the stream is at its
/// `max_bytes` or `max_msgs` (discard policy `new`).
pub(crate) fn is_stream_full(e: &dyn std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("maximum bytes exceeded") || text.contains("maximum messages exceeded")
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
