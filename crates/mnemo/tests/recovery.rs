//! Recovery under faults, with the services as the processes an operator
//! runs: a worker killed mid-document hands it on within the short ack
//! wait, not after minutes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{corpus_pdf, nats, Service, TestNamespace};
use futures::StreamExt;
use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::content::ContentType;
use mnemo_domain::document::{aggregate_id, UploadedDocument};
use mnemo_domain::{Document, DocumentCommand, DocumentId, OwnerId, Sha256Hex};
use sha2::{Digest, Sha256};

/// Stores `bytes` and appends `DocumentUploaded` for alice, as the API does.
async fn upload(bus: &Bus, filename: &str, bytes: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    let sha = Sha256Hex::from_digest(&digest);
    let blobs = bus.blob_store().await.expect("blob store");
    let owner = OwnerId::new("alice").expect("owner");
    let key = bus
        .keys
        .for_writing(&owner.token())
        .await
        .expect("alice's key");
    blobs
        .put(&key, sha.as_str(), &mut &bytes[..])
        .await
        .expect("blob stored");
    let id = DocumentId::new();
    let aggregate = aggregate_id(&owner, &id);
    let executor: CommandExecutor<Document> = CommandExecutor::new(
        JetStreamEventStore::new(bus, "doc", 0),
        (),
        RetryPolicy::default(),
    );
    let upload = DocumentCommand::Upload(UploadedDocument {
        document_id: id,
        owner,
        filename: filename.into(),
        content_type: ContentType::Pdf,
        size_bytes: bytes.len() as u64,
        sha256: sha,
        topic: None,
        batch_id: "b".into(),
        idempotency_key: None,
        external_id: None,
    });
    executor
        .execute(&aggregate, upload, &HashMap::new())
        .await
        .expect("uploaded");
    aggregate
}

/// Waits for a message on `events` whose event type is one of `types`.
async fn next_event(
    events: &mut async_nats::Subscriber,
    types: &[&str],
    limit: Duration,
) -> Option<String> {
    tokio::time::timeout(limit, async {
        while let Some(m) = events.next().await {
            let kind = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Mnemo-Event-Type"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            if types.iter().any(|t| kind.split(',').any(|k| k == *t)) {
                return Some(kind);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Before: the extractor's ack wait was 120 s, so a document whose
/// extractor was killed waited two minutes for another copy. Now the ack
/// wait is 15 s, kept alive by heartbeats while the work goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_extractors_document_goes_to_another_copy_within_the_short_ack_wait() {
    let ns = TestNamespace::new();
    let bus = Bus::start(&nats(), mnemo_bus::Role::Operator, ns.0.clone(), 1)
        .await
        .expect("NATS with JetStream must run");
    let mut events = bus
        .client
        .subscribe(format!("{}.>", ns.0.events_of("doc")))
        .await
        .expect("subscribe");
    let mut first = Service::start("extractor", &ns, &[]);
    first
        .wait_for_log(&["consumer running", "extractor"], Duration::from_secs(60))
        .await
        .expect("the first extractor starts");
    // 619 pages: long enough to be killed in the middle of.
    upload(&bus, "book.pdf", &corpus_pdf("book_DA_619p.pdf")).await;
    let working = next_event(
        &mut events,
        &["ExtractionProgressed"],
        Duration::from_secs(60),
    )
    .await;
    assert!(working.is_some(), "the first extractor took the document");

    first.signal("KILL");
    let killed = Instant::now();
    let _ = first.child.wait().await;
    let mut second = Service::start("extractor", &ns, &[]);
    // Redelivered once the dead copy's ack wait runs out: the second copy
    // starts on the document.
    let redelivered = second
        .wait_for_log(&["extracting"], Duration::from_secs(45))
        .await;
    let took = killed.elapsed();
    assert!(
        redelivered.is_ok(),
        "the document did not come back to another copy: {redelivered:?} after {took:?}"
    );
    assert!(
        took < Duration::from_secs(40),
        "the document came back {took:?} after the kill"
    );
    eprintln!("kill -9 → another copy extracting: {took:.1?}");
    let done = next_event(
        &mut events,
        &["TextExtracted", "DocumentFailed"],
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(done.as_deref(), Some("TextExtracted"));
}
