//! A namespace whose log predates keys (its own test binary: a process
//! serves one owner-token scheme, and this one is the old base32).
//!
//! Its first event is plaintext; the operator's first start after the
//! upgrade makes the keyring, which keeps base32 tokens (owners keep their
//! subjects) and seals every event from then on. An unsealed event after
//! that is refused; erasing an owner says how many of their events stay
//! readable as raw bytes, and mnemo reads all of them as tombstones.

mod common;

use std::collections::HashMap;

use mnemo_bus::event_store::{decode_message, Decoded};
use mnemo_bus::{Bus, BusErrorKind, CommandExecutor, JetStreamEventStore, Role};
use mnemo_domain::content::ContentType;
use mnemo_domain::document::{aggregate_id, UploadedDocument};
use mnemo_domain::owner::TokenScheme;
use mnemo_domain::{Document, DocumentCommand, DocumentEvent, DocumentId, OwnerId};

/// A plaintext `DocumentUploaded`, as mnemo wrote it before keys.
fn plaintext_upload(
    agg: &str,
    id: DocumentId,
    owner: &OwnerId,
) -> (async_nats::HeaderMap, Vec<u8>) {
    let event = DocumentEvent::DocumentUploaded(UploadedDocument {
        document_id: id,
        owner: owner.clone(),
        filename: "carols-diary.pdf".into(),
        content_type: ContentType::Pdf,
        size_bytes: 1234,
        sha256: mnemo_domain::Sha256Hex::from_digest(&[9; 32]),
        topic: None,
        batch_id: "batch-1".into(),
        idempotency_key: None,
        external_id: None,
    });
    let envelope = mnemo_bus::Envelope::for_commit(
        "document",
        agg,
        1,
        vec!["DocumentUploaded".into()],
        vec!["1".into()],
        &HashMap::new(),
    );
    (
        envelope.to_headers(),
        serde_json::to_vec(&[event]).expect("json"),
    )
}

#[tokio::test]
async fn history_from_before_keys_is_told_and_read_as_tombstones() {
    let ns = mnemo_bus::Namespace::new(format!(
        "t_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ))
    .unwrap();
    let carol = OwnerId::new("carol").unwrap();
    let legacy_token = carol.token_under(&TokenScheme::Base32);
    let id = DocumentId::new();
    let agg = format!("{legacy_token}.{id}");

    // The log as an older mnemo left it: one plaintext event, no keyring.
    let client = mnemo_bus::connect(&common::nats(), Role::Operator, "legacy writer")
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    mnemo_bus::setup::ensure_event_stream(&js, &ns, 1)
        .await
        .unwrap();
    let subject = ns.aggregate_subject("doc", &agg);
    let (headers, plain) = plaintext_upload(&agg, id, &carol);
    let first = js
        .publish_with_headers(subject.clone(), headers, plain.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;

    // The upgrade: the operator's start makes the keyring, base32 tokens.
    let bus = Bus::start(&common::nats(), Role::Operator, ns.clone(), 1)
        .await
        .unwrap();
    assert_eq!(carol.token(), legacy_token, "owners keep their subjects");
    assert_eq!(aggregate_id(&carol, &id), agg);
    assert_eq!(bus.keys.sealed_from(), first + 1);

    // A command after the upgrade: its event is sealed (carol's key made).
    let exec: CommandExecutor<Document> = CommandExecutor::new(
        JetStreamEventStore::new(&bus, "doc", 0),
        (),
        mnemo_bus::RetryPolicy::default(),
    );
    let cancelled = exec
        .execute(
            &agg,
            DocumentCommand::Cancel {
                reason: "changed my mind".into(),
            },
            &HashMap::new(),
        )
        .await
        .unwrap();
    let sealed = cancelled.last_sequence;
    let decode = |seq: u64| {
        let bus = bus.clone();
        async move {
            let m = bus.events.get_raw_message(seq).await.unwrap();
            decode_message::<DocumentEvent>(
                &bus.keys,
                &m.subject,
                seq,
                Some(&m.headers),
                &m.payload,
            )
            .await
        }
    };
    for seq in [first, sealed] {
        assert!(
            matches!(decode(seq).await, Ok(Decoded::Events(_))),
            "{seq} reads"
        );
    }

    // Anything unsealed after the upgrade is not mnemo's: refused.
    let (headers, plain) = plaintext_upload(&agg, id, &carol);
    let forged = js
        .publish_with_headers(subject.clone(), headers, plain.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let refused = decode(forged).await.unwrap_err();
    assert_eq!(refused.kind(), BusErrorKind::Corrupt, "{refused}");

    // Erasing carol says what stays readable; mnemo reads none of it.
    let report = mnemo_bus::erase::erase_learner(&bus, &legacy_token, "operator")
        .await
        .unwrap();
    assert!(report.had_key);
    assert_eq!(
        report.plaintext_events, 2,
        "the old one and the forged one: {report:?}"
    );
    assert!(report.shredded.is_some_and(|s| s.key_messages == 1));
    for seq in [first, sealed, forged] {
        assert!(
            matches!(decode(seq).await, Ok(Decoded::Erased(_))),
            "{seq} is a tombstone"
        );
    }
    // The plaintext bytes are still on the stream: the log is immutable.
    let raw = bus.events.get_raw_message(first).await.unwrap();
    assert!(raw.payload.windows(12).any(|w| w == b"carols-diary"));

    let _ = mnemo_bus::setup::delete_namespace(&js, &ns).await;
}
