//! Erasing a learner from an immutable log: crypto-shredding (decision 022).
//!
//! [`erase_learner`] is what `mnemo learner erase` and
//! `AccountService.EraseLearner` run, in this order:
//! 1. the owner's data key is destroyed ([`crate::keys::Keyring::destroy`]:
//!    erasure marker, then the key's messages erased on disk). From here
//!    every event, blob and dead letter of the owner is ciphertext under a
//!    key nobody has; readers see their events as tombstones;
//! 2. `LearnerErased` is appended on `<ns>.ev.doc.<token>.erased` and
//!    `<ns>.ev.learn.<token>.learner.erased`, so each ordered reader (the
//!    projector's runners, the search index, the progress hub) drops what
//!    it holds of the owner *in log order*: a rebuild does the same;
//! 3. the owner's blobs are deleted, and their dead letters erased.
//!
//! Every step is idempotent: an erase interrupted half-way is run again.
//! The read models are the projector's: it deletes the owner's rows when
//! it reads step 2 ([`ErasureReport::sequences`] says where to wait).

use std::collections::HashMap;

use async_nats::jetstream::stream::DirectGetErrorKind;

use crate::envelope::Envelope;
use crate::error::{BusError, BusErrorKind};
use crate::event_store::LEARNER_ERASED;
use crate::Bus;

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureReport {
    /// The owner's subject token (all that is left of them).
    pub owner_token: String,
    /// Whether the owner had a data key (none: nothing sealed of theirs;
    /// a history from before keys stays readable as raw bytes).
    pub key_destroyed: bool,
    pub blobs_deleted: usize,
    pub dead_letters_erased: usize,
    /// Stream sequences of the two `LearnerErased` messages (documents,
    /// learning): the read models are clean once their checkpoints pass.
    pub sequences: [u64; 2],
}

/// Erases the owner `token`: see the module documentation.
pub async fn erase_learner(bus: &Bus, token: &str, by: &str) -> Result<ErasureReport, BusError> {
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
    {
        return Err(BusError::config(format!("'{token}' is not an owner token")));
    }
    let key_destroyed = bus.keys.destroy(token).await?;
    let ns = &bus.namespace;
    let mut sequences = [0; 2];
    for (i, (subject, kind)) in [
        (format!("{}.{token}.erased", ns.events_of("doc")), "doc"),
        (
            format!("{}.{token}.learner.erased", ns.events_of("learn")),
            "learn",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        sequences[i] = append_erased(bus, &subject, kind, token, by).await?;
    }
    let blobs_deleted = bus.blob_store().await?.delete_owner(token).await?;
    let dead_letters_erased = erase_dead_letters(bus, token).await?;
    tracing::info!(
        owner = token,
        key_destroyed,
        blobs_deleted,
        dead_letters_erased,
        by,
        "learner erased"
    );
    Ok(ErasureReport {
        owner_token: token.to_owned(),
        key_destroyed,
        blobs_deleted,
        dead_letters_erased,
        sequences,
    })
}

/// Appends one `LearnerErased` message (plaintext: only its time and who
/// asked, `owner` or `admin`); the same erasure's is deduplicated.
async fn append_erased(
    bus: &Bus,
    subject: &str,
    kind: &str,
    token: &str,
    by: &str,
) -> Result<u64, BusError> {
    let metadata = HashMap::from([(
        crate::envelope::meta::COMMAND_ID.to_owned(),
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("mnemo/erased/{kind}/{token}").as_bytes(),
        )
        .to_string(),
    )]);
    let envelope = Envelope::for_commit(
        "learner",
        token,
        1,
        vec![LEARNER_ERASED.to_owned()],
        vec!["1".to_owned()],
        &metadata,
    );
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let payload = serde_json::to_vec(&serde_json::json!([
        {"type": LEARNER_ERASED, "data": {"at": at, "by": by}}
    ]))
    .map_err(|e| BusError::with_source(BusErrorKind::Rejected, "cannot encode", e))?;
    let ack = bus
        .jetstream
        .publish_with_headers(subject.to_owned(), envelope.to_headers(), payload.into())
        .await
        .map_err(|e| BusError::unavailable("cannot append LearnerErased", e))?
        .await
        .map_err(|e| BusError::unavailable("cannot append LearnerErased", e))?;
    Ok(ack.sequence)
}

/// Erases the owner's dead letters (copies of their sealed events, and
/// mnemo's reasons for giving up on them).
async fn erase_dead_letters(bus: &Bus, token: &str) -> Result<usize, BusError> {
    let stream = bus
        .jetstream
        .get_stream(bus.namespace.dlq_stream())
        .await
        .map_err(|e| BusError::unavailable("cannot open the dead-letter stream", e))?;
    let subjects = format!("{}.dlq.>", bus.namespace.as_str());
    let mut erased = 0;
    let mut next = 1;
    loop {
        let message = match stream
            .direct_get_next_for_subject(subjects.as_str(), Some(next))
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
            Err(e) => return Err(BusError::unavailable("cannot read the dead letters", e)),
        };
        next = message.sequence + 1;
        let event_subject = message
            .headers
            .get(crate::dlq::headers::SUBJECT)
            .map(|v| v.to_string())
            .unwrap_or_default();
        if bus.namespace.owner_token_of(&event_subject) == Some(token) {
            stream.delete_message(message.sequence).await.map_err(|e| {
                BusError::with_source(BusErrorKind::Rejected, "cannot erase a dead letter", e)
            })?;
            erased += 1;
        }
    }
    Ok(erased)
}
