//! Errors of the embedder, with a kind callers can match on.
//!
//! The runtime variants carry the exact text `mnemo doctor` prints, so they
//! say what to do, not only what failed.

use std::path::PathBuf;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, coarsely: enough to decide retry, refuse or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedErrorKind {
    /// onnxruntime is not configured, missing, unloadable or too old. Nothing
    /// will embed until the deployment is fixed; retrying does not help.
    Runtime,
    /// The model files are missing, unreadable, or not the model we expect.
    Model,
    /// The configuration is invalid (batch size, max length, model name).
    Config,
    /// onnxruntime or the tokenizer failed on a batch that was accepted.
    Inference,
    /// A caller's text was refused before reaching the model.
    Input,
}

/// An error from the embedder.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("ORT_DYLIB_PATH is not set: run deploy/model/prepare.sh and source .mnemo/model.env")]
    RuntimeNotConfigured,

    #[error(
        "cannot load onnxruntime from {}: file does not exist \
         (run deploy/model/prepare.sh and source .mnemo/model.env)",
        path.display()
    )]
    RuntimeMissing { path: PathBuf },

    #[error("cannot load onnxruntime from {}: {reason}", path.display())]
    RuntimeLoad { path: PathBuf, reason: String },

    #[error(
        "onnxruntime {version} is too old, need >= {required} (found at {}; \
         deploy/model/prepare.sh installs a recent one)",
        path.display()
    )]
    RuntimeTooOld {
        path: PathBuf,
        version: String,
        required: String,
    },

    #[error("{message}")]
    Model {
        message: String,
        #[source]
        source: Option<Source>,
    },

    #[error("invalid embedder configuration: {0}")]
    Config(String),

    #[error("{message}")]
    Inference {
        message: String,
        #[source]
        source: Option<Source>,
    },

    #[error("{0}")]
    Input(String),
}

impl EmbedError {
    pub fn kind(&self) -> EmbedErrorKind {
        match self {
            Self::RuntimeNotConfigured
            | Self::RuntimeMissing { .. }
            | Self::RuntimeLoad { .. }
            | Self::RuntimeTooOld { .. } => EmbedErrorKind::Runtime,
            Self::Model { .. } => EmbedErrorKind::Model,
            Self::Config(_) => EmbedErrorKind::Config,
            Self::Inference { .. } => EmbedErrorKind::Inference,
            Self::Input(_) => EmbedErrorKind::Input,
        }
    }

    pub(crate) fn model(message: impl Into<String>) -> Self {
        Self::Model {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn model_with(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::Model {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn inference(message: impl Into<String>) -> Self {
        Self::Inference {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn inference_with(message: impl Into<String>, source: impl Into<Source>) -> Self {
        Self::Inference {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The message and its sources on one line, for logs and `mnemo doctor`
    /// (`Display` alone shows only the outermost message).
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            source = cause.source();
        }
        out
    }
}

/// What went wrong in the embedder *service*, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedderErrorKind {
    /// NATS is unavailable, an append conflicted, the model or its queue
    /// failed on a batch: the delivery is tried again later.
    Unavailable,
    /// The delivered chunks can never be embedded as they are.
    Input,
    /// The aggregate refused the vectors for a reason that is not moot.
    Refused,
}

/// An error of the embedder service (the consumer of `DocumentChunked`);
/// [`EmbedError`] is the model runtime's.
#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    #[error("{}", .0.report())]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Bus(#[from] mnemo_bus::BusError),
    #[error("appending the vectors: {0}")]
    Append(#[from] mnemo_bus::ExecuteError<mnemo_domain::DocumentError>),
    #[error("the embedding queue stopped")]
    QueueStopped,
    #[error("the embedding queue returned an unknown text ({0})")]
    UnknownText(usize),
    #[error("chunk {chunk_id} has {tokens} tokens but the model takes {max}: the chunker and the embedder disagree on --max-tokens")]
    ChunkTooLong {
        chunk_id: String,
        tokens: usize,
        max: usize,
    },
}

impl EmbedderError {
    pub fn kind(&self) -> EmbedderErrorKind {
        match self {
            Self::ChunkTooLong { .. } => EmbedderErrorKind::Input,
            Self::Append(mnemo_bus::ExecuteError::Refused(_)) => EmbedderErrorKind::Refused,
            Self::Embed(_)
            | Self::Bus(_)
            | Self::Append(_)
            | Self::QueueStopped
            | Self::UnknownText(_) => EmbedderErrorKind::Unavailable,
        }
    }

    /// What the consumer does with the delivery: NATS unavailable is waited
    /// out (not an attempt); the model failing on a batch is retried with
    /// backoff (it counts: a text that always breaks the model fails its
    /// document); a chunk that can never be embedded gives up at once.
    pub fn outcome(&self) -> mnemo_bus::Outcome {
        let reason = self.to_string();
        match self {
            Self::Append(e) => mnemo_bus::consumer::append_outcome(e),
            Self::Bus(e) => mnemo_bus::consumer::bus_outcome(e),
            Self::ChunkTooLong { .. } => mnemo_bus::Outcome::Reject { reason },
            Self::Embed(_) | Self::QueueStopped | Self::UnknownText(_) => {
                mnemo_bus::Outcome::Retry { reason }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_map_to_outcomes() {
        let long = EmbedderError::ChunkTooLong {
            chunk_id: "c".into(),
            tokens: 300,
            max: 256,
        };
        assert!(matches!(long.outcome(), mnemo_bus::Outcome::Reject { .. }));
        let failed = EmbedderError::from(EmbedError::inference_with(
            "batch failed",
            std::io::Error::other("oom"),
        ));
        assert_eq!(failed.kind(), EmbedderErrorKind::Unavailable);
        assert_eq!(failed.to_string(), "batch failed: oom");
    }

    #[test]
    fn runtime_errors_say_what_to_do() {
        let unset = EmbedError::RuntimeNotConfigured;
        assert_eq!(unset.kind(), EmbedErrorKind::Runtime);
        assert_eq!(
            unset.to_string(),
            "ORT_DYLIB_PATH is not set: run deploy/model/prepare.sh and source .mnemo/model.env"
        );

        let old = EmbedError::RuntimeTooOld {
            path: "/opt/libonnxruntime.so.1.16.3".into(),
            version: "1.16.3".into(),
            required: "1.24".into(),
        };
        assert_eq!(old.kind(), EmbedErrorKind::Runtime);
        assert!(old
            .to_string()
            .starts_with("onnxruntime 1.16.3 is too old, need >= 1.24"));
    }

    #[test]
    fn report_includes_sources() {
        let err = EmbedError::model_with(
            "cannot read /m/model.onnx",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(err.kind(), EmbedErrorKind::Model);
        assert_eq!(err.report(), "cannot read /m/model.onnx: gone");
    }
}
