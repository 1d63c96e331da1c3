//! Older event schemas read as current ones: the hook between the event
//! log and a domain's upcasters (cqrs-es's `EventUpcaster`).
//!
//! An event type says which upcasters it has through
//! `mnemo_domain::schema::Upcast`; [`decode`] takes the
//! fast path (plain serde) when no upcaster claims any (type, version) of
//! the message, and otherwise upcasts the events that need it one by one.
//! The stream is never rewritten.

use cqrs_es::persist::SerializedEvent;
pub use mnemo_domain::schema::Upcast;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::Envelope;

/// Decodes a message payload (a JSON array of events), upcasting events
/// whose header names an older schema version.
pub fn decode<E: DeserializeOwned + Upcast>(
    envelope: &Envelope,
    payload: &[u8],
) -> Result<Vec<E>, serde_json::Error> {
    let upcasters = E::upcasters();
    let needs = |t: &str, v: &str| upcasters.iter().any(|u| u.can_upcast(t, v));
    let old = envelope
        .event_types
        .iter()
        .zip(&envelope.schema_versions)
        .any(|(t, v)| needs(t, v));
    if !old {
        return serde_json::from_slice(payload);
    }
    let raw: Vec<Value> = serde_json::from_slice(payload)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let event_type = envelope.event_types.get(i).cloned().unwrap_or_default();
            let mut event = SerializedEvent {
                aggregate_id: envelope.aggregate_id.clone(),
                sequence: envelope.aggregate_version as usize,
                aggregate_type: envelope.aggregate_type.clone(),
                event_version: envelope.schema_versions.get(i).cloned().unwrap_or_default(),
                event_type,
                payload,
                metadata: Value::Null,
            };
            for upcaster in upcasters {
                if upcaster.can_upcast(&event.event_type, &event.event_version) {
                    event = upcaster.upcast(event);
                }
            }
            serde_json::from_value(event.payload)
        })
        .collect()
}
