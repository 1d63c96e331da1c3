//! Counters and stage analytics (`StatsService`), and the read models'
//! checksums before and after a rebuild from sequence 1.

use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_tests::{
    blank_pdf, database_url, terminal_update, upload, EnvOptions, TestEnv, TestEnvProjector,
};

/// Stats once the read models reflect `sequence`.
async fn stats_at(env: &TestEnv, owner: &str, sequence: u64) -> pb::Stats {
    let client = env.stats(owner).await;
    let get = |mut c: mnemo_tests::StatsClient| async move {
        c.get_stats(pb::GetStatsRequest { all_owners: false })
            .await
            .unwrap()
            .into_inner()
    };
    let reached = mnemo_tests::eventually(Duration::from_secs(60), || {
        let c = client.clone();
        async move { get(c).await.sequence >= sequence }
    })
    .await;
    assert!(reached, "read models never reached sequence {sequence}");
    get(client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_per_owner_and_stage_analytics_come_from_events() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        run_projector: false,
        ..Default::default()
    })
    .await;
    let projector = TestEnvProjector::start(&env).await;
    let mut alice = env.documents("alice").await;
    let mut bob = env.documents("bob").await;
    let a1 = upload(
        &mut alice,
        "a1.md",
        b"# Osmosis\n\nWater crosses membranes.\n",
    )
    .await
    .unwrap();
    let a2 = upload(&mut alice, "scan.pdf", &blank_pdf()).await.unwrap();
    let b1 = upload(&mut bob, "b1.md", b"# Bob\n\nBob's own notes on enzymes.\n")
        .await
        .unwrap();
    let a1_end = terminal_update(&env, "alice", &a1.document_id).await;
    let a2_end = terminal_update(&env, "alice", &a2.document_id).await;
    let b1_end = terminal_update(&env, "bob", &b1.document_id).await;
    assert_eq!(a1_end.stage, pb::Stage::Indexed as i32, "{a1_end:?}");
    assert_eq!(a2_end.stage, pb::Stage::Failed as i32, "{a2_end:?}");
    assert_eq!(b1_end.stage, pb::Stage::Indexed as i32, "{b1_end:?}");
    let last = a1_end.sequence.max(a2_end.sequence).max(b1_end.sequence);

    let s = stats_at(&env, "alice", last).await;
    let t = s.totals.expect("totals");
    assert_eq!(
        (t.total, t.indexed, t.failed, t.queued, t.processing),
        (2, 1, 1, 0, 0),
        "alice sees her two documents only: {t:?}"
    );
    let stage = |name: &str| {
        s.stages
            .iter()
            .find(|st| st.stage == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", s.stages))
            .clone()
    };
    // Both left `uploaded` (the extractor took them) and finished
    // `extracting`: the scan failed there (`DocumentFailed.stage`), before
    // any page was read; the notes were extracted at once, with no
    // progress event, and count as extracted all the same.
    let uploaded = stage("uploaded");
    assert_eq!((uploaded.finished, uploaded.failed), (2, 0));
    let extracting = stage("extracting");
    assert_eq!(extracting.finished, 2);
    assert_eq!(extracting.failed, 1, "the scan failed in extraction");
    assert!((extracting.error_rate - 0.5).abs() < 1e-9);
    assert!(extracting.p95_seconds >= extracting.p50_seconds && extracting.p50_seconds >= 0.0);
    assert_eq!(s.stages.iter().map(|st| st.failed).sum::<u64>(), 1);
    let embedding = stage("embedding");
    assert_eq!((embedding.finished, embedding.failed), (1, 0));

    let bob_totals = stats_at(&env, "bob", last).await.totals.expect("totals");
    assert_eq!((bob_totals.total, bob_totals.indexed), (1, 1));

    // Every owner's figures only with an admin token.
    let denied = env
        .stats("alice")
        .await
        .get_stats(pb::GetStatsRequest { all_owners: true })
        .await
        .expect_err("not an admin");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // Rebuild every read model from sequence 1 beside the live ones, then
    // swap: the same contents, and nothing appended.
    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let before = mnemo_projector::checksum::checksums(&db).await.unwrap();
    assert!(before.iter().any(|t| t.table == "chunks" && t.rows >= 2));
    assert!(before
        .iter()
        .any(|t| t.table == "chunk_embeddings" && t.rows >= 2));
    let end = env.event_count().await;
    let report = mnemo_projector::rebuild::rebuild(
        &env.bus,
        &database_url(),
        &mnemo_projector::Projection::OF_DOCUMENTS,
        &Default::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert!(report.progress.events > 0);
    assert!(report.versions.iter().all(|(_, v)| *v == 2), "{report:?}");
    drop(projector);
    assert_eq!(env.event_count().await, end, "a rebuild appended events");
    let after = mnemo_projector::checksum::checksums(&db).await.unwrap();
    assert_eq!(before, after);
}
