//! The embedding backfill, end to end: a second model's vectors from the
//! event log, paused and resumed, invisible to the learner's progress, and
//! search switched to them without a restart.

use std::future::pending;
use std::time::Duration;

use mnemo_embedder::backfill::{self, BackfillOptions, BackfillProgress};
use mnemo_proto::v1 as pb;
use mnemo_tests::{
    backfill_model_dir, indexed, load_model_from, upload, watch_all, EnvOptions, SearchClient,
    TestEnv,
};

const CELLS: &[u8] = b"# Cell biology\n\nMitochondria produce most of the cell's ATP through oxidative phosphorylation.\n\nRibosomes translate messenger RNA into proteins.\n";
const HISTORY: &[u8] =
    b"# History\n\nThe Treaty of Westphalia ended the Thirty Years' War in 1648.\n";
const OCEANS: &[u8] =
    b"# Oceans\n\nCoral reefs bleach when warm water drives out the algae living in them.\n";

async fn models(admin: &SearchClient, seen: u64) -> pb::ModelsResponse {
    admin
        .clone()
        .get_models(pb::GetModelsRequest { min_sequence: seen })
        .await
        .expect("GetModels")
        .into_inner()
}

fn coverage<'a>(r: &'a pb::ModelsResponse, model: &str) -> Option<&'a pb::ModelCoverage> {
    r.models.iter().find(|m| m.model == model)
}

async fn vector_search(client: &SearchClient, query: &str, seen: u64) -> pb::SearchResponse {
    client
        .clone()
        .search(pb::SearchRequest {
            query: query.into(),
            k: 3,
            document_ids: vec![],
            topic: String::new(),
            mode: pb::SearchMode::Vector as i32,
            min_sequence: seen,
        })
        .await
        .expect("search")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_adds_a_second_models_vectors_resumes_and_search_switches_to_them() {
    let other = load_model_from(backfill_model_dir());
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        extra_models: vec![other.clone()],
        ..Default::default()
    })
    .await;
    let other_id = other.model_id().to_owned();
    // `UseModel` takes a model's name (its id without `@hash`) too.
    let other_name = other_id.split('@').next().unwrap_or_default().to_owned();
    let mut docs = env.documents("alice").await;
    let cells = upload(&mut docs, "cells.md", CELLS).await.unwrap();
    let history = upload(&mut docs, "history.md", HISTORY).await.unwrap();
    let seen = indexed(&env, "alice", &cells.document_id)
        .await
        .max(indexed(&env, "alice", &history.document_id).await);

    // From here on, alice's progress must not move for a backfill.
    let mut watch = env
        .progress("alice")
        .await
        .watch(watch_all(seen, true))
        .await
        .expect("watch")
        .into_inner();

    // Before: the pipeline's model serves; the second has no vectors, so
    // switching to it is refused with the reason.
    let admin = env.search_admin().await;
    let before = models(&admin, seen).await;
    assert_ne!(before.served, other_id);
    assert!(before.indexed_chunks >= 2, "{before:?}");
    assert_eq!(
        coverage(&before, &before.served).map(|m| m.chunks),
        Some(before.indexed_chunks)
    );
    assert_eq!(
        coverage(&before, &other_id).map(|m| (m.chunks, m.loaded)),
        Some((0, true))
    );
    let refused = admin
        .clone()
        .use_model(pb::UseModelRequest {
            model: other_name.clone(),
            force: false,
        })
        .await
        .expect_err("no vectors yet");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(refused.message().contains("backfill"), "{refused:?}");
    let alice = env.search("alice").await;
    let not_admin = alice
        .clone()
        .get_models(pb::GetModelsRequest { min_sequence: 0 })
        .await
        .expect_err("operators only");
    assert_eq!(not_admin.code(), tonic::Code::PermissionDenied);

    let before_doc = docs
        .get(pb::GetDocumentRequest {
            document_id: cells.document_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();

    // A first run pauses after one document...
    let first = backfill::run(
        &env.bus,
        other.clone(),
        BackfillOptions {
            limit: Some(1),
            ..Default::default()
        },
        |_| {},
        pending(),
    )
    .await
    .expect("first backfill run");
    assert_eq!(first.documents, 1, "{first:?}");
    assert!(!first.finished, "{first:?}");
    assert!(first.done < first.total, "{first:?}");

    // ...and the next resumes after it: only the other document, with
    // progress reported along the way.
    let mut reports: Vec<BackfillProgress> = Vec::new();
    let second = backfill::run(
        &env.bus,
        other.clone(),
        BackfillOptions::default(),
        |p| reports.push(p.clone()),
        pending(),
    )
    .await
    .expect("second backfill run");
    assert!(second.finished, "{second:?}");
    assert_eq!(second.documents, 1, "{second:?}");
    assert!(
        second.resumed_at >= first.done && second.resumed_at > 0,
        "{second:?}"
    );
    assert_eq!(second.done, second.total);
    assert_eq!(first.chunks + second.chunks, before.indexed_chunks);
    assert!(!reports.is_empty() && reports.last() == Some(&second));

    // Both models now cover everything; the switch goes through.
    let after = models(&admin, second.done).await;
    assert_eq!(
        coverage(&after, &other_id).map(|m| (m.documents, m.chunks)),
        Some((after.indexed_documents, after.indexed_chunks)),
        "{after:?}"
    );
    let switched = admin
        .clone()
        .use_model(pb::UseModelRequest {
            model: other_name.clone(),
            force: false,
        })
        .await
        .expect("UseModel")
        .into_inner();
    assert_eq!(switched.served, other_id);
    let r = vector_search(&alice, "how do cells make energy", second.done).await;
    assert_eq!(r.model, other_id, "{r:?}");
    assert_eq!(
        r.hits.first().map(|h| h.document_id.as_str()),
        Some(cells.document_id.as_str()),
        "{r:?}"
    );

    // A document indexed after the switch has only the pipeline's vectors:
    // it joins the served model's side once a backfill reaches it.
    let oceans = upload(&mut docs, "oceans.md", OCEANS).await.unwrap();
    let oceans_seen = indexed(&env, "alice", &oceans.document_id).await;
    let r = vector_search(&alice, "coral reef bleaching", oceans_seen).await;
    assert!(
        r.hits.iter().all(|h| h.document_id != oceans.document_id),
        "not backfilled yet: {r:?}"
    );
    let third = backfill::run(
        &env.bus,
        other.clone(),
        BackfillOptions::default(),
        |_| {},
        pending(),
    )
    .await
    .expect("third backfill run");
    assert_eq!(third.documents, 1, "{third:?}");
    let r = vector_search(&alice, "coral reef bleaching", third.done).await;
    assert_eq!(
        r.hits.first().map(|h| h.document_id.as_str()),
        Some(oceans.document_id.as_str()),
        "{r:?}"
    );

    // Starting over replays from sequence 1 and finds nothing missing.
    let again = backfill::run(
        &env.bus,
        other.clone(),
        BackfillOptions {
            restart: true,
            ..Default::default()
        },
        |_| {},
        pending(),
    )
    .await
    .expect("restarted backfill");
    assert!(again.finished && again.resumed_at == 0, "{again:?}");
    assert_eq!((again.documents, again.skipped), (0, 3), "{again:?}");

    // Progress saw oceans.md go through the pipeline and the marker upload,
    // and nothing of any backfill: not of the two documents indexed before
    // the watch began, nor of oceans.md after it was indexed.
    let marker = upload(&mut docs, "marker.md", HISTORY).await.unwrap();
    loop {
        let u = tokio::time::timeout(Duration::from_secs(60), watch.message())
            .await
            .expect("progress keeps coming")
            .expect("watch stream")
            .expect("an update");
        if u.document_id == marker.document_id {
            break;
        }
        assert!(
            u.document_id == oceans.document_id && u.sequence <= oceans_seen,
            "a backfill moved progress: {u:?}"
        );
    }
    // Nor did it move the document's own `updated_at` / `sequence`.
    let after_doc = docs
        .get(pb::GetDocumentRequest {
            document_id: cells.document_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        (after_doc.updated_at, after_doc.sequence, after_doc.stage),
        (before_doc.updated_at, before_doc.sequence, before_doc.stage)
    );

    // Replays embed one text per call: the same text, the same vector.
    let text = String::from_utf8_lossy(CELLS).into_owned();
    let once = other.embed(std::slice::from_ref(&text)).expect("embed");
    let again = other.embed(std::slice::from_ref(&text)).expect("embed");
    assert_eq!(once, again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_backfill_of_the_same_model_is_refused_while_one_runs() {
    use async_nats::jetstream::consumer::pull;
    let other = load_model_from(backfill_model_dir());
    let env = TestEnv::start_with(EnvOptions {
        run_api: false,
        ..Default::default()
    })
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn({
        let (bus, model) = (env.bus.clone(), other.clone());
        async move {
            let following = BackfillOptions {
                follow: true,
                ..Default::default()
            };
            backfill::run(&bus, model, following, |_| {}, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    // The first one is running once its consumer has a pull waiting.
    let name = env
        .bus
        .namespace
        .consumer(&backfill::consumer_service(other.model_id()));
    let pulling = mnemo_tests::eventually(Duration::from_secs(30), || async {
        match env.bus.events.get_consumer::<pull::Config>(&name).await {
            Ok(c) => c.get_info().await.is_ok_and(|i| i.num_waiting > 0),
            Err(_) => false,
        }
    })
    .await;
    assert!(pulling, "the first backfill never started pulling");

    let second = backfill::run(
        &env.bus,
        other.clone(),
        BackfillOptions::default(),
        |_| {},
        pending(),
    )
    .await
    .expect_err("a second backfill of the model must be refused");
    assert!(
        second
            .to_string()
            .contains("another `mnemo backfill embed`"),
        "{second}"
    );
    let restart = BackfillOptions {
        restart: true,
        ..Default::default()
    };
    let third = backfill::run(&env.bus, other.clone(), restart, |_| {}, pending()).await;
    assert!(
        third.is_err(),
        "nor may a restart pull the position from under it"
    );

    // The first one stops when asked, following to the end.
    let _ = stop.send(());
    let first = first.await.expect("join").expect("the first backfill");
    assert!(!first.finished, "{first:?}");
}

/// A backfill after an erasure: the erased learner's indexed document is
/// a tombstone, stepped over; the other learner's is re-embedded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_skips_an_erased_learner() {
    let other = load_model_from(backfill_model_dir());
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        extra_models: vec![other.clone()],
        ..Default::default()
    })
    .await;
    let alice = upload(&mut env.documents("alice").await, "cells.md", CELLS)
        .await
        .unwrap();
    let bob = upload(&mut env.documents("bob").await, "oceans.md", OCEANS)
        .await
        .unwrap();
    indexed(&env, "alice", &alice.document_id).await;
    indexed(&env, "bob", &bob.document_id).await;
    let token = mnemo_domain::OwnerId::new("alice").unwrap().token();
    mnemo_bus::erase::erase_learner(&env.bus, &token, "operator")
        .await
        .expect("alice erased");

    let report = backfill::run(
        &env.bus,
        other.clone(),
        BackfillOptions::default(),
        |_| {},
        pending(),
    )
    .await
    .expect("the backfill runs past the tombstones");
    assert!(report.finished, "{report:?}");
    assert_eq!(report.documents, 1, "bob's alone: {report:?}");
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    let alices: i64 = db
        .query_one(
            "SELECT count(*) FROM chunk_embeddings e JOIN chunks c USING (chunk_id) WHERE c.owner_token = $1",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(alices, 0, "nothing of alice's is embedded again");
}
