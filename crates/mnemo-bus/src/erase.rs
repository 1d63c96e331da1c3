//! Erasing a learner from an immutable log: crypto-shredding (decision 022).
//!
//! An erasure has two halves:
//! - [`request_erasure`], which `AccountService.EraseLearner` runs in the
//!   API:
//!   1. the owner's erasure marker is written
//!      ([`crate::keys::Keyring::mark_erasure`]). From here every reader
//!      takes their events for tombstones, and no key of theirs is made
//!      again;
//!   2. `LearnerErased` is appended on `<ns>.ev.doc.<token>.erased` and
//!      `<ns>.ev.learn.<token>.learner.erased`. Each ordered reader (the
//!      projector's runners, the search index, the progress hub) drops
//!      what it holds of the owner there, *in log order*, and a rebuild
//!      does the same.
//! - [`shred`], which the projector runs when it applies `LearnerErased`
//!   (a role that is not exposed, and the only service allowed to erase
//!   messages and purge):
//!   1. the owner's blobs are deleted;
//!   2. their dead letters are erased;
//!   3. the key's messages are erased on disk
//!      ([`crate::keys::Keyring::shred_key`]), last, so that a key gone
//!      means everything is.
//!
//! [`erase_learner`] runs both: `mnemo learner erase`, as the operator.
//! Every step is idempotent. An erasure interrupted half-way is run again,
//! or finished by the projector.

use std::collections::HashMap;

use crate::scan::next_message;

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
    pub had_key: bool,
    /// The owner's events written before keys (plaintext, in a log that
    /// is immutable): mnemo reads them as tombstones from now on, but
    /// their raw bytes stay readable on the stream (docs/security.md).
    pub plaintext_events: u64,
    /// Stream sequences of the two `LearnerErased` messages (documents,
    /// learning): the read models are clean once their checkpoints pass.
    pub sequences: [u64; 2],
    /// What [`shred`] erased, when it ran here (the operator's erase).
    pub shredded: Option<Shredded>,
}

/// What [`shred`] erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shredded {
    pub key_messages: usize,
    pub blobs: usize,
    pub dead_letters: usize,
}

/// Checks an owner token: `[a-z2-7]+`.
fn check_token(token: &str) -> Result<(), BusError> {
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
    {
        return Err(BusError::config(format!("'{token}' is not an owner token")));
    }
    Ok(())
}

/// The API's half: the marker and `LearnerErased` (see the module).
pub async fn request_erasure(bus: &Bus, token: &str, by: &str) -> Result<ErasureReport, BusError> {
    check_token(token)?;
    let plaintext_events = count_plaintext(bus, token).await?;
    let had_key = bus.keys.mark_erasure(token).await?;
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
    tracing::info!(
        owner = token,
        had_key,
        plaintext_events,
        by,
        "learner erased"
    );
    if plaintext_events > 0 {
        tracing::warn!(owner = token, plaintext_events, "the learner's events from before keys stay readable as raw bytes on the stream (the log is immutable)");
    }
    Ok(ErasureReport {
        owner_token: token.to_owned(),
        had_key,
        plaintext_events,
        sequences,
        shredded: None,
    })
}

/// The projector's half: the key erased on disk, the blobs and dead
/// letters deleted. Only for an owner whose erasure marker is there.
pub async fn shred(bus: &Bus, token: &str) -> Result<Shredded, BusError> {
    check_token(token)?;
    if !bus.keys.confirm_erased(token).await? {
        return Err(BusError::new(
            BusErrorKind::Rejected,
            format!("owner {token} has no erasure marker: nothing is shredded"),
        ));
    }
    let blobs = bus.blob_store().await?.delete_owner(token).await?;
    let dead_letters = erase_dead_letters(bus, token).await?;
    // The key last: once its records are gone, so is everything else
    // (what `EraseLearner` waits for).
    let key_messages = bus.keys.shred_key(token).await?;
    tracing::info!(
        owner = token,
        key_messages,
        blobs,
        dead_letters,
        "an erased learner's key, files and dead letters shredded"
    );
    Ok(Shredded {
        key_messages,
        blobs,
        dead_letters,
    })
}

/// Both halves at once: the operator's `mnemo learner erase`.
pub async fn erase_learner(bus: &Bus, token: &str, by: &str) -> Result<ErasureReport, BusError> {
    let mut report = request_erasure(bus, token, by).await?;
    report.shredded = Some(shred(bus, token).await?);
    Ok(report)
}

/// How many of the owner's event messages are plaintext (written before
/// keys): every message of their subjects without the sealed header.
async fn count_plaintext(bus: &Bus, token: &str) -> Result<u64, BusError> {
    let mut plaintext = 0;
    for kind in ["doc", "learn"] {
        let subjects = format!("{}.{token}.>", bus.namespace.events_of(kind));
        let mut next = 1;
        loop {
            let Some(message) = next_message(&bus.events, &subjects, next, "the event log").await?
            else {
                break;
            };
            next = message.sequence + 1;
            let sealed = message.headers.get(crate::event_store::SEALED).is_some();
            let erased =
                crate::envelope::names_event_types(Some(&message.headers), &[LEARNER_ERASED]);
            if !sealed && !erased {
                plaintext += 1;
            }
        }
    }
    Ok(plaintext)
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
        let Some(message) = next_message(&stream, &subjects, next, "the dead letters").await?
        else {
            break;
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
