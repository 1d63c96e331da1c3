//! Reading and clearing the dead-letter stream (`<NS>_DLQ`), for
//! `mnemo dlq list|retry`.
//!
//! A dead letter is a copy of an event a service gave up on (see
//! [`crate::consumer`]): the original headers (aggregate, event id…) plus
//! why, which service, the original stream sequence and how often it was
//! delivered. Retrying is the caller's business (for documents: a new
//! processing run through the aggregate); this module lists dead letters and
//! removes one once it has been dealt with. The event log itself is never
//! touched: the dead letter is only a pointer into it.

use async_nats::jetstream::stream::DirectGetErrorKind;

use crate::envelope::{AGGREGATE_ID, AGGREGATE_TYPE, EVENT_TYPE};
use crate::error::{BusError, BusErrorKind};
use crate::{Bus, Namespace};

/// Header names on dead-letter messages.
pub mod headers {
    pub const REASON: &str = "Mnemo-Dlq-Reason";
    pub const SERVICE: &str = "Mnemo-Dlq-Service";
    pub const SUBJECT: &str = "Mnemo-Dlq-Subject";
    pub const SEQUENCE: &str = "Mnemo-Dlq-Stream-Sequence";
    pub const DELIVERIES: &str = "Mnemo-Dlq-Deliveries";
}
use headers as dlq_headers;

/// The event a dead letter copies.
pub struct Origin<'a> {
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub deliveries: i64,
    pub headers: Option<&'a async_nats::HeaderMap>,
    pub payload: &'a bytes::Bytes,
}

/// Copies an event a service gave up on to `<ns>.dlq.<service>`, with why.
/// One dead letter per (service, event), however often this runs. Failing
/// to dead-letter is logged, never raised: the caller is already giving up.
pub async fn publish(
    js: &async_nats::jetstream::Context,
    ns: &Namespace,
    service: &str,
    origin: &Origin<'_>,
    reason: &str,
) {
    let mut headers = letter_headers(origin.headers);
    headers.insert(dlq_headers::REASON, reason);
    headers.insert(dlq_headers::SERVICE, service);
    headers.insert(dlq_headers::SUBJECT, origin.subject);
    headers.insert(
        dlq_headers::SEQUENCE,
        origin.stream_sequence.to_string().as_str(),
    );
    headers.insert(
        dlq_headers::DELIVERIES,
        origin.deliveries.to_string().as_str(),
    );
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("dlq-{service}-{}", origin.stream_sequence).as_str(),
    );
    let sent = match js
        .publish_with_headers(ns.dlq_subject(service), headers, origin.payload.clone())
        .await
    {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        tracing::error!(error = %e, seq = origin.stream_sequence, "could not dead-letter the message");
    }
}

/// The original event's headers, as a dead letter carries them: all but
/// the JetStream publish expectations it was appended with
/// (`Nats-Expected-Last-Subject-Sequence` above all, which the server
/// stores with the message). Copied, they would be checked again against
/// the dead-letter subject, and refuse every letter but the first.
fn letter_headers(original: Option<&async_nats::HeaderMap>) -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    for (name, values) in original.into_iter().flat_map(|h| h.iter()) {
        let raw: &[u8] = name.as_ref();
        if raw.len() >= EXPECTED.len() && raw[..EXPECTED.len()].eq_ignore_ascii_case(EXPECTED) {
            continue;
        }
        for v in values {
            headers.append(name.clone(), v.clone());
        }
    }
    headers
}

/// The prefix of JetStream's publish expectation headers.
const EXPECTED: &[u8] = b"Nats-Expected-";

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (what `retry` takes).
    pub sequence: u64,
    pub service: String,
    pub reason: String,
    /// Subject and stream sequence of the event in the event log.
    pub event_subject: String,
    pub event_sequence: u64,
    pub deliveries: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
}

/// Every dead letter of the namespace, oldest first.
pub async fn list(bus: &Bus) -> Result<Vec<DeadLetter>, BusError> {
    let stream = dlq_stream(bus).await?;
    let subject = format!("{}.dlq.>", bus.namespace.as_str());
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        match stream
            .direct_get_next_for_subject(subject.as_str(), Some(next))
            .await
        {
            Ok(msg) => {
                next = msg.sequence + 1;
                let h = |name: &str| {
                    msg.headers
                        .get(name)
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                out.push(DeadLetter {
                    sequence: msg.sequence,
                    service: h(dlq_headers::SERVICE),
                    reason: h(dlq_headers::REASON),
                    event_subject: h(dlq_headers::SUBJECT),
                    event_sequence: h(dlq_headers::SEQUENCE).parse().unwrap_or(0),
                    deliveries: h(dlq_headers::DELIVERIES).parse().unwrap_or(0),
                    aggregate_type: h(AGGREGATE_TYPE),
                    aggregate_id: h(AGGREGATE_ID),
                    event_type: h(EVENT_TYPE),
                });
            }
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(BusError::unavailable("cannot read the dead letters", e)),
        }
    }
}

/// Removes a dead letter once it has been dealt with.
pub async fn remove(bus: &Bus, sequence: u64) -> Result<(), BusError> {
    let stream = dlq_stream(bus).await?;
    stream.delete_message(sequence).await.map_err(|e| {
        BusError::with_source(
            BusErrorKind::NotFound,
            format!("no dead letter {sequence}"),
            e,
        )
    })?;
    Ok(())
}

async fn dlq_stream(bus: &Bus) -> Result<async_nats::jetstream::stream::Stream, BusError> {
    bus.jetstream
        .get_stream(bus.namespace.dlq_stream())
        .await
        .map_err(|e| BusError::unavailable("cannot open the dead-letter stream", e))
}

#[cfg(test)]
mod tests {
    use super::letter_headers;

    #[test]
    fn a_letter_keeps_the_event_headers_but_not_its_publish_expectations() {
        let mut original = async_nats::HeaderMap::new();
        original.insert("Nats-Expected-Last-Subject-Sequence", "0");
        original.insert("nats-expected-stream", "EVENTS");
        original.insert("Mnemo-Event-Id", "e-1");
        original.append("Mnemo-Event-Type", "CardCreated");
        original.append("Mnemo-Event-Type", "CardReviewed");
        let kept = letter_headers(Some(&original));
        assert!(kept.get("Nats-Expected-Last-Subject-Sequence").is_none());
        assert!(kept.get("nats-expected-stream").is_none());
        assert_eq!(kept.get("Mnemo-Event-Id").map(|v| v.as_str()), Some("e-1"));
        let types: Vec<&str> = kept
            .get_all("Mnemo-Event-Type")
            .map(|v| v.as_str())
            .collect();
        assert_eq!(types, vec!["CardCreated", "CardReviewed"]);
        assert_eq!(letter_headers(None).iter().count(), 0);
    }
}
