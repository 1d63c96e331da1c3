//! Two copies of every service on one namespace (issue 20): extractors,
//! chunkers, embedders and projectors share the work through their durable
//! consumers (the second projector a standby), and a learner uploads
//! through one API while watching, listing and searching through the
//! other, read-your-writes by `min_sequence`.

use std::collections::BTreeSet;
use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_proto::v1::document_service_client::DocumentServiceClient;
use mnemo_proto::v1::progress_service_client::ProgressServiceClient;
use mnemo_proto::v1::search_service_client::SearchServiceClient;
use mnemo_tests::{
    assert_chunks_once, upload, watch_all, BearerInterceptor, EnvOptions, ProgressSeen,
    SecondCopies, TestEnv,
};

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
    let mut progress_seen = ProgressSeen::default();
    while progress_seen.indexed.len() < uploaded.len() {
        let u = tokio::time::timeout(Duration::from_secs(120), stream.message())
            .await
            .expect("the pipeline keeps moving")
            .unwrap()
            .expect("the stream follows");
        progress_seen.observe(&u);
    }
    let seen = progress_seen.last;
    assert_eq!(progress_seen.indexed, uploaded);

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
    assert_chunks_once(&db, uploaded.len()).await;
    drop(second);
}
