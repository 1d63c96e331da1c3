//! One learning message (subject `<ns>.ev.learn.<owner>.<kind>.<id>`)
//! decoded into the learner fold's events, keeping each event's JSON for
//! audit replay. Kinds the fold does not know (e.g. questions) keep their
//! JSON only.

use mnemo_bus::envelope::Envelope;
use mnemo_bus::event_store::{decode_message, open_message, Decoded, Opened};
use mnemo_bus::{BusError, BusErrorKind, Keyring};
use mnemo_domain::learn::{CardEvent, LearnerEvent, SessionEvent, TopicEvent};
use uuid::Uuid;

/// One event of a message.
#[derive(Debug, Clone)]
pub struct DecodedEvent {
    pub event_type: String,
    /// `{"type", "data"}`, upcast to the current schema.
    pub json: serde_json::Value,
    /// The fold's reading (None for kinds it does not know).
    pub event: Option<LearnerEvent>,
}

/// A decoded learning message.
#[derive(Debug, Clone)]
pub struct LearningMessage {
    pub sequence: u64,
    pub owner_token: String,
    /// `card`, `topic`, `session`, ...
    pub kind: String,
    pub id: Uuid,
    pub envelope: Envelope,
    pub events: Vec<DecodedEvent>,
    /// A tombstone (its owner was erased: no events): `Some(true)` for the
    /// `LearnerErased` message, on which the owner's rows are deleted.
    pub erased: Option<bool>,
}

fn corrupt(sequence: u64, what: &str) -> BusError {
    BusError::new(
        BusErrorKind::Corrupt,
        format!("learning message {sequence}: {what}"),
    )
}

/// Decodes a message of the learning subjects, opened with its owner's
/// key; an erased owner's is a tombstone.
pub async fn decode(
    keys: &Keyring,
    subject: &str,
    sequence: u64,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<LearningMessage, BusError> {
    let ns = keys.namespace();
    if let Opened::Erased(t) = open_message(keys, subject, sequence, headers, payload).await? {
        return Ok(LearningMessage {
            sequence,
            owner_token: t.owner_token,
            kind: "erased".to_owned(),
            id: Uuid::nil(),
            envelope: t.envelope,
            events: Vec::new(),
            erased: Some(t.learner_erased),
        });
    }
    let prefix = format!("{}.", ns.events_of("learn"));
    let tail = subject
        .strip_prefix(prefix.as_str())
        .ok_or_else(|| corrupt(sequence, "not a learning subject"))?;
    let (token, kind, id) = mnemo_domain::learn::parse_aggregate_id(tail)
        .ok_or_else(|| corrupt(sequence, "subject is not <owner>.<kind>.<uuid>"))?;
    let typed = |events: Vec<LearnerEvent>, json: Vec<serde_json::Value>, envelope: Envelope| {
        let events = envelope
            .event_types
            .iter()
            .cloned()
            .zip(json)
            .zip(events.into_iter().map(Some).chain(std::iter::repeat(None)))
            .map(|((event_type, json), event)| DecodedEvent {
                event_type,
                json,
                event,
            })
            .collect();
        (envelope, events)
    };
    fn to_json<T: serde::Serialize>(events: &[T]) -> Vec<serde_json::Value> {
        events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or(serde_json::Value::Null))
            .collect()
    }
    let (envelope, events) = match kind {
        "card" => {
            let s = events::<CardEvent>(keys, subject, sequence, headers, payload).await?;
            let json = to_json(&s.events);
            let ev = s
                .events
                .into_iter()
                .map(|event| LearnerEvent::Card { card_id: id, event })
                .collect();
            typed(ev, json, s.envelope)
        }
        "topic" => {
            let s = events::<TopicEvent>(keys, subject, sequence, headers, payload).await?;
            let json = to_json(&s.events);
            let ev = s
                .events
                .into_iter()
                .map(|event| LearnerEvent::Topic {
                    topic_id: id,
                    event,
                })
                .collect();
            typed(ev, json, s.envelope)
        }
        "session" => {
            let s = events::<SessionEvent>(keys, subject, sequence, headers, payload).await?;
            let json = to_json(&s.events);
            let ev = s
                .events
                .into_iter()
                .map(|event| LearnerEvent::Session {
                    session_id: id,
                    event,
                })
                .collect();
            typed(ev, json, s.envelope)
        }
        _ => {
            let Opened::Plain { envelope, payload } =
                open_message(keys, subject, sequence, headers, payload).await?
            else {
                return Err(corrupt(sequence, "erased while read"));
            };
            let json: Vec<serde_json::Value> = serde_json::from_slice(&payload)
                .map_err(|_| corrupt(sequence, "payload is not a JSON array"))?;
            typed(Vec::new(), json, envelope)
        }
    };
    Ok(LearningMessage {
        sequence,
        owner_token: token.to_owned(),
        kind: kind.to_owned(),
        id,
        envelope,
        events,
        erased: None,
    })
}

/// The events of a message of a known kind (its owner was not erased a
/// moment ago, or this is the tombstone's error).
async fn events<E: cqrs_es::DomainEvent + mnemo_bus::upcast::Upcast>(
    keys: &Keyring,
    subject: &str,
    sequence: u64,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<mnemo_bus::StoredEvents<E>, BusError> {
    match decode_message::<E>(keys, subject, sequence, headers, payload).await? {
        Decoded::Events(s) => Ok(s),
        Decoded::Erased(t) => Err(mnemo_bus::keys::erased(&t.owner_token)),
    }
}

impl LearningMessage {
    /// The fold's events with their sequence and recording time.
    pub fn recorded(&self) -> impl Iterator<Item = mnemo_domain::learn::Recorded> + '_ {
        self.events
            .iter()
            .filter_map(|e| e.event.clone())
            .map(|event| mnemo_domain::learn::Recorded {
                sequence: self.sequence,
                occurred_at: self.envelope.occurred_at,
                event,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use mnemo_domain::learn::CardEvent;

    use super::*;

    fn message(kind: &str, types: &[&str]) -> (String, async_nats::HeaderMap) {
        let id = format!("ebqxe.{kind}.0190a0a0-0000-7000-8000-000000000001");
        let env = Envelope::for_commit(
            kind,
            &id,
            1,
            types.iter().map(|t| t.to_string()).collect(),
            types.iter().map(|_| "1".to_owned()).collect(),
            &HashMap::new(),
        );
        (format!("t_x.ev.learn.{id}"), env.to_headers())
    }

    #[tokio::test]
    async fn learning_messages_decode_by_the_kind_in_their_subject() {
        // Plaintext messages (as before keys): an offline keyring reads them.
        let ns = Keyring::offline(mnemo_bus::Namespace::new("t_x").unwrap());
        let payload = r#"[{"type":"CardSuspended"},{"type":"CardResumed"}]"#;
        let (subject, headers) = message("card", &["CardSuspended", "CardResumed"]);
        let m = decode(&ns, &subject, 7, Some(&headers), payload.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            (m.kind.as_str(), m.owner_token.as_str(), m.sequence),
            ("card", "ebqxe", 7)
        );
        assert_eq!(m.events.len(), 2);
        assert_eq!(m.events[1].json, serde_json::json!({"type": "CardResumed"}));
        assert!(matches!(
            m.events[0].event,
            Some(LearnerEvent::Card {
                event: CardEvent::CardSuspended,
                ..
            })
        ));
        assert_eq!(m.recorded().count(), 2);

        // A kind the fold does not know keeps its JSON, with no fold event.
        let payload = r#"[{"type":"QuestionAsked","data":{"q":"why?"}}]"#;
        let (subject, headers) = message("question", &["QuestionAsked"]);
        let m = decode(&ns, &subject, 8, Some(&headers), payload.as_bytes())
            .await
            .unwrap();
        assert_eq!(m.events.len(), 1);
        assert!(m.events[0].event.is_none());
        assert_eq!(m.recorded().count(), 0);

        assert!(decode(
            &ns,
            "t_x.ev.learn.bad",
            9,
            Some(&headers),
            payload.as_bytes()
        )
        .await
        .is_err());
    }
}
