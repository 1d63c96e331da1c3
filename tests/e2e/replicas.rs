//! Two copies of every service on one namespace (issue 20): extractors,
//! chunkers, embedders and projectors share the work through their durable
//! consumers (the second projector a standby), and a learner uploads
//! through one API while watching, listing and searching through the
//! other, read-your-writes by `min_sequence`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_proto::v1::document_service_client::DocumentServiceClient;
use mnemo_proto::v1::progress_service_client::ProgressServiceClient;
use mnemo_proto::v1::search_service_client::SearchServiceClient;
use mnemo_tests::{upload, watch_all, BearerInterceptor, EnvOptions, SecondCopies, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_copies_of_every_service_share_the_work_and_either_api_reads_it() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let second = SecondCopies::start(&env).await;
    let bearer = || BearerInterceptor::new(env.token("alice"));

    // Uploads through the first API.
    let mut first_api = env.documents("alice").await;
    let mut uploaded = BTreeSet::new();
    for i in 0..8 {
        let text = format!("# Notes {i}\n\nThe marker word for note {i} is quokka{i}.\n");
        let r = upload(&mut first_api, &format!("note-{i}.md"), text.as_bytes())
            .await
            .unwrap();
        uploaded.insert(r.document_id);
    }

    // Watched through the second: every document reaches `indexed`, and
    // no document's progress ever goes backwards.
    let mut progress = ProgressServiceClient::with_interceptor(second.channel().await, bearer());
    let mut stream = progress
        .watch(watch_all(0, true))
        .await
        .unwrap()
        .into_inner();
    let mut fraction: BTreeMap<String, f64> = BTreeMap::new();
    let mut indexed = BTreeSet::new();
    let mut seen = 0;
    while indexed.len() < uploaded.len() {
        let u = tokio::time::timeout(Duration::from_secs(120), stream.message())
            .await
            .expect("the pipeline keeps moving")
            .unwrap()
            .expect("the stream follows");
        if u.document_id.is_empty() {
            continue;
        }
        let before = fraction
            .insert(u.document_id.clone(), u.fraction)
            .unwrap_or(0.0);
        assert!(
            u.fraction >= before,
            "{} went back: {before} → {}",
            u.document_id,
            u.fraction
        );
        assert_ne!(u.stage, pb::Stage::Failed as i32, "{u:?}");
        if u.stage == pb::Stage::Indexed as i32 {
            indexed.insert(u.document_id.clone());
            seen = seen.max(u.sequence);
        }
    }
    assert_eq!(indexed, uploaded);

    // Listed and searched through the second API, at least as of what it
    // showed: its own read of the read models and its own search index.
    let mut second_api = DocumentServiceClient::with_interceptor(second.channel().await, bearer());
    let listed = second_api
        .list(pb::ListDocumentsRequest {
            min_sequence: seen,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.documents.len(), uploaded.len());
    assert!(listed
        .documents
        .iter()
        .all(|d| d.stage == pb::Stage::Indexed as i32));
    let mut search = SearchServiceClient::with_interceptor(second.channel().await, bearer());
    let found = search
        .search(mnemo_tests::hybrid_search("quokka5", 3, seen))
        .await
        .unwrap()
        .into_inner();
    let top = found.hits.first().expect("a hit");
    assert_eq!(top.title, "note-5.md", "{top:?}");

    // Every chunk stored once, whichever copies did the work.
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    let (rows, distinct): (i64, i64) = {
        let r = db
            .query_one(
                "SELECT count(*), count(DISTINCT (document_id, ordinal)) FROM chunks",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(rows >= uploaded.len() as i64);
    assert_eq!(rows, distinct, "no chunk is stored twice");
    drop(second);
}
