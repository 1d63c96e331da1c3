//! The one consumer: an ordered consumer on `<ns>.ev.doc.>` from the live
//! point, each message decoded once and handed to the hub.
//!
//! Ordered consumers are ephemeral and unacknowledged: nothing durable is
//! created per API process, and a gap (a missed heartbeat, a reconnect) is
//! healed by async-nats recreating the consumer from the last sequence it
//! delivered. Anything worse is retried here from the hub's position, so
//! watchers see a pause, never a hole.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use futures::StreamExt;
use mnemo_bus::event_store::{decode_message, Decoded, LEARNER_ERASED};
use mnemo_bus::{Bus, BusError};
use mnemo_domain::progress::slim;
use mnemo_domain::{DocumentEvent, DocumentId};
use tokio::task::JoinHandle;

use super::{HubEvent, ProgressHub};

/// Longest wait between attempts to recreate the consumer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The running pump; stops the hub and the consumer when dropped.
pub struct Pump {
    hub: ProgressHub,
    task: JoinHandle<()>,
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.hub.stop();
        self.task.abort();
    }
}

/// Starts the pump at the stream's current end and makes the hub live.
pub async fn start(hub: ProgressHub, bus: &Bus) -> Result<Pump, BusError> {
    let position = bus
        .events
        .get_info()
        .await
        .map_err(|e| BusError::unavailable("cannot read the event stream's position", e))?
        .state
        .last_sequence;
    let messages = open(bus, position).await?;
    hub.go_live(position);
    tracing::info!(position, "progress hub live");
    let task = tokio::spawn(run(hub.clone(), bus.clone(), messages));
    Ok(Pump { hub, task })
}

/// The document-event subjects: `<ns>.ev.doc.>`.
fn filter(bus: &Bus) -> String {
    format!("{}.>", bus.namespace.events_of("doc"))
}

async fn open(bus: &Bus, after: u64) -> Result<Ordered, BusError> {
    let consumer = bus
        .events
        .create_consumer(OrderedConfig {
            name: Some(mnemo_bus::consumer::ordered_reader_name("progress")),
            filter_subject: filter(bus),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            description: Some("mnemo API progress hub".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::unavailable("cannot create the progress consumer", e))?;
    consumer
        .messages()
        .await
        .map_err(|e| BusError::unavailable("cannot read the progress consumer", e))
}

async fn run(hub: ProgressHub, bus: Bus, mut messages: Ordered) {
    let prefix = format!("{}.", bus.namespace.events_of("doc"));
    let mut backoff = mnemo_bus::Backoff::new(Duration::from_millis(50), MAX_BACKOFF);
    loop {
        match messages.next().await {
            Some(Ok(msg)) => {
                backoff.reset();
                let Ok(info) = msg.info() else { continue };
                let sequence = info.stream_sequence;
                let (owner, event) = route(&bus, &prefix, &msg.subject, sequence, &msg).await;
                hub.publish(sequence, owner, event);
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(error = %e, "progress consumer failed; recreating it");
                } else {
                    tracing::warn!("progress consumer ended; recreating it");
                }
                loop {
                    tokio::time::sleep(backoff.next_delay().unwrap_or(MAX_BACKOFF)).await;
                    let Some(after) = hub.position() else { return };
                    match open(&bus, after).await {
                        Ok(m) => {
                            messages = m;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot recreate the progress consumer")
                        }
                    }
                }
            }
        }
    }
}

/// The owner token of a message and its decoded, slimmed events (None when
/// it cannot be read: logged, and skipped the same way by history reads).
async fn route<'s>(
    bus: &Bus,
    prefix: &str,
    subject: &'s str,
    sequence: u64,
    msg: &async_nats::jetstream::Message,
) -> (&'s str, Option<HubEvent>) {
    let erased = mnemo_bus::envelope::names_event_types(msg.headers.as_ref(), &[LEARNER_ERASED]);
    if erased {
        // Nothing to show: the owner's later messages are tombstones (once
        // the keyring confirms the erasure; a forged one changes nothing).
        let owner = bus.namespace.owner_token_of(subject).unwrap_or_default();
        let _ = bus.keys.confirm_erased(owner).await;
        return (owner, None);
    }
    let Some((owner, document)) = split_subject(prefix, subject) else {
        tracing::warn!(sequence, subject, "not a document subject; skipped");
        return ("", None);
    };
    let event = decode(
        &bus.keys,
        subject,
        sequence,
        msg.headers.as_ref(),
        &msg.payload,
        document,
    )
    .await;
    (owner, event)
}

/// `<ns>.ev.doc.<owner token>.<document id>` → (owner token, document id).
pub(crate) fn split_subject<'s>(prefix: &str, subject: &'s str) -> Option<(&'s str, DocumentId)> {
    let (owner, id) = subject.strip_prefix(prefix)?.split_once('.')?;
    Some((owner, id.parse().ok()?))
}

/// Decodes one message into a hub event; undecodable ones are logged and
/// skipped (identically by the pump and by history reads), and so are an
/// erased owner's (tombstones: nothing of theirs is shown again).
pub(crate) async fn decode(
    keys: &mnemo_bus::Keyring,
    subject: &str,
    sequence: u64,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
    document: DocumentId,
) -> Option<HubEvent> {
    match decode_message::<DocumentEvent>(keys, subject, sequence, headers, payload).await {
        Ok(Decoded::Erased(_)) => None,
        Ok(Decoded::Events(stored)) => Some(HubEvent {
            sequence,
            document,
            events: stored.events.into_iter().map(slim).collect(),
        }),
        Err(e) => {
            tracing::warn!(sequence, document_id = %document, error = %e, "undecodable event message; progress skips it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_split_into_owner_and_document() {
        let id = DocumentId::new();
        let subject = format!("t.ev.doc.mfrgg.{id}");
        assert_eq!(split_subject("t.ev.doc.", &subject), Some(("mfrgg", id)));
        assert_eq!(split_subject("t.ev.doc.", "t.ev.learn.x.y"), None);
        assert_eq!(split_subject("t.ev.doc.", "t.ev.doc.mfrgg.not-an-id"), None);
    }
}
