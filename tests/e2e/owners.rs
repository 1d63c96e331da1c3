//! Owner isolation across every read surface: for owners whose ids look
//! like subject wildcards, prefixes, case variants or padding of the real
//! owner's id, nothing of the real owner's is visible — documents, Get,
//! search hits, progress (document, batch, all), counters.

use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_tests::{
    terminal_update, upload, watch_all, watch_batch, watch_document, EnvOptions, TestEnv,
};

/// Ids a hostile or unlucky caller might have, next to `alice`.
const OTHERS: &[&str] = &[
    "alice.>",
    "alice.*",
    "alice*",
    ">",
    "*",
    "Alice",
    "ALICE",
    "alice ",
    " alice",
    "alic",
    "alicea",
    "alice.x",
    "ALICE_LOCAL",
    "mfwgsy3f",
    "a",
    "bob",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_other_owner_sees_anything_of_alices() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut alice = env.documents("alice").await;
    let doc = upload(
        &mut alice,
        "cells.md",
        b"# Cells\n\nMitochondria produce ATP in eukaryotic cells.\n",
    )
    .await
    .unwrap();
    let done = terminal_update(&env, "alice", &doc.document_id).await;
    assert_eq!(done.stage, pb::Stage::Indexed as i32, "{done:?}");
    // Alice herself sees it everywhere (so the checks below can fail).
    let listed = alice
        .list(pb::ListDocumentsRequest {
            min_sequence: done.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.documents.len(), 1);
    let hits = env
        .search("alice")
        .await
        .search(pb::SearchRequest {
            query: "mitochondria".into(),
            k: 5,
            min_sequence: done.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(!hits.is_empty(), "alice finds her own chunk");

    for other in OTHERS {
        let mut docs = env.documents(other).await;
        let listed = docs
            .list(pb::ListDocumentsRequest {
                min_sequence: done.sequence,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            listed.documents.is_empty(),
            "{other:?} lists {:?}",
            listed.documents
        );
        let got = docs
            .get(pb::GetDocumentRequest {
                document_id: doc.document_id.clone(),
            })
            .await
            .expect_err("another owner's document");
        assert_eq!(got.code(), tonic::Code::NotFound, "{other:?}");
        for mode in [
            pb::SearchMode::Hybrid,
            pb::SearchMode::Lexical,
            pb::SearchMode::Vector,
        ] {
            let r = env
                .search(other)
                .await
                .search(pb::SearchRequest {
                    query: "mitochondria ATP".into(),
                    k: 10,
                    mode: mode as i32,
                    min_sequence: done.sequence,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(r.hits.is_empty(), "{other:?} {mode:?} finds {:?}", r.hits);
        }
        let mut progress = env.progress(other).await;
        let denied = progress
            .watch(watch_document(&doc.document_id, 0, false))
            .await
            .expect_err("another owner's document");
        assert_eq!(denied.code(), tonic::Code::NotFound, "{other:?}");
        for request in [watch_batch(&doc.batch_id, 0, false), watch_all(0, false)] {
            // A scope with nothing of the caller's ends without an update
            // of alice's (or, for a batch, says it does not exist).
            match progress.watch(request).await {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    while let Ok(Some(u)) =
                        tokio::time::timeout(Duration::from_secs(10), stream.message())
                            .await
                            .expect("the stream ends")
                    {
                        assert_ne!(
                            u.document_id, doc.document_id,
                            "{other:?} sees alice's progress"
                        );
                    }
                }
                Err(s) => assert_eq!(s.code(), tonic::Code::NotFound, "{other:?}: {s}"),
            }
        }
        let stats = env
            .stats(other)
            .await
            .get_stats(pb::GetStatsRequest { all_owners: false })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            stats.totals.map(|t| t.total),
            Some(0),
            "{other:?} counts alice's"
        );
    }
}
