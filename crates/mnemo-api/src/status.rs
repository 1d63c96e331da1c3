//! The one place an internal error becomes a `tonic::Status`.
//!
//! - Every error has a kind; the kind picks the code. Unavailable
//!   dependencies (NATS, PostgreSQL, the search follower) are
//!   `UNAVAILABLE` (retry); refusals of the domain are `NOT_FOUND`,
//!   `FAILED_PRECONDITION`, `INVALID_ARGUMENT`…; anything else is `INTERNAL`.
//! - The client gets a stable message. Internal detail (PostgreSQL's or
//!   NATS's own words, a panic) is logged here, on the call's span (so with
//!   its request id), never sent: an `INTERNAL` says which request id to
//!   look up (also in the `x-request-id` header of the response).
//! - Domain refusals are written for people and carry no internal detail,
//!   so their text is sent as is.
//!
//! Handlers may still answer a bad request directly
//! (`Status::invalid_argument("the query is empty")`): those are about the
//! request, not an internal error.

use std::fmt::Display;

use mnemo_bus::{BusError, BusErrorKind, ExecuteError};
use mnemo_domain::content::ContentError;
use mnemo_domain::{DocumentError, DocumentErrorKind};
use mnemo_projector::{ProjectorError, ProjectorErrorKind};
use mnemo_search::{SearchError, SearchErrorKind};
use tonic::Status;
use tonic_types::StatusExt;

use crate::auth::AuthError;

/// A failure of ours the client can do nothing about: logged with its
/// detail, answered `INTERNAL` with the request id to quote.
pub fn internal(what: &str, detail: &dyn Display) -> Status {
    tracing::error!(error = %detail, "{what}");
    Status::internal(match crate::request_id::current() {
        Some(id) => format!("internal error while {what} (request id {id})"),
        None => format!("internal error while {what}"),
    })
}

/// A dependency is down or busy: logged with its detail, answered
/// `UNAVAILABLE` (retryable) with a stable message.
pub fn unavailable(what: &str, detail: &dyn Display) -> Status {
    tracing::warn!(error = %detail, "{what}");
    Status::unavailable(format!("{what}: temporarily unavailable, retry shortly"))
}

pub fn from_document_error(e: &DocumentError) -> Status {
    let msg = e.to_string();
    match e.kind() {
        DocumentErrorKind::NotFound => Status::not_found(msg),
        DocumentErrorKind::AlreadyExists => Status::already_exists(msg),
        DocumentErrorKind::Stale | DocumentErrorKind::FailedPrecondition => {
            Status::failed_precondition(msg)
        }
        DocumentErrorKind::InvalidArgument => Status::invalid_argument(msg),
    }
}

pub fn from_bus_error(e: &BusError) -> Status {
    match e.kind() {
        // Names the caller gave (an id that is not one): about the request.
        BusErrorKind::Config => Status::invalid_argument(e.to_string()),
        BusErrorKind::Unavailable => unavailable("the event log", e),
        BusErrorKind::Conflict => {
            Status::aborted("the aggregate changed concurrently; retry the call")
        }
        BusErrorKind::NotFound => internal("reading a stored file", e),
        BusErrorKind::Corrupt | BusErrorKind::Rejected => internal("using the event log", e),
        BusErrorKind::Erased => erased(),
        BusErrorKind::Full => crate::quota::refusal(
            "STORE_FULL",
            format!(
                "{}: nothing was stored; an operator must raise the namespace's limit",
                e.message()
            ),
        ),
    }
}

/// The caller (or the owner asked about) was erased: `PERMISSION_DENIED`
/// with reason `LEARNER_ERASED`. Nothing of theirs is read or written again.
pub fn erased() -> Status {
    Status::with_error_details(
        tonic::Code::PermissionDenied,
        "this learner was erased: nothing of theirs is read or written again",
        tonic_types::ErrorDetails::with_error_info(
            "LEARNER_ERASED",
            crate::quota::ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        ),
    )
}

/// Reading a stored file back to its owner (`Download`): bytes that are
/// not what was uploaded are DATA_LOSS, which the client must not keep.
pub fn from_blob_read_error(e: &BusError) -> Status {
    match e.kind() {
        BusErrorKind::Corrupt => {
            tracing::error!(error = %e, "a stored file does not hold its bytes");
            Status::data_loss(format!("the stored file is damaged: {}", e.message()))
        }
        _ => from_bus_error(e),
    }
}

fn from_execute<E: std::error::Error>(
    e: &ExecuteError<E>,
    refused: impl Fn(&E) -> Status,
) -> Status {
    match e {
        ExecuteError::Refused(d) => refused(d),
        ExecuteError::Conflict { .. } => Status::aborted(e.to_string()),
        ExecuteError::Bus(b) => from_bus_error(b),
    }
}

pub fn from_execute_error(e: &ExecuteError<DocumentError>) -> Status {
    from_execute(e, from_document_error)
}

pub fn from_content_error(e: &ContentError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A read model could not be read: `UNAVAILABLE` only when PostgreSQL is
/// (a query that is wrong stays wrong: `INTERNAL`).
pub fn from_db_error(e: &ProjectorError) -> Status {
    match e.kind() {
        ProjectorErrorKind::Unavailable => unavailable("the read models", e),
        ProjectorErrorKind::Refused => Status::failed_precondition(e.to_string()),
        ProjectorErrorKind::Database
        | ProjectorErrorKind::Corrupt
        | ProjectorErrorKind::Internal => internal("reading the read models", e),
    }
}

/// A direct PostgreSQL error of a read-model query.
pub fn from_postgres_error(e: tokio_postgres::Error) -> Status {
    from_db_error(&ProjectorError::from(e))
}

pub fn from_search_error(e: &SearchError) -> Status {
    match e.kind() {
        SearchErrorKind::Unavailable => unavailable("search", e),
        SearchErrorKind::Internal => internal("searching", e),
    }
}

/// The embedding model failed on a query.
pub fn from_embed_error(e: &mnemo_embedder::EmbedError) -> Status {
    internal("embedding the query", &e.report())
}

/// A task of the call panicked or was cancelled.
pub fn from_join_error(what: &str, e: &tokio::task::JoinError) -> Status {
    internal(what, e)
}

/// A local file of the call (an upload's spool) failed.
pub fn from_io_error(what: &str, e: &std::io::Error) -> Status {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            tracing::error!(error = %e, "{what}");
            Status::resource_exhausted(format!("{what}: the server is out of disk space"))
        }
        _ => internal(what, e),
    }
}

/// The progress hub cannot take a watcher: not started yet or stopping
/// (`UNAVAILABLE`, try again), or the owner holds too many already
/// (`RESOURCE_EXHAUSTED`).
pub fn from_hub_error(e: &crate::progress_hub::HubError) -> Status {
    match e {
        crate::progress_hub::HubError::TooMany(_) => Status::resource_exhausted(e.to_string()),
        _ => Status::unavailable(format!("{e}; try again")),
    }
}

/// A token was missing or refused: the reason is about the caller's token.
pub fn from_auth_error(e: &AuthError) -> Status {
    match e {
        AuthError::Missing | AuthError::Invalid(_) => Status::unauthenticated(e.to_string()),
        AuthError::Sign(_) | AuthError::Jwks { .. } => internal("checking a token", e),
    }
}

pub fn from_learn_error(e: &mnemo_domain::learn::LearnError) -> Status {
    use mnemo_domain::learn::LearnErrorKind as K;
    let msg = e.to_string();
    match e.kind() {
        K::NotFound => Status::not_found(msg),
        K::AlreadyExists => Status::already_exists(msg),
        K::FailedPrecondition => Status::failed_precondition(msg),
        K::InvalidArgument => Status::invalid_argument(msg),
    }
}

pub fn from_learn_execute_error(e: &ExecuteError<mnemo_domain::learn::LearnError>) -> Status {
    from_execute(e, from_learn_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_stays_in_the_log() {
        let e = BusError::new(BusErrorKind::Corrupt, "secret nats detail at 10.0.0.7");
        let s = from_bus_error(&e);
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("10.0.0.7"), "{}", s.message());
        let e = BusError::new(BusErrorKind::Unavailable, "timed out talking to 10.0.0.7");
        let s = from_bus_error(&e);
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(!s.message().contains("10.0.0.7"), "{}", s.message());
    }

    #[tokio::test]
    async fn an_internal_error_names_the_request_id() {
        let s = crate::request_id::tests_scope("req-7", async {
            internal("reading a thing", &"disk on fire")
        })
        .await;
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(s.message().contains("req-7"), "{}", s.message());
        assert!(!s.message().contains("disk on fire"));
    }

    #[test]
    fn a_missing_table_is_unavailable_but_a_bad_rebuild_request_is_not() {
        let refused = ProjectorError::Rebuild("nothing to rebuild".into());
        assert_eq!(
            from_db_error(&refused).code(),
            tonic::Code::FailedPrecondition
        );
        let down = ProjectorError::Bus(BusError::new(BusErrorKind::Unavailable, "down"));
        assert_eq!(from_db_error(&down).code(), tonic::Code::Unavailable);
    }
}
