//! The projector: exactly-once effect under redelivery.

use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_tests::{database_url, eventually, upload, TestEnv};

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
    let mut last = 0;
    for i in 0..5 {
        last = upload(
            &mut docs,
            &format!("n{i}.txt"),
            format!("note {i}").as_bytes(),
        )
        .await
        .unwrap()
        .sequence;
    }
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

    // Forget the consumer: JetStream redelivers every event from sequence 1.
    let name = mnemo_projector::runner::consumer_name(&env.ns);
    env.bus.events.delete_consumer(&name).await.unwrap();
    let second = mnemo_tests::TestEnvProjector::start(&env).await;
    let consumer_done = eventually(Duration::from_secs(20), || async {
        let Ok(mut c) = env
            .bus
            .events
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
            .await
        else {
            return false;
        };
        c.info()
            .await
            .is_ok_and(|i| i.delivered.stream_sequence >= last && i.num_ack_pending == 0)
    })
    .await;
    assert!(
        consumer_done,
        "the redelivered events were not all acknowledged"
    );
    drop(second);
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

#[tokio::test]
async fn stored_chunks_become_searchable_and_the_run_is_declared_indexed() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let up = upload(
        &mut docs,
        "cells.md",
        b"# Cells\n\nMitochondria make ATP.\n",
    )
    .await
    .unwrap();
    let owner = mnemo_domain::OwnerId::new("alice").unwrap();
    let id: mnemo_domain::DocumentId = up.document_id.parse().unwrap();
    let agg = mnemo_domain::document::aggregate_id(&owner, &id);
    let texts = [
        "Mitochondria make ATP for the cell.",
        "Ribosomes build proteins from messenger RNA.",
        "The membrane keeps the inside apart.",
    ];
    process_run(&env, &agg, 1, &up.document_id, &texts).await;

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
        .query("SELECT ordinal, page_start, array_length(embedding, 1), model, embedding FROM chunks ORDER BY ordinal", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.get::<_, i32>(0), i as i32);
        assert_eq!(r.get::<_, i32>(1), i as i32 + 1);
        assert_eq!(r.get::<_, Option<i32>>(2), Some(2));
        assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("m@1"));
        assert_eq!(r.get::<_, Option<Vec<f32>>>(4), Some(vec![i as f32, 0.5]));
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
    assert!(
        stages.contains(&("uploaded".into(), Some("chunking".into()))),
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
    process_run(&env, &agg, 2, &up.document_id, &texts).await;
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
