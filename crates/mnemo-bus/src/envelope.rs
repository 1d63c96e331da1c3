//! The event envelope: the headers every event message carries.
//!
//! Any NATS client can read them without knowing mnemo's payloads:
//!
//! | header                   | meaning                                                 |
//! |--------------------------|---------------------------------------------------------|
//! | `Nats-Msg-Id`            | the event id (JetStream deduplicates retries on it)     |
//! | `Mnemo-Event-Id`         | the event id (UUIDv7)                                   |
//! | `Mnemo-Event-Type`       | event type(s), comma-separated in payload order         |
//! | `Mnemo-Schema-Version`   | schema version of each type, same order                 |
//! | `Mnemo-Occurred-At`      | RFC 3339 UTC instant the command was decided            |
//! | `Mnemo-Causation-Id`     | id of the command or event that caused this one         |
//! | `Mnemo-Correlation-Id`   | id shared by everything one user request set off        |
//! | `Mnemo-Aggregate-Type`   | e.g. `document`                                         |
//! | `Mnemo-Aggregate-Id`     | `<owner token>.<id>`                                    |
//! | `Mnemo-Aggregate-Version`| the aggregate's event count after this message          |
//! | `traceparent`            | W3C trace context                                       |
//!
//! One message holds all events of one command (nats-server 2.9 has no atomic
//! batch publish), so the payload is a JSON array; see docs/events.md.

use std::collections::HashMap;

use async_nats::HeaderMap;
use mnemo_domain::schema::EventKind;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{BusError, BusErrorKind};

pub const EVENT_ID: &str = "Mnemo-Event-Id";
pub const EVENT_TYPE: &str = "Mnemo-Event-Type";
pub const SCHEMA_VERSION: &str = "Mnemo-Schema-Version";
pub const OCCURRED_AT: &str = "Mnemo-Occurred-At";
pub const CAUSATION_ID: &str = "Mnemo-Causation-Id";
pub const CORRELATION_ID: &str = "Mnemo-Correlation-Id";
pub const AGGREGATE_TYPE: &str = "Mnemo-Aggregate-Type";
pub const AGGREGATE_ID: &str = "Mnemo-Aggregate-Id";
pub const AGGREGATE_VERSION: &str = "Mnemo-Aggregate-Version";
pub const TRACEPARENT: &str = "traceparent";

/// Keys of the cqrs-es metadata map that the event store turns into headers.
/// Everything the caller knows about *why* a command runs travels this way.
pub mod meta {
    /// Idempotency key of the command: becomes the event id (and so the
    /// `Nats-Msg-Id`), so a retried command is deduplicated by JetStream.
    pub const COMMAND_ID: &str = "command_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const TRACEPARENT: &str = "traceparent";
    /// Set by the store on loaded events: the stream sequence of the message.
    pub const STREAM_SEQUENCE: &str = "stream_sequence";
    /// Set by the store on loaded events: the event id.
    pub const EVENT_ID: &str = "event_id";
    /// Set by the store on loaded events: when it occurred (RFC 3339).
    pub const OCCURRED_AT: &str = "occurred_at";
}

/// The envelope of one event message.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: String,
    pub event_types: Vec<String>,
    pub schema_versions: Vec<String>,
    pub occurred_at: OffsetDateTime,
    pub causation_id: String,
    pub correlation_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub aggregate_version: u64,
    pub traceparent: String,
}

impl Envelope {
    /// Builds the envelope of a new message from the command's metadata.
    /// Missing ids are generated: the event id doubles as causation and
    /// correlation id of a command that has no parent.
    pub fn for_commit(
        aggregate_type: &str,
        aggregate_id: &str,
        aggregate_version: u64,
        types: Vec<String>,
        versions: Vec<String>,
        metadata: &HashMap<String, String>,
    ) -> Self {
        let event_id = metadata
            .get(meta::COMMAND_ID)
            .cloned()
            .unwrap_or_else(|| Uuid::now_v7().to_string());
        let causation_id = metadata
            .get(meta::CAUSATION_ID)
            .cloned()
            .unwrap_or_else(|| event_id.clone());
        let correlation_id = metadata
            .get(meta::CORRELATION_ID)
            .cloned()
            .unwrap_or_else(|| causation_id.clone());
        let traceparent = metadata
            .get(meta::TRACEPARENT)
            .filter(|t| valid_traceparent(t))
            .cloned()
            .unwrap_or_else(new_traceparent);
        Self {
            event_id,
            event_types: types,
            schema_versions: versions,
            occurred_at: OffsetDateTime::now_utc(),
            causation_id,
            correlation_id,
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            aggregate_version,
            traceparent,
        }
    }

    /// Metadata for a command this event causes: the event is its cause,
    /// the correlation and trace carry on (as the current span's context
    /// when it handles this event in an exported trace: [`crate::trace`]).
    pub fn caused_metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (meta::CAUSATION_ID.to_owned(), self.event_id.clone()),
            (meta::CORRELATION_ID.to_owned(), self.correlation_id.clone()),
            (
                meta::TRACEPARENT.to_owned(),
                crate::trace::child_traceparent(&self.traceparent),
            ),
        ])
    }

    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(async_nats::header::NATS_MESSAGE_ID, self.event_id.as_str());
        h.insert(EVENT_ID, self.event_id.as_str());
        h.insert(EVENT_TYPE, self.event_types.join(",").as_str());
        h.insert(SCHEMA_VERSION, self.schema_versions.join(",").as_str());
        let at = self
            .occurred_at
            .format(&Rfc3339)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"));
        h.insert(OCCURRED_AT, at.as_str());
        h.insert(CAUSATION_ID, self.causation_id.as_str());
        h.insert(CORRELATION_ID, self.correlation_id.as_str());
        h.insert(AGGREGATE_TYPE, self.aggregate_type.as_str());
        h.insert(AGGREGATE_ID, self.aggregate_id.as_str());
        h.insert(
            AGGREGATE_VERSION,
            self.aggregate_version.to_string().as_str(),
        );
        h.insert(TRACEPARENT, self.traceparent.as_str());
        h
    }

    /// Reads an envelope back; a message without the mandatory headers is corrupt.
    pub fn from_headers(h: &HeaderMap) -> Result<Self, BusError> {
        // One pass over the headers, matching names as bytes: a lookup per
        // name builds and hashes a header name each time, and a replay
        // decodes every message's envelope.
        const NAMES: [&str; 10] = [
            EVENT_ID,
            EVENT_TYPE,
            SCHEMA_VERSION,
            OCCURRED_AT,
            CAUSATION_ID,
            CORRELATION_ID,
            AGGREGATE_TYPE,
            AGGREGATE_ID,
            AGGREGATE_VERSION,
            TRACEPARENT,
        ];
        let mut found: [Option<&str>; 10] = [None; 10];
        for (name, values) in h.iter() {
            let name: &[u8] = name.as_ref();
            if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == name) {
                found[i] = values.first().map(|v| v.as_str());
            }
        }
        let get = |name: &str| -> Result<String, BusError> {
            NAMES
                .iter()
                .position(|n| *n == name)
                .and_then(|i| found[i])
                .map(str::to_owned)
                .ok_or_else(|| {
                    BusError::new(
                        BusErrorKind::Corrupt,
                        format!("event message lacks header {name}"),
                    )
                })
        };
        let list = |s: String| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        let occurred_at = OffsetDateTime::parse(&get(OCCURRED_AT)?, &Rfc3339).map_err(|e| {
            BusError::with_source(BusErrorKind::Corrupt, "bad occurred-at header", e)
        })?;
        let aggregate_version = get(AGGREGATE_VERSION)?.parse().map_err(|e| {
            BusError::with_source(BusErrorKind::Corrupt, "bad aggregate-version header", e)
        })?;
        Ok(Self {
            event_id: get(EVENT_ID)?,
            event_types: list(get(EVENT_TYPE)?),
            schema_versions: list(get(SCHEMA_VERSION)?),
            occurred_at,
            causation_id: get(CAUSATION_ID)?,
            correlation_id: get(CORRELATION_ID)?,
            aggregate_type: get(AGGREGATE_TYPE)?,
            aggregate_id: get(AGGREGATE_ID)?,
            aggregate_version,
            traceparent: get(TRACEPARENT).unwrap_or_default(),
        })
    }
}

/// Whether a message's `Mnemo-Event-Type` header names one of `kinds`, read
/// without decoding the payload; `None` when the message has no such
/// header (each caller decides what that means). Consumers skip what they
/// do not handle this way: most messages on a document's subject are other
/// services' results, and vectors are most of the bytes.
pub fn names_event_kind<K: EventKind>(headers: Option<&HeaderMap>, kinds: &[K]) -> Option<bool> {
    let types = headers?.get(EVENT_TYPE)?;
    Some(
        types
            .as_str()
            .split(',')
            .any(|t| kinds.iter().any(|k| k.name() == t)),
    )
}

/// Whether a message's `Mnemo-Event-Type` header names one of `types`
/// (event types outside the domain's kinds, e.g. `LearnerErased`).
pub fn names_event_types(headers: Option<&HeaderMap>, types: &[&str]) -> bool {
    headers
        .and_then(|h| h.get(EVENT_TYPE))
        .is_some_and(|v| v.as_str().split(',').any(|t| types.contains(&t)))
}

/// `00-<32 hex>-<16 hex>-<2 hex>`, not all-zero ids.
pub fn valid_traceparent(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

/// A fresh sampled W3C trace context.
pub fn new_traceparent() -> String {
    let trace = Uuid::new_v4().simple().to_string();
    let span = &Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_are_matched_against_every_type_in_the_header() {
        use mnemo_domain::DocumentEventKind as K;
        let mut h = HeaderMap::new();
        h.insert(EVENT_TYPE, "DocumentChunked,DocumentIndexed");
        assert_eq!(
            names_event_kind(Some(&h), &[K::DocumentIndexed]),
            Some(true)
        );
        assert_eq!(
            names_event_kind(Some(&h), &[K::TextExtracted, K::DocumentChunked]),
            Some(true)
        );
        // A type that merely starts like one of them is another type.
        h.insert(EVENT_TYPE, "DocumentIndexedLater");
        assert_eq!(
            names_event_kind(Some(&h), &[K::DocumentIndexed]),
            Some(false)
        );
        assert_eq!(
            names_event_kind(Some(&HeaderMap::new()), &[K::DocumentIndexed]),
            None
        );
        assert_eq!(names_event_kind(None, &[K::DocumentIndexed]), None);
    }

    #[test]
    fn headers_round_trip() {
        let mut md = HashMap::new();
        md.insert(meta::COMMAND_ID.to_owned(), "cmd-1".to_owned());
        md.insert(meta::CORRELATION_ID.to_owned(), "req-9".to_owned());
        let env = Envelope::for_commit(
            "document",
            "abc.id",
            3,
            vec!["A".into(), "B".into()],
            vec!["1".into(), "2".into()],
            &md,
        );
        assert_eq!(env.event_id, "cmd-1");
        assert_eq!(env.causation_id, "cmd-1");
        assert_eq!(env.correlation_id, "req-9");
        assert!(valid_traceparent(&env.traceparent));
        let back = Envelope::from_headers(&env.to_headers()).unwrap();
        // RFC 3339 keeps nanoseconds, so the round trip is exact.
        assert_eq!(back, env);
    }

    #[test]
    fn a_message_without_headers_is_corrupt() {
        let err = Envelope::from_headers(&HeaderMap::new()).unwrap_err();
        assert_eq!(err.kind(), BusErrorKind::Corrupt);
    }

    #[test]
    fn invalid_traceparents_are_replaced() {
        assert!(!valid_traceparent("00-0000-00-01"));
        let mut md = HashMap::new();
        md.insert(meta::TRACEPARENT.to_owned(), "garbage".to_owned());
        let env = Envelope::for_commit("d", "a.b", 1, vec![], vec![], &md);
        assert!(valid_traceparent(&env.traceparent));
    }
}
