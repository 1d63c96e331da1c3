//! Reading older event schemas as the current ones (upcasting), with
//! cqrs-es's `EventUpcaster`.
//!
//! | event | version | change |
//! |---|---|---|
//! | `DocumentFailed` | 1 → 2 | adds `code` ([`FailureCode`]), derived from `reason` |
//!
//! The event log is never rewritten: a v1 message stays v1 on the stream and
//! becomes v2 each time it is read (`mnemo_bus::event_store::decode_message`
//! runs these on every message whose header names an older version).
//! Upcasters work on the serialized form (`{"type": …, "data": {…}}`) and
//! must be pure: the same old event always reads as the same new one.

use std::sync::OnceLock;

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

use super::failure::FailureCode;

/// Every upcaster for document events, oldest change first.
pub fn upcasters() -> &'static [Box<dyn EventUpcaster>] {
    static UPCASTERS: OnceLock<Vec<Box<dyn EventUpcaster>>> = OnceLock::new();
    UPCASTERS.get_or_init(|| {
        vec![Box::new(SemanticVersionEventUpcaster::new(
            "DocumentFailed",
            "2",
            Box::new(document_failed_v1_to_v2),
        ))]
    })
}

/// `DocumentFailed` v1 had no `code`: classify its reason.
fn document_failed_v1_to_v2(mut event: Value) -> Value {
    if let Some(data) = event.get_mut("data").and_then(Value::as_object_mut) {
        if !data.contains_key("code") {
            let code =
                FailureCode::classify(data.get("reason").and_then(Value::as_str).unwrap_or(""));
            data.insert("code".into(), Value::String(code.as_str().into()));
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use cqrs_es::persist::SerializedEvent;
    use serde_json::json;

    use super::*;
    use crate::document::{DocumentEvent, Stage};

    fn serialized(event_type: &str, version: &str, payload: Value) -> SerializedEvent {
        SerializedEvent {
            aggregate_id: "a".into(),
            sequence: 1,
            aggregate_type: "document".into(),
            event_type: event_type.into(),
            event_version: version.into(),
            payload,
            metadata: json!({}),
        }
    }

    #[test]
    fn a_v1_failure_reads_as_v2_with_its_code() {
        let v1 = json!({"type": "DocumentFailed", "data": {
            "run": 1, "stage": "extracting", "reason": "no text layer (OCR not supported)", "retryable": false
        }});
        let upcaster = upcasters()
            .iter()
            .find(|u| u.can_upcast("DocumentFailed", "1"))
            .expect("an upcaster for v1");
        let upcast = upcaster.upcast(serialized("DocumentFailed", "1", v1));
        let event: DocumentEvent = serde_json::from_value(upcast.payload).unwrap();
        assert_eq!(
            event,
            DocumentEvent::DocumentFailed {
                run: 1,
                stage: Stage::Extracting,
                reason: "no text layer (OCR not supported)".into(),
                retryable: false,
                code: FailureCode::NoTextLayer,
            }
        );
    }

    #[test]
    fn current_versions_and_other_types_are_left_alone() {
        assert!(!upcasters()
            .iter()
            .any(|u| u.can_upcast("DocumentFailed", "2")));
        assert!(!upcasters()
            .iter()
            .any(|u| u.can_upcast("DocumentIndexed", "1")));
    }
}
