//! Walking a subject's messages by direct get (`next_by_subj`), one at a
//! time, without a consumer: what the keyring, an erasure and the blob
//! store do to find an owner's records. Any replica may answer.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};

use crate::error::BusError;

/// The first message of `subject` (wildcards allowed) at or after stream
/// sequence `from`; None when there is none. `what` names the stream in
/// the error (`Unavailable`) when it cannot be read.
pub async fn next_message(
    stream: &Stream,
    subject: &str,
    from: u64,
    what: &str,
) -> Result<Option<StreamMessage>, BusError> {
    match stream
        .direct_get_next_for_subject(subject, Some(from))
        .await
    {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(BusError::unavailable(format!("cannot read {what}"), e)),
    }
}
