//! Every error that leaves the API becomes a `tonic::Status` here, once.

use mnemo_bus::{BusError, BusErrorKind, ExecuteError};
use mnemo_domain::content::ContentError;
use mnemo_domain::{DocumentError, DocumentErrorKind};
use tonic::Status;

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
    let msg = e.to_string();
    match e.kind() {
        BusErrorKind::Config => Status::invalid_argument(msg),
        BusErrorKind::Unavailable => Status::unavailable(msg),
        BusErrorKind::Conflict => Status::aborted(msg),
        BusErrorKind::NotFound => Status::not_found(msg),
        BusErrorKind::Corrupt | BusErrorKind::Rejected => Status::internal(msg),
    }
}

pub fn from_execute_error(e: &ExecuteError<DocumentError>) -> Status {
    match e {
        ExecuteError::Refused(d) => from_document_error(d),
        ExecuteError::Conflict { .. } => Status::aborted(e.to_string()),
        ExecuteError::Bus(b) => from_bus_error(b),
    }
}

pub fn from_content_error(e: &ContentError) -> Status {
    Status::invalid_argument(e.to_string())
}

pub fn from_db_error(e: &mnemo_projector::ProjectorError) -> Status {
    tracing::warn!(error = %e, "read model query failed");
    Status::unavailable(format!("read model unavailable: {e}"))
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
    match e {
        ExecuteError::Refused(d) => from_learn_error(d),
        ExecuteError::Conflict { .. } => Status::aborted(e.to_string()),
        ExecuteError::Bus(b) => from_bus_error(b),
    }
}
