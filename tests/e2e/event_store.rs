//! The JetStream event store behind cqrs-es: concurrency, dedup, reload.

use std::collections::HashMap;

use cqrs_es::{Aggregate, EventStore};
use futures::future::join_all;
use mnemo_bus::{BusErrorKind, CommandExecutor, ExecuteError, JetStreamEventStore, RetryPolicy};
use mnemo_domain::content::ContentType;
use mnemo_domain::document::{aggregate_id, ChunkRecord, ChunkVector, UploadedDocument};
use mnemo_domain::{
    Document, DocumentCommand, DocumentError, DocumentEvent, DocumentId, OwnerId, Sha256Hex, Stage,
};
use mnemo_tests::{metadata_with_id, EnvOptions, TestEnv};

fn no_servers() -> EnvOptions {
    EnvOptions {
        run_api: false,
        run_projector: false,
        ..Default::default()
    }
}

fn upload_cmd(owner: &OwnerId, id: DocumentId) -> DocumentCommand {
    DocumentCommand::Upload(UploadedDocument {
        document_id: id,
        owner: owner.clone(),
        filename: "paper.pdf".into(),
        content_type: ContentType::Pdf,
        size_bytes: 1234,
        sha256: Sha256Hex::from_digest(&[9; 32]),
        topic: Some("biology".into()),
        batch_id: "batch-1".into(),
        idempotency_key: None,
        external_id: None,
    })
}

fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 100,
        ..Default::default()
    }
}

/// A bus-only env with one uploaded document, and a caching executor.
async fn uploaded_document() -> (TestEnv, String, CommandExecutor<Document>) {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("alice").unwrap();
    let id = DocumentId::new();
    let agg = aggregate_id(&owner, &id);
    let exec = env.executor(10_000, patient());
    exec.execute(&agg, upload_cmd(&owner, id), &HashMap::new())
        .await
        .unwrap();
    (env, agg, exec)
}

#[tokio::test]
async fn twenty_concurrent_commands_apply_only_the_valid_ones_in_a_gapless_sequence() {
    let (_env, agg, exec) = uploaded_document().await;

    // 20 writers race: pages_done = 1..=20. A command is valid only if it
    // moves progress forward on the state it finally sees.
    let results = join_all((1..=20u32).map(|p| {
        let exec = &exec;
        let agg = &agg;
        async move {
            exec.execute(
                agg,
                DocumentCommand::RecordExtractionProgress {
                    run: 1,
                    pages_done: p,
                    pages_total: 20,
                },
                &HashMap::new(),
            )
            .await
        }
    }))
    .await;
    let appended: usize = results
        .iter()
        .map(|r| {
            r.as_ref()
                .expect("no command may fail or give up")
                .events
                .len()
        })
        .sum();
    assert!(appended >= 1);

    // What is stored: every message one event, versions 1..=n without gaps,
    // and pages strictly increasing — no invalid command slipped through.
    let messages = exec.store().read_messages(&agg).await.unwrap();
    assert_eq!(messages.len(), 1 + appended);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.envelope.aggregate_version,
            i as u64 + 1,
            "gap in aggregate versions"
        );
        assert_eq!(m.events.len(), 1);
    }
    assert!(messages
        .windows(2)
        .all(|w| w[0].stream_sequence < w[1].stream_sequence));
    let pages: Vec<u32> = messages
        .iter()
        .filter_map(|m| match &m.events[0] {
            DocumentEvent::ExtractionProgressed { pages_done, .. } => Some(*pages_done),
            _ => None,
        })
        .collect();
    assert!(pages.windows(2).all(|w| w[0] < w[1]), "{pages:?}");
    assert_eq!(pages.last(), Some(&20), "the highest progress must win");
}

#[tokio::test]
async fn concurrent_cancels_let_exactly_one_through() {
    let (env, agg, exec) = uploaded_document().await;
    let md = HashMap::new();
    let results = join_all(
        (0..20).map(|_| exec.execute(&agg, DocumentCommand::Cancel { reason: "r".into() }, &md)),
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(ExecuteError::Refused(DocumentError::InvalidTransition {
                    stage: Stage::Cancelled,
                    ..
                }))
            )
        })
        .count();
    assert_eq!((ok, refused), (1, 19));
    assert_eq!(env.event_count().await, 2);
}

#[tokio::test]
async fn conflicts_give_up_after_the_bounded_attempts() {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("alice").unwrap();
    let id = DocumentId::new();
    let agg = aggregate_id(&owner, &id);
    let writer = env.executor(10_000, patient());
    writer
        .execute(&agg, upload_cmd(&owner, id), &HashMap::new())
        .await
        .unwrap();
    // A store whose cache is stale: it knows the aggregate at version 1.
    let stale = env.executor(
        10_000,
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        },
    );
    let mut ctx = stale.store().load(&agg).await.unwrap();
    writer
        .execute(
            &agg,
            DocumentCommand::RecordExtractionProgress {
                run: 1,
                pages_done: 1,
                pages_total: 9,
            },
            &HashMap::new(),
        )
        .await
        .unwrap();
    // Appending on the stale context is refused by JetStream.
    let event = DocumentEvent::ExtractionProgressed {
        run: 1,
        pages_done: 2,
        pages_total: 9,
    };
    ctx.aggregate.apply(event.clone());
    let err = stale
        .store()
        .append(&[event], &ctx, &HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BusErrorKind::Conflict);
    // The conflict evicted the stale entry: the next command decides on fresh state.
    let done = stale
        .execute(
            &agg,
            DocumentCommand::RecordExtractionProgress {
                run: 1,
                pages_done: 2,
                pages_total: 9,
            },
            &HashMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.aggregate.pages_done, 2);
    assert_eq!(done.last_sequence, 3);
}

#[tokio::test]
async fn a_retried_publish_with_the_same_event_id_is_deduplicated() {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("bob").unwrap();
    let id = DocumentId::new();
    let agg = aggregate_id(&owner, &id);
    let store = JetStreamEventStore::<Document>::new(&env.bus, "doc", 0);
    let ctx = store.load(&agg).await.unwrap();
    let event = DocumentEvent::DocumentUploaded(UploadedDocument {
        document_id: id,
        owner: owner.clone(),
        filename: "a.md".into(),
        content_type: ContentType::Markdown,
        size_bytes: 3,
        sha256: Sha256Hex::from_digest(&[1; 32]),
        topic: None,
        batch_id: "b".into(),
        idempotency_key: None,
        external_id: None,
    });
    let md = metadata_with_id("0190e0c8-0000-7000-8000-00000000abcd");
    let (_, first) = store
        .append(std::slice::from_ref(&event), &ctx, &md)
        .await
        .unwrap();
    // The same publish again (as after a lost ack), on the same expected sequence.
    let (_, second) = store
        .append(std::slice::from_ref(&event), &ctx, &md)
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(env.event_count().await, 1);

    // A raw publish with the same Nats-Msg-Id is dropped by JetStream too.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "0190e0c8-0000-7000-8000-00000000abcd");
    let ack = env
        .bus
        .jetstream
        .publish_with_headers(store.subject(&agg).unwrap(), headers, "junk".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(env.event_count().await, 1);
}

#[tokio::test]
async fn a_second_command_reusing_a_command_id_is_rejected_not_silently_dropped() {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("dora").unwrap();
    let exec = env.executor(10_000, patient());
    let md = metadata_with_id("0190e0c8-0000-7000-8000-00000000beef");
    let first = DocumentId::new();
    exec.execute(
        &aggregate_id(&owner, &first),
        upload_cmd(&owner, first),
        &md,
    )
    .await
    .unwrap();
    assert_eq!(env.event_count().await, 1);

    // Another document uploaded under the same command id would be lost.
    let second = DocumentId::new();
    let err = exec
        .execute(
            &aggregate_id(&owner, &second),
            upload_cmd(&owner, second),
            &md,
        )
        .await
        .unwrap_err();
    match err {
        ExecuteError::Bus(e) => {
            assert_eq!(e.kind(), BusErrorKind::Rejected);
            assert!(e.to_string().contains("already used"), "{e}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(env.event_count().await, 1);
}

#[tokio::test]
async fn a_reloaded_aggregate_equals_the_fold_of_its_events() {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("carol").unwrap();
    let id = DocumentId::new();
    let agg = aggregate_id(&owner, &id);
    let exec = env.executor(10_000, patient());
    let chunk = |i: u32| ChunkRecord {
        chunk_id: format!("c{i}"),
        ordinal: i,
        text: format!("chunk {i}"),
        page_start: 1,
        page_end: 2,
        tokens: 5,
    };
    let commands = vec![
        upload_cmd(&owner, id),
        DocumentCommand::RecordExtractionProgress {
            run: 1,
            pages_done: 1,
            pages_total: 2,
        },
        DocumentCommand::RecordTextExtracted {
            run: 1,
            text_sha256: Sha256Hex::from_digest(&[3; 32]),
            pages: 2,
            chars: 99,
            extractor: "pdf-rs".into(),
            pages_failed: 0,
        },
        DocumentCommand::RecordChunks {
            run: 1,
            batch: 0,
            last: false,
            chunks: vec![chunk(0), chunk(1)],
        },
        DocumentCommand::RecordChunks {
            run: 1,
            batch: 1,
            last: true,
            chunks: vec![chunk(2)],
        },
        DocumentCommand::RecordEmbeddings {
            run: 1,
            model: "all-MiniLM-L6-v2".into(),
            dims: 2,
            vectors: (0..3)
                .map(|i| ChunkVector {
                    chunk_id: format!("c{i}"),
                    vector: vec![0.1, 0.2],
                })
                .collect(),
        },
        DocumentCommand::MarkIndexed { run: 1 },
    ];
    let mut live = None;
    for c in commands {
        live = Some(
            exec.execute(&agg, c, &HashMap::new())
                .await
                .unwrap()
                .aggregate,
        );
    }
    let live = live.unwrap();
    assert_eq!(live.stage, Some(Stage::Indexed));

    // A cold store (another process) loads the same state...
    let cold = JetStreamEventStore::<Document>::new(&env.bus, "doc", 0);
    let reloaded = cold.load(&agg).await.unwrap();
    assert_eq!(reloaded.aggregate, live);
    assert_eq!(reloaded.version, 7);
    // ...which is the plain fold of the events cqrs-es loads.
    let events = EventStore::<Document>::load_events(&cold, &agg)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    let mut folded = Document::default();
    for e in events {
        folded.apply(e.payload);
    }
    assert_eq!(folded, live);
}

#[tokio::test]
async fn the_stream_is_immutable_and_setup_is_idempotent() {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("dave").unwrap();
    let id = DocumentId::new();
    let exec = env.executor(0, patient());
    exec.execute(
        &aggregate_id(&owner, &id),
        upload_cmd(&owner, id),
        &HashMap::new(),
    )
    .await
    .unwrap();

    let mut stream = env.bus.events.clone();
    let info = stream.info().await.unwrap().clone();
    assert!(info.config.deny_delete && info.config.deny_purge && info.config.allow_direct);
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert!(info.config.duplicate_window.as_secs() > 0);
    assert!(
        stream.delete_message(1).await.is_err(),
        "message delete must be denied"
    );
    assert!(stream.purge().await.is_err(), "purge must be denied");

    // Declaring again changes nothing and keeps the events.
    mnemo_bus::ensure_event_stream(&env.bus.jetstream, &env.ns, 1)
        .await
        .unwrap();
    mnemo_bus::ensure_blob_bucket(&env.bus.jetstream, &env.ns, 1)
        .await
        .unwrap();
    assert_eq!(env.event_count().await, 1);
}

#[tokio::test]
async fn hostile_aggregate_ids_are_refused_before_reaching_nats() {
    let env = TestEnv::start_with(no_servers()).await;
    let store = JetStreamEventStore::<Document>::new(&env.bus, "doc", 0);
    for bad in ["a.>", "*", "a b", "", "a..b"] {
        assert_eq!(
            store.load(bad).await.err().map(|e| e.kind()),
            Some(BusErrorKind::Config),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn two_concurrent_creations_of_one_aggregate_make_one_document() {
    let env = TestEnv::start_with(no_servers()).await;
    let owner = OwnerId::new("erin").unwrap();
    let id = DocumentId::new();
    let agg = aggregate_id(&owner, &id);
    // Two stores (two API processes): neither has the aggregate cached.
    let (a, b) = (env.executor(100, patient()), env.executor(100, patient()));
    let md = HashMap::new();
    // Different bytes under one id (the same bytes would be the same
    // upload, which the loser's retry accepts as done).
    let other = match upload_cmd(&owner, id) {
        DocumentCommand::Upload(u) => DocumentCommand::Upload(UploadedDocument {
            sha256: Sha256Hex::from_digest(&[8; 32]),
            ..u
        }),
        c => c,
    };
    let (ra, rb) = tokio::join!(
        a.execute(&agg, upload_cmd(&owner, id), &md),
        b.execute(&agg, other, &md)
    );
    let oks = [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count();
    let exists = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(ExecuteError::Refused(DocumentError::AlreadyExists))))
        .count();
    // Expected-last-subject-sequence 0 means "no message yet" on 2.9 too.
    assert_eq!((oks, exists), (1, 1));
    assert_eq!(env.event_count().await, 1);
}

/// Upcasting: a `DocumentFailed` written by an older mnemo (schema v1, no
/// `code`) reads as v2 everywhere: aggregate loads, the projector, and the
/// event's code is derived from its reason. The stream keeps the v1 bytes.
#[tokio::test]
async fn v1_events_on_the_stream_read_as_v2() {
    let env = TestEnv::start_with(EnvOptions {
        run_api: false,
        ..Default::default()
    })
    .await;
    let owner = OwnerId::new("alice").unwrap();
    let id = DocumentId::new();
    let agg = aggregate_id(&owner, &id);
    let exec = env.executor(0, patient());
    let uploaded = exec
        .execute(&agg, upload_cmd(&owner, id), &HashMap::new())
        .await
        .unwrap();

    // What mnemo wrote before `code` existed, byte for byte.
    let v1 = br#"[{"type":"DocumentFailed","data":{"run":1,"stage":"extracting","reason":"damaged PDF: Couldn't find trailer dictionary","retryable":false}}]"#;
    let envelope = mnemo_bus::Envelope::for_commit(
        "document",
        &agg,
        2,
        vec!["DocumentFailed".into()],
        vec!["1".into()],
        &HashMap::new(),
    );
    let subject = env.ns.aggregate_subject("doc", &agg);
    // Sealed with alice's key, as every event is since keys (the schema
    // version lives inside the seal; a namespace from before keys reads
    // its plaintext ones: crates/mnemo/tests/keys_before_keys.rs).
    let key = env.owner_key("alice").await;
    let (headers, payload) =
        mnemo_bus::event_store::seal_message(&key, &envelope, &subject, v1).unwrap();
    let ack = env
        .bus
        .jetstream
        .publish_with_headers(subject.clone(), headers, payload)
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.sequence > uploaded.last_sequence);

    // The aggregate (cold load) sees a v2 event with its code.
    let store = JetStreamEventStore::<Document>::new(&env.bus, "doc", 0);
    let events = store.read_messages(&agg).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.envelope.schema_versions, vec!["1".to_string()]);
    assert_eq!(
        last.events,
        vec![DocumentEvent::DocumentFailed {
            run: 1,
            stage: Stage::Extracting,
            reason: "damaged PDF: Couldn't find trailer dictionary".into(),
            retryable: false,
            code: mnemo_domain::FailureCode::Damaged,
        }]
    );
    let loaded = store.load(&agg).await.unwrap();
    assert_eq!(loaded.aggregate.stage, Some(Stage::Failed));

    // The projector reads it too.
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    let at = mnemo_projector::runner::wait_for(
        &db,
        &env.ns,
        ack.sequence,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(at >= ack.sequence);
    let stage: String = db
        .query_one(
            "SELECT stage FROM documents WHERE document_id = $1",
            &[&id.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stage, "failed");

    // Reading never rewrites the log.
    let raw = env
        .bus
        .events
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    assert_eq!(raw.sequence, ack.sequence, "reading appended nothing");
}

/// What every pipeline handler relies on: a state read for an event in hand
/// is never older than that event. Another writer appends behind this
/// store's cached state (as the other services do, or as a lagging replica
/// would look): a plain load serves the stale cache, `load_at_least` the
/// event's own sequence reads again and includes it.
#[tokio::test]
async fn a_read_for_an_event_in_hand_is_never_older_than_the_event() {
    let (env, agg, exec) = uploaded_document().await;
    let other = env.executor(0, patient());
    let cancelled = other
        .execute(
            &agg,
            DocumentCommand::Cancel {
                reason: "stop".into(),
            },
            &HashMap::new(),
        )
        .await
        .unwrap();
    let (_, seen) = cancelled.appended.expect("appended");

    let cached = exec.store().load(&agg).await.unwrap();
    assert!(cached.from_cache);
    assert!(cached.last_sequence < seen, "the cache is behind");
    assert_eq!(cached.aggregate.stage, Some(Stage::Uploaded));

    let fresh = exec.store().load_at_least(&agg, seen).await.unwrap();
    assert!(fresh.last_sequence >= seen);
    assert_eq!(fresh.aggregate.stage, Some(Stage::Cancelled));
    let messages = exec
        .store()
        .read_messages_at_least(&agg, seen)
        .await
        .unwrap();
    assert_eq!(messages.last().map(|m| m.stream_sequence), Some(seen));
    // The leader's read (what a lagging replica falls back to) is the same.
    let from_leader = exec
        .store()
        .read_messages_from(&agg, mnemo_bus::event_store::Read::Leader)
        .await
        .unwrap();
    assert_eq!(
        from_leader
            .iter()
            .map(|m| m.stream_sequence)
            .collect::<Vec<_>>(),
        messages
            .iter()
            .map(|m| m.stream_sequence)
            .collect::<Vec<_>>()
    );

    // A sequence the aggregate has not reached (nothing there yet): never a
    // stale answer, an `Unavailable` to try again.
    let ahead = exec.store().load_at_least(&agg, seen + 1_000).await;
    assert_eq!(
        ahead.err().map(|e| e.kind()),
        Some(BusErrorKind::Unavailable)
    );
}

/// A cluster client is given several seed URLs (`--nats-url a,b,c`): it
/// connects through whichever answers.
#[tokio::test]
async fn several_seed_urls_connect_through_the_one_that_answers() {
    let env = TestEnv::start_with(EnvOptions {
        nats: Some(mnemo_bus::NatsOptions {
            url: format!("nats://127.0.0.1:1, {}", mnemo_tests::nats_url()),
            ..mnemo_tests::nats()
        }),
        ..no_servers()
    })
    .await;
    let owner = OwnerId::new("alice").unwrap();
    let id = DocumentId::new();
    let done = env
        .executor(0, patient())
        .execute(
            &aggregate_id(&owner, &id),
            upload_cmd(&owner, id),
            &HashMap::new(),
        )
        .await
        .unwrap();
    assert!(done.appended.is_some());
}
