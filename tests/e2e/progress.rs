//! Progress streams folded from events; resume without gaps or repeats.
//! Batch and all-documents scopes, API restarts, slow watchers and owner
//! isolation are in `progress_scopes`.

use std::collections::HashMap;
use std::time::Duration;

use mnemo_bus::{ExecuteError, RetryPolicy};
use mnemo_domain::document::aggregate_id;
use mnemo_domain::{DocumentCommand, DocumentError, DocumentId, OwnerId, Sha256Hex};
use mnemo_proto::v1 as pb;
use mnemo_tests::{corpus_pdf, upload, watch_document, TestEnv};
use tonic::Streaming;

/// The next update, or a failure if none comes within 20 s.
async fn next(stream: &mut Streaming<pb::ProgressUpdate>) -> Option<pb::ProgressUpdate> {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("an update within 20 s")
        .expect("stream ok")
}

#[tokio::test]
async fn watch_folds_events_live_and_resumes_without_gaps_or_repeats() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let mut progress = env.progress("alice").await;
    let r = upload(
        &mut docs,
        "paper.pdf",
        &corpus_pdf("bio_vespa_bioinformatics.pdf"),
    )
    .await
    .unwrap();
    let owner = OwnerId::new("alice").unwrap();
    let id: DocumentId = r.document_id.parse().unwrap();
    let agg = aggregate_id(&owner, &id);
    // Plays the extractor: appends results through the aggregate.
    let extractor = env.executor(100, RetryPolicy::default());

    let watch = |from| watch_document(&r.document_id, from, false);
    let mut stream = progress.watch(watch(0)).await.unwrap().into_inner();
    let first = next(&mut stream).await.unwrap();
    assert_eq!(
        (first.stage, first.sequence, first.fraction),
        (pb::Stage::Uploaded as i32, r.sequence, 0.0)
    );
    assert_eq!(first.event_type, "DocumentUploaded");

    for p in [3, 6] {
        extractor
            .execute(
                &agg,
                DocumentCommand::RecordExtractionProgress {
                    run: 1,
                    pages_done: p,
                    pages_total: 12,
                },
                &HashMap::new(),
            )
            .await
            .unwrap();
    }
    let a = next(&mut stream).await.unwrap();
    let b = next(&mut stream).await.unwrap();
    assert_eq!(
        (a.stage, a.pages_done, a.pages_total),
        (pb::Stage::Extracting as i32, 3, 12)
    );
    assert!(b.fraction > a.fraction && a.fraction > 0.0);
    assert_eq!(b.sequence, a.sequence + 1);

    // The client disconnects; events keep coming.
    drop(stream);
    let done = extractor
        .execute(
            &agg,
            DocumentCommand::RecordTextExtracted {
                run: 1,
                text_sha256: Sha256Hex::from_digest(&[4; 32]),
                pages: 12,
                chars: 40_000,
                extractor: "pdf-rs".into(),
                pages_failed: 0,
            },
            &HashMap::new(),
        )
        .await
        .unwrap();

    // Resuming after the last update seen gets exactly what was missed.
    let mut stream = progress
        .watch(watch(b.sequence))
        .await
        .unwrap()
        .into_inner();
    let resumed = next(&mut stream).await.unwrap();
    assert_eq!(resumed.sequence, done.last_sequence);
    assert_eq!(resumed.event_type, "TextExtracted");
    assert_eq!(resumed.stage, pb::Stage::Chunking as i32);
    assert!(resumed.fraction >= b.fraction);
    assert_eq!(resumed.pages_done, 12);

    // Cancel mid-pipeline ends the stream, and the pipeline's next result is refused.
    docs.cancel(pb::CancelDocumentRequest {
        document_id: r.document_id.clone(),
        reason: "enough".into(),
    })
    .await
    .unwrap();
    let last = next(&mut stream).await.unwrap();
    assert!(last.terminal);
    assert_eq!(last.stage, pb::Stage::Cancelled as i32);
    assert!(last.message.contains("enough"));
    assert!(
        next(&mut stream).await.is_none(),
        "a terminal update ends the stream"
    );
    let refused = extractor
        .execute(
            &agg,
            DocumentCommand::RecordChunks {
                run: 1,
                batch: 0,
                last: true,
                chunks: vec![],
            },
            &HashMap::new(),
        )
        .await;
    assert!(matches!(
        refused,
        Err(ExecuteError::Refused(
            DocumentError::InvalidTransition { .. }
        ))
    ));

    // Reprocess starts run 2; a late result of run 1 is stale.
    let accepted = docs
        .reprocess(pb::ReprocessDocumentRequest {
            document_id: r.document_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.run, 2);
    let stale = extractor
        .execute(
            &agg,
            DocumentCommand::RecordExtractionProgress {
                run: 1,
                pages_done: 9,
                pages_total: 12,
            },
            &HashMap::new(),
        )
        .await;
    assert!(matches!(
        stale,
        Err(ExecuteError::Refused(DocumentError::StaleRun {
            current: 2,
            got: 1
        }))
    ));

    // Watching a terminal document from its end returns at once, empty.
    let mut s = progress
        .watch(watch(last.sequence))
        .await
        .unwrap()
        .into_inner();
    let after = next(&mut s).await.unwrap();
    assert_eq!(
        (after.event_type.as_str(), after.run),
        ("ReprocessRequested", 2)
    );
}

/// One owner may hold only so many progress streams (issue 18): the next
/// is refused with RESOURCE_EXHAUSTED and the reason, another owner is
/// unaffected, and a stream the client closes frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_holds_at_most_its_share_of_progress_streams() {
    let env = TestEnv::start_with(mnemo_tests::EnvOptions {
        limits: Some(mnemo_api::config::Limits {
            max_watchers_per_owner: 2,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let mut alice = env.progress("alice").await;
    let first = alice
        .watch(mnemo_tests::watch_all(0, true))
        .await
        .expect("first stream");
    let _second = alice
        .watch(mnemo_tests::watch_all(0, true))
        .await
        .expect("second stream");
    let refused = alice
        .watch(mnemo_tests::watch_all(0, true))
        .await
        .expect_err("a third stream is over the limit");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("2 progress streams are already open"),
        "{}",
        refused.message()
    );
    let mut bob = env.progress("bob").await;
    bob.watch(mnemo_tests::watch_all(0, true))
        .await
        .expect("another owner is unaffected");
    drop(first);
    let freed = mnemo_tests::eventually(Duration::from_secs(10), || {
        let mut alice = alice.clone();
        async move { alice.watch(mnemo_tests::watch_all(0, true)).await.is_ok() }
    })
    .await;
    assert!(freed, "a closed stream frees its place");
}
