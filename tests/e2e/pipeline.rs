//! The whole pipeline on real parts: extractor (pdftotext in a sandbox),
//! chunker (the model's tokenizer), embedder (onnxruntime), projector.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use mnemo_proto::v1 as pb;
use mnemo_tests::{
    blank_pdf, corpus_pdf, database_url, eventually, terminal_update, upload, EnvOptions, TestEnv,
};

/// A world with the whole pipeline running.
async fn pipeline_env() -> TestEnv {
    TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await
}

/// The final update of alice's document.
async fn outcome(env: &TestEnv, document_id: &str) -> pb::ProgressUpdate {
    terminal_update(env, "alice", document_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_become_searchable_chunks_and_poison_fails_alone() {
    let env = pipeline_env().await;
    let mut docs = env.documents("alice").await;
    let notes = upload(
        &mut docs,
        "cells.md",
        b"# Cells\n\nMitochondria make ATP. Ribosomes make proteins.\n",
    )
    .await
    .unwrap();
    let paper = upload(
        &mut docs,
        "vespa.pdf",
        &corpus_pdf("bio_vespa_bioinformatics.pdf"),
    )
    .await
    .unwrap();
    let poison = upload(
        &mut docs,
        "loop.pdf",
        &corpus_pdf("broken_infinite_loop103.pdf"),
    )
    .await
    .unwrap();
    let blank = upload(&mut docs, "scan.pdf", &blank_pdf()).await.unwrap();

    let notes_end = outcome(&env, &notes.document_id).await;
    let paper_end = outcome(&env, &paper.document_id).await;
    let poison_end = outcome(&env, &poison.document_id).await;
    let blank_end = outcome(&env, &blank.document_id).await;
    assert_eq!(
        notes_end.stage,
        pb::Stage::Indexed as i32,
        "{}",
        notes_end.message
    );
    assert_eq!(
        paper_end.stage,
        pb::Stage::Indexed as i32,
        "{}",
        paper_end.message
    );
    assert!(paper_end.pages_total > 1);
    assert_eq!(poison_end.stage, pb::Stage::Failed as i32);
    assert!(
        poison_end.message.contains("damaged PDF"),
        "{}",
        poison_end.message
    );
    assert_eq!(blank_end.stage, pb::Stage::Failed as i32);
    assert!(
        blank_end
            .message
            .contains("no text layer (OCR not supported)"),
        "{}",
        blank_end.message
    );

    // Clients branch on where and why, not on the prose: in progress, in
    // Get (folded from events) and in List (the read model).
    let failed = |stage: pb::Stage, code: pb::FailureCode| (stage as i32, code as i32);
    let damaged = failed(pb::Stage::Extracting, pb::FailureCode::Damaged);
    let scan = failed(pb::Stage::Extracting, pb::FailureCode::NoTextLayer);
    assert_eq!((poison_end.failed_stage, poison_end.failure_code), damaged);
    assert_eq!((blank_end.failed_stage, blank_end.failure_code), scan);
    assert_eq!(
        (notes_end.failed_stage, notes_end.failure_code),
        failed(pb::Stage::Unspecified, pb::FailureCode::Unspecified)
    );
    let got = docs
        .get(pb::GetDocumentRequest {
            document_id: poison.document_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.failed_stage, got.failure_code), damaged);
    let listed = docs
        .list(pb::ListDocumentsRequest {
            min_sequence: blank_end.sequence.max(poison_end.sequence),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let of = |id: &str| {
        let d = listed
            .documents
            .iter()
            .find(|d| d.document_id == id)
            .unwrap();
        (d.failed_stage, d.failure_code)
    };
    assert_eq!(of(&poison.document_id), damaged);
    assert_eq!(of(&blank.document_id), scan);
    assert_eq!(
        of(&paper.document_id),
        failed(pb::Stage::Unspecified, pb::FailureCode::Unspecified)
    );

    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let last = paper_end.sequence.max(notes_end.sequence);
    mnemo_projector::runner::wait_for(&db, &env.ns, last, Duration::from_secs(30))
        .await
        .unwrap();
    let paper_id: uuid::Uuid = paper.document_id.parse().unwrap();
    // pdf-rs (the primary extractor) read the paper; the event says so.
    let store = mnemo_bus::JetStreamEventStore::<mnemo_domain::Document>::new(&env.bus, "doc", 0);
    let owner = mnemo_domain::OwnerId::new("alice").unwrap();
    let events = store
        .read_messages(&mnemo_domain::document::aggregate_id(
            &owner,
            &paper.document_id.parse().unwrap(),
        ))
        .await
        .unwrap();
    let extractor = events.iter().flat_map(|m| &m.events).find_map(|e| match e {
        mnemo_domain::DocumentEvent::TextExtracted { extractor, .. } => Some(extractor.clone()),
        _ => None,
    });
    assert_eq!(extractor.as_deref(), Some("pdf-rs"));
    let row = db
        .query_one(
            "SELECT count(*), max(c.tokens), min(e.dims), max(e.dims),
                    min(c.page_start), max(c.page_end), count(e.chunk_id)
             FROM chunks c LEFT JOIN chunk_embeddings e ON e.chunk_id = c.chunk_id AND e.run = c.run
             WHERE c.document_id = $1",
            &[&paper_id],
        )
        .await
        .unwrap();
    let (n, max_tokens, min_dims, max_dims) = (
        row.get::<_, i64>(0),
        row.get::<_, i32>(1),
        row.get::<_, i32>(2),
        row.get::<_, i32>(3),
    );
    assert!(n > 10, "{n} chunks");
    assert!(
        max_tokens <= 256,
        "a chunk of {max_tokens} tokens would be truncated"
    );
    assert_eq!((min_dims, max_dims), (384, 384));
    assert_eq!(
        row.get::<_, i64>(6),
        n,
        "every chunk has exactly one vector"
    );
    assert!(row.get::<_, i32>(4) >= 1 && row.get::<_, i32>(5) as u64 <= paper_end.pages_total);
    let hits: i64 = db
        .query_one(
            "SELECT count(*) FROM chunks WHERE document_id = $1 AND tsv @@ websearch_to_tsquery('english', 'protein')",
            &[&paper_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(hits > 0);

    // Forced redelivery: the chunker and embedder forget where they were and
    // see every event again. Nothing new may be appended or stored.
    let events_before = env.event_count().await;
    let chunks_before: i64 = db
        .query_one("SELECT count(*) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    for service in ["chunker", "embedder"] {
        env.bus
            .events
            .delete_consumer(&env.ns.consumer(service))
            .await
            .unwrap();
    }
    let _again = mnemo_tests::TestEnvPipeline::start(&env).await;
    for service in ["chunker", "embedder"] {
        let name = env.ns.consumer(service);
        let settled = eventually(Duration::from_secs(60), || async {
            let Ok(mut c) = env.bus.events.get_consumer::<pull::Config>(&name).await else {
                return false;
            };
            c.info().await.is_ok_and(|i| {
                i.num_pending == 0
                    && i.num_ack_pending == 0
                    && i.delivered.stream_sequence >= events_before
            })
        })
        .await;
        assert!(
            settled,
            "{service} did not go through the redelivered events"
        );
    }
    assert_eq!(
        env.event_count().await,
        events_before,
        "a redelivery appended events"
    );
    let chunks_after: i64 = db
        .query_one("SELECT count(*) FROM chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks_after, chunks_before);
}

/// The next update of a Watch stream (None at its end), within a deadline.
async fn next(stream: &mut tonic::Streaming<pb::ProgressUpdate>) -> Option<pb::ProgressUpdate> {
    tokio::time::timeout(Duration::from_secs(120), stream.message())
        .await
        .expect("the pipeline keeps moving")
        .unwrap()
}

/// Cancel while the real services work on a long book: the document ends
/// `cancelled`, and once every service has gone through its backlog nothing
/// was appended after the cancellation (late results were rejected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_pipeline_stops_the_run() {
    let env = pipeline_env().await;
    let mut docs = env.documents("alice").await;
    let book = upload(
        &mut docs,
        "geotopo.pdf",
        &corpus_pdf("book_geotopo_117p_objstm.pdf"),
    )
    .await
    .unwrap();
    let mut progress = env.progress("alice").await;
    let mut stream = progress
        .watch(mnemo_tests::watch_document(&book.document_id, 0, false))
        .await
        .unwrap()
        .into_inner();
    // Wait until a service has started on it, then cancel.
    loop {
        let u = next(&mut stream).await.expect("updates until the end");
        assert!(!u.terminal, "ended before it could be cancelled: {u:?}");
        if u.stage >= pb::Stage::Extracting as i32 {
            break;
        }
    }
    docs.cancel(pb::CancelDocumentRequest {
        document_id: book.document_id.clone(),
        reason: "changed my mind".into(),
    })
    .await
    .unwrap();
    let mut last = None;
    while let Some(u) = next(&mut stream).await {
        last = Some(u);
    }
    let last = last.expect("a final update");
    assert_eq!(last.stage, pb::Stage::Cancelled as i32, "{last:?}");

    // Let every service go through what is on the stream, then look at the
    // document's last event: still the cancellation.
    let end = env.event_count().await;
    for service in ["extractor", "chunker", "embedder"] {
        let name = env.ns.consumer(service);
        let settled = eventually(Duration::from_secs(120), || async {
            let Ok(mut c) = env.bus.events.get_consumer::<pull::Config>(&name).await else {
                return false;
            };
            c.info().await.is_ok_and(|i| {
                i.num_pending == 0 && i.num_ack_pending == 0 && i.delivered.stream_sequence >= end
            })
        })
        .await;
        assert!(settled, "{service} did not settle");
    }
    let owner = mnemo_domain::OwnerId::new("alice".to_owned()).unwrap();
    let id: mnemo_domain::DocumentId = book.document_id.parse().unwrap();
    let subject = env
        .ns
        .aggregate_subject("doc", &mnemo_domain::document::aggregate_id(&owner, &id));
    let message = env
        .bus
        .events
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    let event_type = message
        .headers
        .get(mnemo_bus::envelope::EVENT_TYPE)
        .map(|v| v.to_string());
    assert_eq!(event_type.as_deref(), Some("ProcessingCancelled"));
}

/// Every service keeps the documents it worked on in a cache, so by the time
/// a document is reprocessed each one's cached state is run 1's: older than
/// the `ReprocessRequested`, `TextExtracted` or `DocumentChunked` it is
/// handed for run 2. A handler must see that its read is older than the
/// event and read again — a stale read that says "nothing to do" must never
/// acknowledge (and so drop) the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reprocessed_document_is_indexed_again_by_services_that_cached_its_first_run() {
    let env = pipeline_env().await;
    let mut docs = env.documents("alice").await;
    let notes = upload(
        &mut docs,
        "cells.md",
        b"# Cells\n\nMitochondria make ATP. Ribosomes make proteins.\n",
    )
    .await
    .unwrap();
    let first = outcome(&env, &notes.document_id).await;
    assert_eq!(first.stage, pb::Stage::Indexed as i32, "{}", first.message);

    let again = docs
        .reprocess(pb::ReprocessDocumentRequest {
            document_id: notes.document_id.clone(),
            reason: "new chunker settings".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.run, 2);
    let mut progress = env.progress("alice").await;
    let mut stream = progress
        .watch(mnemo_tests::watch_document(
            &notes.document_id,
            again.sequence,
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(u) = stream.message().await.unwrap() {
            last = Some(u);
        }
    })
    .await;
    let last = last.map(|u| (u.run, u.stage, u.message));
    assert!(ended.is_ok(), "run 2 never finished; last update: {last:?}");
    assert_eq!(
        last.as_ref().map(|(run, stage, _)| (*run, *stage)),
        Some((2, pb::Stage::Indexed as i32)),
        "{last:?}"
    );
}

/// A damaged PDF whose other pages read fine is indexed with what was
/// read — and says it is partial, on the document and in its progress, so
/// the learner knows pages are missing from search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_unreadable_pdf_is_indexed_and_says_which_share_is_missing() {
    let env = pipeline_env().await;
    let mut docs = env.documents("alice").await;
    // A twentieth of the file zeroed: two of its fourteen pages go with it.
    let mut bytes = corpus_pdf("paper_tracemonkey_2col.pdf");
    let (from, to) = (bytes.len() / 5, bytes.len() / 4);
    bytes[from..to].fill(0);
    let r = upload(&mut docs, "damaged.pdf", &bytes).await.unwrap();
    let end = outcome(&env, &r.document_id).await;
    assert_eq!(end.stage, pb::Stage::Indexed as i32, "{}", end.message);
    assert_eq!(end.pages_failed, 2, "{end:?}");
    assert!(
        end.message
            .contains("partial: 2 of 14 pages could not be read"),
        "{}",
        end.message
    );
    let d = docs
        .get(pb::GetDocumentRequest {
            document_id: r.document_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.pages_failed, d.pages_total), (2, 14));
    let listed = docs
        .list(pb::ListDocumentsRequest {
            min_sequence: end.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed
            .documents
            .iter()
            .map(|d| (d.pages_failed, d.pages_total))
            .collect::<Vec<_>>(),
        vec![(2, 14)]
    );
}

/// Text that is not text as a reader writes it (issue 18): one endless
/// "word", and one endless sentence, go through the real tokenizer in
/// pieces no bigger than a chunk and are indexed; text over the
/// extractor's limit fails with the reason instead of being held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathological_text_is_indexed_in_bounded_pieces_and_oversized_text_fails() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        extractor: Some(mnemo_extractor::ExtractorConfig {
            max_text_bytes: 1024 * 1024,
            ..mnemo_tests::extractor_config()
        }),
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let word = "x".repeat(600 * 1024);
    let sentence = "lorem ipsum dolor sit amet ".repeat(30_000);
    let oversized = "a".repeat(1024 * 1024 + 1);
    let word = upload(&mut docs, "word.txt", word.as_bytes())
        .await
        .unwrap();
    let sentence = upload(
        &mut docs,
        "sentence.txt",
        &sentence.as_bytes()[..700 * 1024],
    )
    .await
    .unwrap();
    let oversized = upload(&mut docs, "big.txt", oversized.as_bytes())
        .await
        .unwrap();
    for doc in [&word, &sentence] {
        let end = outcome(&env, &doc.document_id).await;
        assert_eq!(end.stage, pb::Stage::Indexed as i32, "{}", end.message);
        assert!(end.chunks_total > 1, "cut into many chunks: {end:?}");
    }
    let end = outcome(&env, &oversized.document_id).await;
    assert_eq!(end.stage, pb::Stage::Failed as i32);
    assert!(
        end.message.contains("the text is larger than 1 MiB"),
        "{}",
        end.message
    );
}
