//! Watching a batch or all of an owner's documents: counts to terminal
//! states, resuming from any sequence, surviving an API restart, slow
//! watchers, and owners that never see each other.
//!
//! Apart from the pipeline test, events are appended through the document
//! aggregate by the test itself (playing the pipeline services), with the
//! projector off, so each test knows every sequence it should see.

use std::collections::HashMap;
use std::time::Duration;

use mnemo_bus::{CommandExecutor, RetryPolicy};
use mnemo_domain::document::{aggregate_id, ChunkRecord, ChunkVector};
use mnemo_domain::{Document, DocumentCommand, DocumentId, OwnerId, Sha256Hex, Stage};
use mnemo_proto::v1 as pb;
use mnemo_tests::{
    blank_pdf, corpus_pdf, upload_requests_with, watch_all, watch_batch, watch_document, Documents,
    EnvOptions, Progress, TestEnv,
};
use tonic::{Code, Status, Streaming};

/// How long any single update may take to arrive.
const UPDATE_WITHIN: Duration = Duration::from_secs(20);

fn quiet_env() -> EnvOptions {
    EnvOptions {
        run_projector: false,
        ..Default::default()
    }
}

/// Uploads `bytes` as `filename` into `batch`.
async fn upload_into(
    docs: &mut Documents,
    batch: &str,
    filename: &str,
    bytes: &[u8],
) -> pb::UploadResponse {
    let reqs = upload_requests_with(
        pb::UploadMetadata {
            filename: filename.into(),
            batch_id: batch.into(),
            new_document: true,
            ..Default::default()
        },
        bytes,
    );
    let r = docs
        .upload(futures::stream::iter(reqs))
        .await
        .expect("upload")
        .into_inner();
    assert_eq!(r.batch_id, batch);
    r
}

fn small_pdf() -> Vec<u8> {
    corpus_pdf("office_libreoffice_trivial.pdf")
}

/// Plays the pipeline services for one owner: appends results through the
/// aggregate and returns each appended message's stream sequence.
struct Stages {
    exec: CommandExecutor<Document>,
    owner: OwnerId,
}

impl Stages {
    fn new(env: &TestEnv, owner: &str) -> Self {
        Self {
            exec: env.executor(100, RetryPolicy::default()),
            owner: OwnerId::new(owner).unwrap(),
        }
    }

    async fn run(&self, document_id: &str, command: DocumentCommand) -> u64 {
        let id: DocumentId = document_id.parse().unwrap();
        let done = self
            .exec
            .execute(&aggregate_id(&self.owner, &id), command, &HashMap::new())
            .await
            .expect("the command is accepted");
        done.appended.expect("the command appends").1
    }

    async fn pages(&self, document_id: &str, run: u32, done: u32) -> u64 {
        self.run(
            document_id,
            DocumentCommand::RecordExtractionProgress {
                run,
                pages_done: done,
                pages_total: done.max(4),
            },
        )
        .await
    }

    async fn extracted(&self, document_id: &str, run: u32) -> u64 {
        self.run(
            document_id,
            DocumentCommand::RecordTextExtracted {
                run,
                text_sha256: Sha256Hex::from_digest(&[run as u8; 32]),
                pages: 4,
                chars: 1000,
                extractor: "pdf-rs".into(),
                pages_failed: 0,
            },
        )
        .await
    }

    /// Text extracted, two chunks, their vectors, indexed: the rest of a run.
    async fn index(&self, document_id: &str, run: u32) -> Vec<u64> {
        let ids = ["c0", "c1"].map(|c| format!("{document_id}-{run}-{c}"));
        let chunks = ids
            .iter()
            .enumerate()
            .map(|(i, id)| ChunkRecord {
                chunk_id: id.clone(),
                ordinal: i as u32,
                text: format!("chunk {i}"),
                page_start: 1,
                page_end: 1,
                tokens: 3,
            })
            .collect();
        let vectors = ids
            .iter()
            .map(|id| ChunkVector {
                chunk_id: id.clone(),
                vector: vec![0.5, 0.5],
            })
            .collect();
        vec![
            self.extracted(document_id, run).await,
            self.run(
                document_id,
                DocumentCommand::RecordChunks {
                    run,
                    batch: 0,
                    last: true,
                    chunks,
                },
            )
            .await,
            self.run(
                document_id,
                DocumentCommand::RecordEmbeddings {
                    run,
                    model: "test".into(),
                    dims: 2,
                    vectors,
                },
            )
            .await,
            self.run(document_id, DocumentCommand::MarkIndexed { run })
                .await,
        ]
    }

    async fn fail(&self, document_id: &str, run: u32) -> u64 {
        self.run(
            document_id,
            DocumentCommand::RecordFailure {
                run,
                stage: Stage::Extracting,
                reason: "damaged PDF: test".into(),
                retryable: false,
            },
        )
        .await
    }

    async fn cancel(&self, document_id: &str) -> u64 {
        self.run(
            document_id,
            DocumentCommand::Cancel {
                reason: "enough".into(),
            },
        )
        .await
    }

    async fn reprocess(&self, document_id: &str) -> u64 {
        self.run(
            document_id,
            DocumentCommand::Reprocess {
                reason: "again".into(),
            },
        )
        .await
    }
}

/// Reads a stream to its end: every update, and the error status it ended
/// with (None: it ended cleanly).
async fn collect(
    stream: &mut Streaming<pb::ProgressUpdate>,
) -> (Vec<pb::ProgressUpdate>, Option<Status>) {
    let mut updates = Vec::new();
    loop {
        match tokio::time::timeout(UPDATE_WITHIN, stream.message())
            .await
            .expect("the stream moves")
        {
            Ok(Some(u)) => updates.push(u),
            Ok(None) => return (updates, None),
            Err(status) => return (updates, Some(status)),
        }
    }
}

/// The next `n` updates.
async fn take(stream: &mut Streaming<pb::ProgressUpdate>, n: usize) -> Vec<pb::ProgressUpdate> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let u = tokio::time::timeout(UPDATE_WITHIN, stream.message())
            .await
            .expect("an update in time")
            .expect("the stream is fine")
            .expect("the stream goes on");
        out.push(u);
    }
    out
}

/// Updates until (and including) the one at `sequence`.
async fn until(
    stream: &mut Streaming<pb::ProgressUpdate>,
    sequence: u64,
) -> Vec<pb::ProgressUpdate> {
    let mut out: Vec<pb::ProgressUpdate> = Vec::new();
    while out.last().is_none_or(|u| u.sequence < sequence) {
        out.extend(take(stream, 1).await);
    }
    out
}

async fn watch(client: &mut Progress, req: pb::WatchRequest) -> Streaming<pb::ProgressUpdate> {
    client.watch(req).await.expect("watch").into_inner()
}

fn sequences(updates: &[pb::ProgressUpdate]) -> Vec<u64> {
    updates.iter().map(|u| u.sequence).collect()
}

fn summary(u: &pb::ProgressUpdate) -> (u32, u32, u32, u32, bool) {
    let s = u.summary.as_ref().expect("a scoped update has a summary");
    (s.total, s.done, s.failed, s.cancelled, s.finished)
}

/// Per document, the fraction never goes back within a run.
fn assert_monotonic(updates: &[pb::ProgressUpdate]) {
    let mut last: HashMap<(&str, u32), f64> = HashMap::new();
    for u in updates {
        let prev = last.insert((&u.document_id, u.run), u.fraction);
        assert!(
            prev.is_none_or(|p| p <= u.fraction),
            "{} went back from {prev:?} to {} at {}",
            u.document_id,
            u.fraction,
            u.sequence
        );
    }
    let seqs = sequences(updates);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn a_batch_watch_follows_real_documents_through_the_pipeline() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let mut progress = env.progress("alice").await;
    let batch = "course-week-1";
    let mut members = Vec::new();
    for (name, bytes) in [
        ("trivial.pdf", corpus_pdf("office_libreoffice_trivial.pdf")),
        ("pdf24.pdf", corpus_pdf("gs906_pdf24.pdf")),
        ("scan.pdf", blank_pdf()),
    ] {
        members.push(
            upload_into(&mut docs, batch, name, &bytes)
                .await
                .document_id,
        );
    }
    let outsider = upload_into(&mut docs, "another", "other.pdf", &small_pdf()).await;

    let mut stream = watch(&mut progress, watch_batch(batch, 0, false)).await;
    let (updates, status) = collect(&mut stream).await;
    assert!(status.is_none(), "{status:?}");
    assert_monotonic(&updates);
    assert!(updates.iter().all(|u| members.contains(&u.document_id)));
    assert!(updates
        .iter()
        .all(|u| u.document_id != outsider.document_id));
    assert!(updates.iter().all(|u| u.batch_id == batch));
    let last = updates.last().expect("updates");
    assert_eq!(summary(last), (3, 2, 1, 0, true));
    assert!((last.summary.as_ref().unwrap().fraction - 1.0).abs() < 1e-9);
    // Finished only at the end.
    assert!(updates[..updates.len() - 1].iter().all(|u| !summary(u).4));
    let scan = updates
        .iter()
        .rfind(|u| u.filename == "scan.pdf")
        .expect("the blank scan's updates");
    assert_eq!(scan.stage, pb::Stage::Failed as i32);
    assert!(scan.message.contains("no text layer"), "{}", scan.message);
    let pdf24 = updates.iter().rfind(|u| u.filename == "pdf24.pdf").unwrap();
    assert_eq!(pdf24.stage, pb::Stage::Indexed as i32);
    assert!(pdf24.pages_total > 1 && pdf24.pages_done == pdf24.pages_total);
    assert!(pdf24.chunks_total > 0 && pdf24.chunks_embedded == pdf24.chunks_total);
    // The document scope says the same about one of them.
    let mut one = watch(&mut progress, watch_document(&members[1], 0, false)).await;
    let (alone, _) = collect(&mut one).await;
    assert!(alone.iter().all(|u| u.summary.is_none()));
    assert_eq!(alone.last().map(|u| u.sequence), Some(pdf24.sequence));
}

/// Uploads three documents into batch "b" and one into "c", and drives them
/// to every kind of ending, with a reprocess and a late result along the
/// way. Returns (batch members, the outsider).
async fn drive_a_mixed_batch(env: &TestEnv, docs: &mut Documents) -> (Vec<String>, String) {
    let stages = Stages::new(env, "alice");
    let mut members = Vec::new();
    for name in ["a.pdf", "b.pdf", "c.pdf"] {
        members.push(upload_into(docs, "b", name, &small_pdf()).await.document_id);
    }
    let outsider = upload_into(docs, "c", "d.pdf", &small_pdf())
        .await
        .document_id;
    let [a, b, c] = [&members[0], &members[1], &members[2]];
    stages.pages(a, 1, 1).await;
    stages.pages(&outsider, 1, 1).await;
    stages.pages(b, 1, 2).await;
    stages.index(a, 1).await;
    stages.fail(b, 1).await;
    stages.cancel(c).await;
    // Indexed, then reprocessed and indexed again.
    stages.reprocess(a).await;
    stages.pages(a, 2, 3).await;
    stages.index(a, 2).await;
    stages.fail(&outsider, 1).await;
    (members, outsider)
}

#[tokio::test]
async fn batch_and_all_watches_resume_from_any_sequence_without_gaps_or_repeats() {
    let env = TestEnv::start_with(quiet_env()).await;
    let mut docs = env.documents("alice").await;
    let mut progress = env.progress("alice").await;
    let (members, outsider) = drive_a_mixed_batch(&env, &mut docs).await;

    let (batch, status) =
        collect(&mut watch(&mut progress, watch_batch("b", 0, false)).await).await;
    assert!(status.is_none(), "{status:?}");
    assert_monotonic(&batch);
    assert!(batch.iter().all(|u| members.contains(&u.document_id)));
    assert_eq!(summary(batch.last().unwrap()), (3, 1, 1, 1, true));
    let reprocessed = batch
        .iter()
        .find(|u| u.event_type == "ReprocessRequested")
        .unwrap();
    assert_eq!(summary(reprocessed), (3, 0, 1, 1, false));

    let (all, status) = collect(&mut watch(&mut progress, watch_all(0, false)).await).await;
    assert!(status.is_none(), "{status:?}");
    assert_monotonic(&all);
    assert_eq!(summary(all.last().unwrap()), (4, 1, 2, 1, true));
    assert!(all.iter().any(|u| u.document_id == outsider));
    // Every message of the owner is one update (the stream holds nothing else).
    assert_eq!(all.len() as u64, env.event_count().await);

    // Resuming after any update gets exactly the rest, folded the same.
    for (scope, full) in [("batch", &batch), ("all", &all)] {
        for k in 0..full.len() {
            let from = full[k].sequence;
            let req = if scope == "batch" {
                watch_batch("b", from, false)
            } else {
                watch_all(from, false)
            };
            let (rest, status) = collect(&mut watch(&mut progress, req).await).await;
            assert!(status.is_none(), "{status:?}");
            assert_eq!(rest, full[k + 1..], "{scope} resumed after {from}");
        }
    }
}

#[tokio::test]
async fn a_document_joining_a_finished_batch_reopens_it_for_followers() {
    let env = TestEnv::start_with(quiet_env()).await;
    let mut docs = env.documents("alice").await;
    let mut progress = env.progress("alice").await;
    let stages = Stages::new(&env, "alice");
    let first = upload_into(&mut docs, "b", "a.pdf", &small_pdf()).await;
    let end = stages.cancel(&first.document_id).await;
    let mut following = watch(&mut progress, watch_batch("b", 0, true)).await;
    let seen = until(&mut following, end).await;
    assert_eq!(summary(seen.last().unwrap()), (1, 0, 0, 1, true));

    let second = upload_into(&mut docs, "b", "b.pdf", &small_pdf()).await;
    let joined = take(&mut following, 1).await.remove(0);
    assert_eq!(
        (joined.document_id.as_str(), joined.sequence),
        (second.document_id.as_str(), second.sequence)
    );
    assert_eq!(summary(&joined), (2, 0, 0, 1, false));
    let done = stages.fail(&second.document_id, 1).await;
    let last = until(&mut following, done).await.pop().unwrap();
    assert_eq!(summary(&last), (2, 0, 1, 1, true));

    // Without follow a finished batch ends at once; an unknown one is not found.
    let (nothing, status) =
        collect(&mut watch(&mut progress, watch_batch("b", done, false)).await).await;
    assert!(nothing.is_empty() && status.is_none());
    let err = progress
        .watch(watch_batch("nope", 0, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = progress.watch(watch_batch("", 0, false)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = progress
        .watch(pb::WatchRequest {
            scope: None,
            from_sequence: 0,
            follow: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// Parses "… resume with from_sequence=N" out of a status.
fn resume_point(status: &Status) -> u64 {
    status
        .message()
        .rsplit("from_sequence=")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume point in {status:?}"))
}

/// Watches until the API answers (it may still be starting).
async fn rewatch(client: &mut Progress, req: pb::WatchRequest) -> Streaming<pb::ProgressUpdate> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.watch(req.clone()).await {
            Ok(s) => return s.into_inner(),
            Err(s) if s.code() == Code::Unavailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(s) => panic!("watch after the restart: {s:?}"),
        }
    }
}

#[tokio::test]
async fn watch_survives_an_api_restart_by_resuming_from_its_last_sequence() {
    let mut env = TestEnv::start_with(quiet_env()).await;
    let mut docs = env.documents("alice").await;
    let mut progress = env.progress("alice").await;
    let stages = Stages::new(&env, "alice");
    let a = upload_into(&mut docs, "b", "a.pdf", &small_pdf()).await;
    let b = upload_into(&mut docs, "b", "b.pdf", &small_pdf()).await;
    let p1 = stages.pages(&a.document_id, 1, 1).await;

    // Three kinds of watcher are open when the API stops.
    let mut batch = watch(&mut progress, watch_batch("b", 0, false)).await;
    let mut all = watch(&mut progress, watch_all(0, true)).await;
    let mut one = watch(&mut progress, watch_document(&a.document_id, 0, true)).await;
    let mut got_batch = until(&mut batch, p1).await;
    let mut got_all = until(&mut all, p1).await;
    let mut got_one = until(&mut one, p1).await;

    // Stopping ends every stream with where to resume, instead of hanging.
    env.stop_api().await;
    for (stream, got) in [
        (&mut batch, &got_batch),
        (&mut all, &got_all),
        (&mut one, &got_one),
    ] {
        let (rest, status) = collect(stream).await;
        assert!(rest.is_empty());
        let status = status.expect("the stream ends with a status");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(resume_point(&status), got.last().unwrap().sequence);
    }

    // Events keep coming while the API is down…
    stages.pages(&a.document_id, 1, 3).await;
    stages.fail(&b.document_id, 1).await;
    env.start_api().await;
    // …and after it is back.
    let mut batch = rewatch(
        &mut progress,
        watch_batch("b", got_batch.last().unwrap().sequence, false),
    )
    .await;
    let mut all = rewatch(
        &mut progress,
        watch_all(got_all.last().unwrap().sequence, true),
    )
    .await;
    let mut one = rewatch(
        &mut progress,
        watch_document(&a.document_id, got_one.last().unwrap().sequence, true),
    )
    .await;
    let end = *stages.index(&a.document_id, 1).await.last().unwrap();
    let (rest, status) = collect(&mut batch).await;
    assert!(status.is_none(), "{status:?}");
    got_batch.extend(rest);
    got_all.extend(until(&mut all, end).await);
    got_one.extend(until(&mut one, end).await);

    // The pieces are exactly what an uninterrupted watch sees.
    let (whole_batch, _) =
        collect(&mut watch(&mut progress, watch_batch("b", 0, false)).await).await;
    let (whole_all, _) = collect(&mut watch(&mut progress, watch_all(0, false)).await).await;
    let (whole_one, _) =
        collect(&mut watch(&mut progress, watch_document(&a.document_id, 0, false)).await).await;
    assert_eq!(got_batch, whole_batch);
    assert_eq!(got_all, whole_all);
    assert_eq!(got_one, whole_one);
    assert_eq!(summary(got_batch.last().unwrap()), (2, 1, 1, 0, true));
}

#[tokio::test]
async fn a_slow_watcher_is_told_to_resume_and_holds_up_nobody() {
    // A queue of 64 live events: the fast watcher has that much slack when
    // the box is busy (the suite runs in parallel); the slow one, which
    // reads nothing, still overflows it many times over.
    let env = TestEnv::start_with(EnvOptions {
        run_projector: false,
        watch_queue: Some(64),
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let stages = Stages::new(&env, "alice");
    let a = upload_into(&mut docs, "b", "a.pdf", &small_pdf()).await;
    // A client that stops reading: a tiny HTTP/2 window, so the server's
    // buffers fill after a few updates and its hub queue after a few more.
    let mut slow = env.progress_with_window("alice", 1024).await;
    let mut fast = env.progress("alice").await;
    let mut slow_stream = watch(&mut slow, watch_all(0, true)).await;
    let mut fast_stream = watch(&mut fast, watch_all(0, true)).await;
    let first = take(&mut slow_stream, 1).await;
    take(&mut fast_stream, 1).await;

    const EVENTS: u32 = 600;
    let mut last = 0;
    for p in 1..=EVENTS {
        last = stages.pages(&a.document_id, 1, p).await;
    }
    // The fast watcher got everything while the slow one read nothing.
    let fast_got = until(&mut fast_stream, last).await;
    assert_eq!(fast_got.len() as u32, EVENTS);

    let (mut slow_got, status) = collect(&mut slow_stream).await;
    let status = status.expect("the slow watcher is cut off");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!((slow_got.len() as u32) < EVENTS);
    let resume = resume_point(&status);
    assert_eq!(resume, slow_got.last().unwrap_or(&first[0]).sequence);
    // Resuming from there misses nothing.
    let mut again = watch(&mut slow, watch_all(resume, true)).await;
    slow_got.extend(until(&mut again, last).await);
    assert_eq!(sequences(&slow_got), sequences(&fast_got));
}

#[tokio::test]
async fn another_owners_batch_and_documents_never_appear() {
    let env = TestEnv::start_with(quiet_env()).await;
    let mut alice_docs = env.documents("alice").await;
    let alice = Stages::new(&env, "alice");
    // An owner id that would address alice's subjects if pasted into one.
    let hostile_owner = "alice.>";
    let mut hostile_docs = env.documents(hostile_owner).await;
    let mut hostile = env.progress(hostile_owner).await;
    let hostile_stages = Stages::new(&env, hostile_owner);

    let mine = upload_into(&mut alice_docs, "shared", "a.pdf", &small_pdf()).await;
    let err = hostile
        .watch(watch_batch("shared", 0, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = hostile
        .watch(watch_document(&mine.document_id, 0, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut batch = watch(&mut hostile, watch_batch("shared", 0, true)).await;
    let mut all = watch(&mut hostile, watch_all(0, true)).await;
    alice.pages(&mine.document_id, 1, 1).await;
    alice.index(&mine.document_id, 1).await;
    // The hostile owner's own document, in a batch of the same name, comes
    // after all of alice's events: if any of hers leaked, it came first.
    let theirs = upload_into(&mut hostile_docs, "shared", "x.pdf", &small_pdf()).await;
    let end = hostile_stages.pages(&theirs.document_id, 1, 1).await;
    for stream in [&mut batch, &mut all] {
        let got = until(stream, end).await;
        assert_eq!(sequences(&got), vec![theirs.sequence, end]);
        assert!(got.iter().all(|u| u.document_id == theirs.document_id));
        assert_eq!(summary(got.last().unwrap()).0, 1);
    }
    // Alice's own view is unaffected.
    let mut alice_progress = env.progress("alice").await;
    let (hers, _) = collect(&mut watch(&mut alice_progress, watch_all(0, false)).await).await;
    assert!(hers.iter().all(|u| u.document_id == mine.document_id));
    assert_eq!(summary(hers.last().unwrap()), (1, 1, 0, 0, true));
}
