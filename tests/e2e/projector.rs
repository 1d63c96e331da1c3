//! The projector: exactly-once effect under redelivery.

use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_tests::rebuild_watch::{rebuild_in_small_batches, schema_exists, RowCounts};
use mnemo_tests::{database_url, upload, EnvOptions, TestEnv, TestEnvProjector};

/// Uploads `n` small notes; returns the last upload's sequence.
async fn upload_notes(docs: &mut mnemo_tests::Documents, n: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        let note = format!("note {i}");
        last = upload(docs, &format!("n{i}.txt"), note.as_bytes())
            .await
            .unwrap()
            .sequence;
    }
    last
}

/// Every document event message of the env's stream, decoded, in order.
async fn document_messages(env: &TestEnv) -> Vec<mnemo_projector::batch::EventMessage> {
    let mut out = Vec::new();
    let filter = format!("{}.>", env.ns.events_of("doc"));
    let mut next = 1;
    loop {
        match env
            .bus
            .events
            .direct_get_next_for_subject(filter.as_str(), Some(next))
            .await
        {
            Ok(m) => {
                next = m.sequence + 1;
                out.push(
                    mnemo_projector::batch::EventMessage::decode(
                        &env.bus.keys,
                        m.subject.as_str(),
                        m.sequence,
                        Some(&m.headers),
                        &m.payload,
                    )
                    .await
                    .unwrap(),
                );
            }
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => {
                return out
            }
            Err(e) => panic!("reading the stream: {e}"),
        }
    }
}

async fn documents_rows(env: &TestEnv) -> Vec<(String, String, i64)> {
    let client = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    client
        .query(
            "SELECT document_id::text, stage, last_sequence FROM documents ORDER BY document_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn redelivered_events_change_nothing() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let last = upload_notes(&mut docs, 5).await;
    let r = docs
        .list(pb::ListDocumentsRequest {
            min_sequence: last,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.documents.len(), 5);
    let before = documents_rows(&env).await;

    // Read every document event again, as a projector restarting from an
    // old position would, and apply it all once more.
    let again = document_messages(&env).await;
    assert!(again.len() >= 5);
    let through = again.last().map(|m| m.sequence).unwrap();
    let mut client = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let applied = mnemo_projector::batch::apply(
        &mut client,
        &mnemo_projector::runner::consumer_name(&env.ns),
        &mnemo_projector::Projection::OF_DOCUMENTS,
        &again,
        through,
    )
    .await
    .unwrap();
    assert_eq!(applied.events, 0, "everything was applied before");
    assert_eq!(documents_rows(&env).await, before);
    let client = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    assert_eq!(
        mnemo_projector::runner::checkpoint(&client, &env.ns)
            .await
            .unwrap(),
        last
    );
}

/// Plays the extractor, chunker and embedder for one run of a document.
async fn process_run(env: &TestEnv, agg: &str, run: u32, doc: &str, texts: &[&str]) {
    use mnemo_domain::document::{ChunkRecord, ChunkVector};
    use mnemo_domain::{DocumentCommand, Sha256Hex};
    let exec = env.executor(100, mnemo_bus::RetryPolicy::default());
    let md = std::collections::HashMap::new();
    exec.execute(
        agg,
        DocumentCommand::RecordTextExtracted {
            run,
            text_sha256: Sha256Hex::from_digest(&[5; 32]),
            pages: 2,
            chars: 120,
            extractor: "utf8".into(),
            pages_failed: 0,
        },
        &md,
    )
    .await
    .unwrap();
    let chunks: Vec<ChunkRecord> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| ChunkRecord {
            chunk_id: mnemo_domain::chunking::chunk_id(doc, i as u32, t),
            ordinal: i as u32,
            text: (*t).to_owned(),
            page_start: i as u32 + 1,
            page_end: i as u32 + 1,
            tokens: 8,
        })
        .collect();
    let (first, rest) = chunks.split_at(1);
    for (batch, part, last) in [(0, first, false), (1, rest, true)] {
        exec.execute(
            agg,
            DocumentCommand::RecordChunks {
                run,
                batch,
                last,
                chunks: part.to_vec(),
            },
            &md,
        )
        .await
        .unwrap();
    }
    // Vectors arrive in two messages, as from a batching embedder.
    for part in chunks.chunks(2) {
        let vectors = part
            .iter()
            .map(|c| ChunkVector {
                chunk_id: c.chunk_id.clone(),
                // Distinct per chunk: each row must get its own vector.
                vector: vec![c.ordinal as f32, 0.5],
            })
            .collect();
        exec.execute(
            agg,
            DocumentCommand::RecordEmbeddings {
                run,
                model: "m@1".into(),
                dims: 2,
                vectors,
            },
            &md,
        )
        .await
        .unwrap();
    }
}

/// Waits (on the Watch stream, not on time) for the document's run to end.
async fn final_update(
    env: &TestEnv,
    owner: &str,
    document_id: &str,
    from: u64,
) -> pb::ProgressUpdate {
    let mut progress = env.progress(owner).await;
    let mut stream = progress
        .watch(mnemo_tests::watch_document(document_id, from, false))
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(u) = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        last = Some(u);
    }
    last.expect("at least one update")
}

/// The three chunks of `cells.md`, run 1 and any reprocessing run.
const CELL_TEXTS: [&str; 3] = [
    "Mitochondria make ATP for the cell.",
    "Ribosomes build proteins from messenger RNA.",
    "The membrane keeps the inside apart.",
];

/// Uploads `cells.md` for alice and plays run 1 of its pipeline; returns
/// the upload and the document's aggregate id.
async fn cells_uploaded_and_processed(
    env: &TestEnv,
    docs: &mut mnemo_tests::Documents,
) -> (pb::UploadResponse, String) {
    let up = upload(docs, "cells.md", b"# Cells\n\nMitochondria make ATP.\n")
        .await
        .unwrap();
    let owner = mnemo_domain::OwnerId::new("alice").unwrap();
    let id: mnemo_domain::DocumentId = up.document_id.parse().unwrap();
    let agg = mnemo_domain::document::aggregate_id(&owner, &id);
    process_run(env, &agg, 1, &up.document_id, &CELL_TEXTS).await;
    (up, agg)
}

#[tokio::test]
async fn stored_chunks_become_searchable_and_the_run_is_declared_indexed() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let (up, agg) = cells_uploaded_and_processed(&env, &mut docs).await;

    // The projector, not the test, appends DocumentIndexed.
    let done = final_update(&env, "alice", &up.document_id, 0).await;
    assert_eq!(done.stage, pb::Stage::Indexed as i32, "{}", done.message);
    assert_eq!(done.event_type, "DocumentIndexed");
    assert!((done.fraction - 1.0).abs() < 1e-9);

    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    // Read-your-writes: the DocumentIndexed message is applied too.
    mnemo_projector::runner::wait_for(&db, &env.ns, done.sequence, Duration::from_secs(20))
        .await
        .unwrap();
    let rows = db
        .query(
            "SELECT c.ordinal, c.page_start, e.dims, e.model, e.vector
               FROM chunks c JOIN chunk_embeddings e ON e.chunk_id = c.chunk_id AND e.run = c.run
              ORDER BY c.ordinal",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.get::<_, i32>(0), i as i32);
        assert_eq!(r.get::<_, i32>(1), i as i32 + 1);
        assert_eq!(r.get::<_, i32>(2), 2);
        assert_eq!(r.get::<_, String>(3), "m@1");
        assert_eq!(
            mnemo_projector::chunks::vector_from_bytes(r.get(4)),
            Some(vec![i as f32, 0.5])
        );
    }
    let hit: String = db
        .query_one(
            "SELECT text FROM chunks WHERE tsv @@ websearch_to_tsquery('english', 'protein ribosome')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(hit.starts_with("Ribosomes"));
    let doc = db
        .query_one(
            "SELECT stage, indexed_run, chunks_total FROM documents",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            doc.get::<_, String>(0),
            doc.get::<_, Option<i32>>(1),
            doc.get::<_, i32>(2)
        ),
        ("indexed".into(), Some(1), 3)
    );
    let timings = db
        .query("SELECT stage, outcome FROM stage_timings WHERE finished_at IS NOT NULL ORDER BY started_at, stage", &[])
        .await
        .unwrap();
    let stages: Vec<(String, Option<String>)> =
        timings.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        stages.contains(&("embedding".into(), Some("indexed".into()))),
        "{stages:?}"
    );
    // Extracted at once (no progress event): `extracting` opens and
    // closes when the text is recorded.
    assert!(
        stages.contains(&("uploaded".into(), Some("extracting".into()))),
        "{stages:?}"
    );
    assert!(
        stages.contains(&("extracting".into(), Some("chunking".into()))),
        "{stages:?}"
    );

    // Reprocess: run 2 replaces run 1's chunks only once it is indexed.
    let accepted = docs
        .reprocess(pb::ReprocessDocumentRequest {
            document_id: up.document_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    mnemo_projector::runner::wait_for(&db, &env.ns, accepted.sequence, Duration::from_secs(20))
        .await
        .unwrap();
    let old: i64 = db
        .query_one("SELECT count(*) FROM chunks WHERE run = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        old, 3,
        "the old run stays searchable while the new one runs"
    );
    process_run(&env, &agg, 2, &up.document_id, &CELL_TEXTS).await;
    let done = final_update(&env, "alice", &up.document_id, accepted.sequence).await;
    assert_eq!((done.stage, done.run), (pb::Stage::Indexed as i32, 2));
    mnemo_projector::runner::wait_for(&db, &env.ns, done.sequence, Duration::from_secs(20))
        .await
        .unwrap();
    let runs = db
        .query("SELECT DISTINCT run FROM chunks", &[])
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(),
        vec![2]
    );
}

/// The chunk and vector rows of the env's schema, in a stable order.
async fn chunk_rows(
    env: &TestEnv,
) -> (
    Vec<(String, i32, String, String)>,
    Vec<(String, String, Vec<u8>)>,
) {
    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let chunks = db
        .query(
            "SELECT chunk_id, run, text, tsv::text FROM chunks ORDER BY chunk_id, run",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let vectors = db
        .query(
            "SELECT chunk_id, model, vector FROM chunk_embeddings ORDER BY chunk_id, run, model",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    (chunks, vectors)
}

/// Big batches of chunks and vectors are written by bulk statements that
/// fail on a row already there, then again with conflict checks: applying
/// the same events under another checkpoint (every row stored already) must
/// neither fail nor change a row.
#[tokio::test]
async fn rows_already_stored_are_written_again_without_error_or_change() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let up = upload(&mut docs, "long.md", b"# Long\n\nMany short paragraphs.\n")
        .await
        .unwrap();
    let owner = mnemo_domain::OwnerId::new("alice").unwrap();
    let id: mnemo_domain::DocumentId = up.document_id.parse().unwrap();
    let agg = mnemo_domain::document::aggregate_id(&owner, &id);
    // Enough chunks for the bulk path when the whole log is one batch.
    let n = mnemo_projector::chunks::BULK_ROWS + 8;
    let texts: Vec<String> = (0..n)
        .map(|i| format!("Paragraph {i} about cells."))
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    process_run(&env, &agg, 1, &up.document_id, &texts).await;
    let done = final_update(&env, "alice", &up.document_id, 0).await;
    assert_eq!(done.stage, pb::Stage::Indexed as i32, "{}", done.message);
    let mut client = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    mnemo_projector::runner::wait_for(&client, &env.ns, done.sequence, Duration::from_secs(20))
        .await
        .unwrap();
    let before = chunk_rows(&env).await;
    assert_eq!((before.0.len(), before.1.len()), (n, n));

    let again = document_messages(&env).await;
    let through = again.last().map(|m| m.sequence).unwrap();
    let applied = mnemo_projector::batch::apply(
        &mut client,
        "a-second-reader",
        &[mnemo_projector::Projection::Chunks],
        &again,
        through,
    )
    .await
    .expect("rows already there are resolved, not an error");
    assert!(
        applied.events >= 6,
        "every event folded again: {}",
        applied.events
    );
    assert_eq!(chunk_rows(&env).await, before);
}

/// Waits until the read models have applied `sequence`.
async fn applied(env: &TestEnv, sequence: u64) -> bool {
    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let at = mnemo_projector::runner::wait_for(&db, &env.ns, sequence, Duration::from_secs(30))
        .await
        .unwrap();
    at >= sequence
}

#[tokio::test]
async fn a_standby_projector_takes_over_where_the_active_one_stopped() {
    let env = TestEnv::start_with(EnvOptions {
        run_projector: false,
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let first = TestEnvProjector::start(&env).await;
    let a = upload(&mut docs, "a.txt", b"first note").await.unwrap();
    assert!(applied(&env, a.sequence).await, "the first copy applies");
    // The second copy waits for the first one's lock.
    let second = TestEnvProjector::start(&env).await;
    drop(first);
    let last = upload_notes(&mut docs, 3).await;
    assert!(applied(&env, last).await, "the standby took over");
    let rows = documents_rows(&env).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|(_, stage, _)| stage == "uploaded"));
    drop(second);
}

#[tokio::test]
async fn an_undecodable_event_is_dead_lettered_and_the_rest_goes_on() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let a = upload(&mut docs, "a.txt", b"before").await.unwrap();
    assert!(applied(&env, a.sequence).await);
    // Garbage on a document subject (any client can publish raw bytes).
    let subject = format!(
        "{}.x.0190aaaa-0000-7000-8000-000000000000",
        env.ns.events_of("doc")
    );
    let garbage = env.publish_garbage(subject).await;
    let b = upload(&mut docs, "b.txt", b"after").await.unwrap();
    assert!(b.sequence > garbage);
    assert!(
        applied(&env, b.sequence).await,
        "the projector went past it"
    );
    assert_eq!(documents_rows(&env).await.len(), 2);
    let letters = mnemo_bus::dlq::list(&env.bus).await.unwrap();
    let letter = letters
        .iter()
        .find(|l| l.service == "projector")
        .expect("a projector dead letter");
    assert_eq!(letter.event_sequence, garbage);
    assert!(letter.reason.contains("no headers"), "{}", letter.reason);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_swaps_in_a_new_version_that_queries_never_see_half_built() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let up = upload(
            &mut docs,
            &format!("cells{i}.md"),
            b"# Cells\n\nMitochondria make ATP.\n",
        )
        .await
        .unwrap();
        ids.push(up.document_id);
    }
    let owner = mnemo_domain::OwnerId::new("alice").unwrap();
    for (i, id) in ids.iter().enumerate() {
        let agg = mnemo_domain::document::aggregate_id(&owner, &id.parse().unwrap());
        let texts: Vec<String> = (0..4)
            .map(|j| format!("chunk {j} of document {i}"))
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        process_run(&env, &agg, 1, id, &texts).await;
    }
    for id in &ids {
        let done = final_update(&env, "alice", id, 0).await;
        assert_eq!(done.stage, pb::Stage::Indexed as i32, "{}", done.message);
        assert!(applied(&env, done.sequence).await);
    }
    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let before = mnemo_projector::checksum::checksums(&db).await.unwrap();

    // A reader counts chunks all through the rebuild: always all of them.
    let reader = RowCounts::start(db, "chunks");
    let (report, progress) =
        rebuild_in_small_batches(&env.bus, mnemo_projector::Projection::Chunks).await;
    assert_eq!(reader.stop().await, vec![12], "a query saw a partial table");
    assert!(
        progress.len() > 2 && progress.windows(2).all(|w| w[0] <= w[1]),
        "{progress:?}"
    );
    assert_eq!(report.versions, vec![("chunks".to_owned(), 2)]);

    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    assert_eq!(
        mnemo_projector::checksum::checksums(&db).await.unwrap(),
        before
    );
    let scratch = mnemo_projector::rebuild::scratch_schema(&env.ns);
    assert!(
        !schema_exists(&db, &scratch).await,
        "the scratch schema is dropped after the swap"
    );
    // The live projector writes into the new version.
    let more = upload(&mut docs, "late.txt", b"late note").await.unwrap();
    assert!(applied(&env, more.sequence).await);
    assert_eq!(documents_rows(&env).await.len(), 4);
}

#[tokio::test]
async fn a_reader_behind_takes_full_batches_and_one_caught_up_waits_for_nothing() {
    use futures::StreamExt;
    let env = TestEnv::start_with(EnvOptions {
        run_projector: false,
        ..Default::default()
    })
    .await;
    // More messages than one pull of the ordered reader brings (500).
    let subject = format!("{}.x.backlog", env.ns.events_of("doc"));
    let mut acks = Vec::new();
    for _ in 0..1_200 {
        acks.push(
            env.bus
                .jetstream
                .publish(subject.clone(), "not an event".into())
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let mut messages =
        mnemo_projector::batch::read_from(&env.bus, mnemo_projector::Feed::Documents, 1)
            .await
            .unwrap();
    let first = messages.next().await.unwrap();
    let batch = mnemo_projector::batch::fill(&mut messages, first, 5_000).await;
    assert_eq!(batch.len(), 1_200, "a batch ended while more was pending");
    // Caught up: a new message is a batch of its own, at once.
    let last = env.publish_garbage(subject).await;
    let first = messages.next().await.unwrap();
    let batch = mnemo_projector::batch::fill(&mut messages, first, 5_000).await;
    assert_eq!(batch.len(), 1);
    let seq = batch[0].as_ref().unwrap().info().unwrap().stream_sequence;
    assert_eq!(seq, last);
}

/// Uploads a note through the API, retrying while NATS comes back (the
/// client reconnects by itself); returns the event's stream sequence.
async fn upload_when_back(docs: &mut mnemo_tests::Documents, name: &str) -> u64 {
    let mut last = None;
    for _ in 0..100 {
        match upload(docs, name, b"a note").await {
            Ok(r) => return r.sequence,
            Err(e) => {
                last = Some(e);
                // The broker is starting: try again shortly.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("NATS did not come back: {last:?}")
}

/// NATS restarts (a crash, an upgrade): the projector's ordered reader is
/// gone with the server, possibly without an error. The projector notices
/// (the stream holds events it is not given), says so in its log, reads
/// again from its checkpoint, and applies what comes next within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_applies_again_soon_after_nats_restarts() {
    let mut nats = mnemo_tests::PrivateNats::start();
    let env = TestEnv::start_with(EnvOptions {
        nats: Some(nats.nats()),
        ..Default::default()
    })
    .await;
    let db = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    let mut docs = env.documents("alice").await;
    let before = upload_when_back(&mut docs, "before.txt").await;
    let at = mnemo_projector::runner::wait_for(&db, &env.ns, before, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(at >= before);

    nats.restart();
    let after = upload_when_back(&mut docs, "after.txt").await;
    let appended = std::time::Instant::now();
    let at = mnemo_projector::runner::wait_for(&db, &env.ns, after, Duration::from_secs(30))
        .await
        .unwrap();
    let took = appended.elapsed();
    assert!(
        at >= after,
        "the projector never applied the event after the restart"
    );
    assert!(
        took < Duration::from_secs(10),
        "the projector took {took:?} to apply again after NATS restarted"
    );
    eprintln!("NATS restarted → projector applying again: {took:.1?} after the next append");
}

/// A database put in read-only mode (maintenance, a replica promoted the
/// wrong way): the projector's log says so — tokio-postgres alone prints
/// "db error" — and the error counts as an outage (wait and retry), never
/// as a poison event to dead-letter.
#[tokio::test]
async fn a_read_only_database_is_named_in_the_error_and_waited_out() {
    let env = TestEnv::start_with(EnvOptions {
        run_api: false,
        run_projector: false,
        ..Default::default()
    })
    .await;
    let client = mnemo_projector::db::connect(&database_url(), &env.ns)
        .await
        .unwrap();
    client
        .batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    let e = mnemo_projector::batch::lock_checkpoint(&client, "t")
        .await
        .unwrap_err();
    let said = e.to_string();
    assert!(
        said.contains("25006") && said.contains("read-only"),
        "{said}"
    );
    assert!(e.is_transient(), "{said}");
}

/// A crash between a batch's commit and its `MarkIndexed` (or that append
/// failing while NATS elects a leader) left the document at "embedding"
/// for good: no later event of its own made it a candidate again. Found on
/// the 3-node cluster (issue 20); the projector now finishes such
/// documents whenever it starts reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_document_whose_mark_indexed_never_ran_is_indexed_when_the_projector_starts() {
    use futures::StreamExt;
    use mnemo_projector::batch::{self, EventMessage};
    use mnemo_projector::{Feed, Projection};

    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        run_projector: false,
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let id = upload(
        &mut docs,
        "kiwi.md",
        b"# Kiwi\n\nThe kiwi note, embedded.\n",
    )
    .await
    .unwrap()
    .document_id;
    let mut progress = env.progress("alice").await;
    let mut updates = progress
        .watch(mnemo_tests::watch_document(&id, 0, true))
        .await
        .unwrap()
        .into_inner();
    loop {
        let u = tokio::time::timeout(Duration::from_secs(120), updates.message())
            .await
            .expect("its vectors come")
            .unwrap()
            .expect("the stream goes on");
        if u.event_type == "ChunksEmbedded" {
            break;
        }
    }

    // What the projector commits for those events, and nothing of what
    // follows the commit: a crash right there.
    let last = mnemo_tests::last_sequence(&env.bus).await;
    let mut messages = batch::read_from(&env.bus, Feed::Documents, 1)
        .await
        .unwrap();
    let mut decoded = Vec::new();
    while let Some(m) = messages.next().await {
        let m = m.unwrap();
        let seq = m.info().unwrap().stream_sequence;
        decoded.push(
            EventMessage::decode(
                &env.bus.keys,
                &m.subject,
                seq,
                m.headers.as_ref(),
                &m.payload,
            )
            .await
            .unwrap(),
        );
        if seq >= last {
            break;
        }
    }
    let mut db = mnemo_projector::db::connect(&env.database_url, &env.ns)
        .await
        .unwrap();
    let key = Feed::Documents.checkpoint_name(&env.ns);
    batch::apply(&mut db, &key, &Projection::OF_DOCUMENTS, &decoded, last)
        .await
        .unwrap();
    assert_eq!(stage_of(&db, &id).await, "embedding");

    // The projector starts after the checkpoint, where nothing names the
    // document any more, and still declares it indexed.
    let _projector = TestEnvProjector::start(&env).await;
    loop {
        let u = tokio::time::timeout(Duration::from_secs(60), updates.message())
            .await
            .expect("the document is declared indexed")
            .unwrap()
            .expect("the stream goes on");
        if u.stage == pb::Stage::Indexed as i32 {
            break;
        }
    }
    let indexed_at = mnemo_tests::last_sequence(&env.bus).await;
    mnemo_projector::runner::wait_for(&db, &env.ns, indexed_at, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(stage_of(&db, &id).await, "indexed");
}

/// The read model's stage of a document.
async fn stage_of(db: &tokio_postgres::Client, id: &str) -> String {
    let id: uuid::Uuid = id.parse().unwrap();
    db.query_one("SELECT stage FROM documents WHERE document_id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}
