//! Errors of the projector, with a kind that says what to do about them.

use mnemo_bus::{BusError, BusErrorKind};

/// What went wrong, coarsely: enough to decide wait-and-retry, step over,
/// or refuse (as async-nats' `Error<Kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectorErrorKind {
    /// PostgreSQL or NATS is unavailable (down, restarting, a connection
    /// closed, a lock timeout): retry as is, never skip anything.
    Unavailable,
    /// PostgreSQL refused a statement on what it was given (a constraint,
    /// a value out of range): retrying the same input fails the same way.
    Database,
    /// A stored event could not be read.
    Corrupt,
    /// An operator's request was refused (e.g. a rebuild of nothing).
    Refused,
    /// A task of the projector itself failed (a panic in a worker).
    Internal,
}

/// An error of the projector.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("PostgreSQL: {}", describe_postgres(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("migration {name} failed: {}", describe_postgres(source))]
    Migration {
        name: String,
        source: tokio_postgres::Error,
    },
    /// Refused with a reason for the operator.
    #[error("rebuild: {0}")]
    Rebuild(String),
    /// The database URL asks for something that cannot be done (e.g. TLS
    /// with a CA file that does not read).
    #[error("database settings: {0}")]
    Config(String),
    #[error("a projector task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ProjectorError {
    pub fn kind(&self) -> ProjectorErrorKind {
        match self {
            Self::Postgres(e) | Self::Migration { source: e, .. } => {
                if postgres_is_transient(e) {
                    ProjectorErrorKind::Unavailable
                } else {
                    ProjectorErrorKind::Database
                }
            }
            Self::Bus(e) => match e.kind() {
                BusErrorKind::Corrupt => ProjectorErrorKind::Corrupt,
                BusErrorKind::Config | BusErrorKind::Erased => ProjectorErrorKind::Refused,
                BusErrorKind::Unavailable
                | BusErrorKind::Conflict
                | BusErrorKind::NotFound
                | BusErrorKind::Rejected
                | BusErrorKind::Full => ProjectorErrorKind::Unavailable,
            },
            Self::Rebuild(_) | Self::Config(_) => ProjectorErrorKind::Refused,
            Self::Task(_) => ProjectorErrorKind::Internal,
        }
    }

    /// Whether the error is about the database or the bus being unavailable
    /// (retry as is, never skip anything) rather than about an event's
    /// content.
    pub fn is_transient(&self) -> bool {
        self.kind() == ProjectorErrorKind::Unavailable
    }

    /// The event stream could not be read (a consumer could not be made,
    /// a delivery failed, the stream ended under a reader).
    pub(crate) fn stream(
        context: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Bus(BusError::unavailable(context, source))
    }

    /// A delivery without JetStream's metadata (cannot happen on a
    /// JetStream consumer; a server bug or a protocol change).
    pub(crate) fn not_jetstream(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self::Bus(BusError::new(
            BusErrorKind::Corrupt,
            format!("not a JetStream delivery: {e}"),
        ))
    }

    /// A live read of the stream ended (nats closed it): start again.
    pub(crate) fn stream_ended() -> Self {
        Self::Bus(BusError::new(
            BusErrorKind::Unavailable,
            "the event stream ended",
        ))
    }
}

/// A PostgreSQL error with what the server said: tokio-postgres shows a
/// server error as just "db error", which tells an operator nothing (a
/// read-only database, a full disk, a missing table all look alike).
pub fn describe_postgres(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut out = format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                out.push_str(&format!("; {detail}"));
            }
            out
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// Whether a PostgreSQL error means "unavailable, try again" rather than
/// "this statement is wrong for this data". Shared by every reader of the
/// read models (search, the API), so they all classify alike.
pub fn postgres_is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        return true; // I/O, closed connection, timeout
    };
    let code = code.code();
    // 08 connection, 40 rollback (deadlock/serialization), 53 resources,
    // 57 operator intervention, 55P03 lock timeout, 3F000/42P01 schema or
    // table missing (dropped under us: the next start migrates it back),
    // 25006 read-only transaction (a replica, or the server put in
    // read-only mode for maintenance).
    ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c))
        || ["55P03", "3F000", "42P01", "25006"].contains(&code)
}
