//! Storage quotas (issue 18): per owner (documents, bytes uploaded) and per
//! namespace (the event log's and blob bucket's size limits). Over a limit,
//! an upload is refused with RESOURCE_EXHAUSTED, the figures and an
//! ErrorInfo reason, and nothing of it is stored; under it, and for other
//! owners, nothing changes. `GetStats` shows the figures.

use mnemo_bus::setup::{apply_store_limits, StoreLimits};
use mnemo_proto::v1 as pb;
use mnemo_tests::{upload, EnvOptions, TestEnv};
use tonic::Code;
use tonic_types::StatusExt;

fn with_quota(max_documents: u64, max_bytes: u64) -> EnvOptions {
    let limits = mnemo_api::config::Limits {
        rate: mnemo_api::rate::RateConfig {
            per_second: 1_000_000,
            burst: 1_000_000,
        },
        quota: mnemo_api::quota::QuotaConfig {
            max_documents,
            max_bytes,
        },
        ..Default::default()
    };
    EnvOptions {
        limits: Some(limits),
        ..Default::default()
    }
}

fn reason(status: &tonic::Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}

fn text(n: usize) -> Vec<u8> {
    let mut t = b"# Notes\n".to_vec();
    t.resize(n, b'a');
    t
}

/// An owner at its document quota is refused before anything is stored;
/// the documents it holds count whether or not the read model has applied
/// them yet (the uploads go back to back); another owner is unaffected.
#[tokio::test]
async fn an_owner_at_its_document_quota_is_refused_and_nobody_else_is() {
    let env = TestEnv::start_with(with_quota(2, 0)).await;
    let mut alice = env.documents("alice").await;
    upload(&mut alice, "a.md", b"# A\n").await.expect("first");
    upload(&mut alice, "b.md", b"# B\n").await.expect("second");
    let refused = upload(&mut alice, "c.md", b"# C\n")
        .await
        .expect_err("a third document is over the quota");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused).as_deref(), Some("OWNER_DOCUMENT_QUOTA"));
    assert!(
        refused.message().contains("holds 2 documents") && refused.message().contains("is 2"),
        "{}",
        refused.message()
    );
    assert_eq!(
        env.event_count().await,
        2,
        "the refused upload stored nothing"
    );
    let mut bob = env.documents("bob").await;
    upload(&mut bob, "b.md", b"# B\n")
        .await
        .expect("another owner is under its own quota");
    let stats = env
        .stats("alice")
        .await
        .get_stats(pb::GetStatsRequest { all_owners: false })
        .await
        .expect("stats")
        .into_inner();
    let quota = stats.quota.expect("the caller's quota");
    assert_eq!((quota.documents, quota.max_documents), (2, 2));
    assert!(stats.store.is_none(), "store sizes are for admins");
}

/// Bytes count as they arrive: an upload that would take the owner past
/// its quota is refused mid-stream and leaves nothing; a smaller one that
/// fits still goes through, up to exactly the quota.
#[tokio::test]
async fn an_upload_past_the_owners_byte_quota_is_refused_and_one_that_fits_is_not() {
    let env = TestEnv::start_with(with_quota(0, 10_000)).await;
    let mut alice = env.documents("alice").await;
    upload(&mut alice, "a.md", &text(6_000))
        .await
        .expect("6,000 of 10,000 bytes");
    let refused = upload(&mut alice, "b.md", &text(4_001))
        .await
        .expect_err("4,001 more bytes are over the quota");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused).as_deref(), Some("OWNER_BYTE_QUOTA"));
    assert!(
        refused.message().contains("at most 10000"),
        "{}",
        refused.message()
    );
    assert_eq!(
        env.event_count().await,
        1,
        "the refused upload stored nothing"
    );
    upload(&mut alice, "c.md", &text(4_000))
        .await
        .expect("exactly the quota fits");
    let quota = env
        .stats("alice")
        .await
        .get_stats(pb::GetStatsRequest { all_owners: false })
        .await
        .expect("stats")
        .into_inner()
        .quota
        .expect("quota");
    assert_eq!((quota.bytes, quota.max_bytes), (10_000, 10_000));
}

/// The namespace's blob bucket at its size limit refuses uploads with
/// STORE_FULL before anything is written; the event log at its limit
/// refuses appends the same way and drops nothing it holds. Lifting the
/// limits (0) lets uploads in again. Admins see the sizes in GetStats.
#[tokio::test]
async fn a_full_namespace_refuses_uploads_and_drops_nothing() {
    let env = TestEnv::start().await;
    let mut alice = env.documents("alice").await;
    let js = &env.bus.jetstream;
    apply_store_limits(
        js,
        &env.ns,
        StoreLimits {
            events: None,
            blobs: Some(64 * 1024),
        },
    )
    .await
    .expect("the operator sets a blob limit");
    let refused = upload(&mut alice, "big.md", &text(100 * 1024))
        .await
        .expect_err("100 KiB do not fit in 64 KiB");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused).as_deref(), Some("STORE_FULL"));
    assert!(
        refused
            .message()
            .contains("upload store is at its size limit"),
        "{}",
        refused.message()
    );
    assert_eq!(env.event_count().await, 0);
    let first = upload(&mut alice, "small.md", &text(1024))
        .await
        .expect("a small upload fits");

    let stats = env
        .stats_admin()
        .await
        .get_stats(pb::GetStatsRequest { all_owners: true })
        .await
        .expect("admin stats")
        .into_inner();
    let store = stats.store.expect("admins see the store");
    assert_eq!(store.blob_max_bytes, 64 * 1024);
    assert!(store.blob_bytes >= 1024, "{store:?}");
    assert_eq!(store.event_max_bytes, 0, "no event limit");

    // The event log at its limit: appends are refused, nothing is dropped.
    let held = env.event_count().await;
    apply_store_limits(
        js,
        &env.ns,
        StoreLimits {
            events: Some(store.event_bytes.max(1)),
            blobs: Some(0),
        },
    )
    .await
    .expect("the operator sets an event limit");
    let refused = upload(&mut alice, "more.md", &text(512))
        .await
        .expect_err("the event log is full");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused).as_deref(), Some("STORE_FULL"));
    assert!(
        refused.message().contains("event log is at its size limit"),
        "{}",
        refused.message()
    );
    assert_eq!(
        env.event_count().await,
        held,
        "nothing dropped, nothing added"
    );
    let mut docs = env.documents("alice").await;
    docs.get(pb::GetDocumentRequest {
        document_id: first.document_id.clone(),
    })
    .await
    .expect("what was stored is still there");

    apply_store_limits(
        js,
        &env.ns,
        StoreLimits {
            events: Some(0),
            blobs: Some(0),
        },
    )
    .await
    .expect("the operator lifts the limits");
    upload(&mut alice, "after.md", &text(100 * 1024))
        .await
        .expect("uploads go in again");
}
