//! mnemo on a 3-node NATS JetStream cluster (issue 20): the namespace's
//! streams replicated three times, the whole pipeline running, and the
//! event stream's leader killed while documents flow, then restarted.
//! Every document still ends indexed, no chunk is stored twice, the
//! learner's progress never goes backwards, and a rebuild of every read
//! model from the log equals the live one.

use std::collections::BTreeSet;
use std::time::Duration;

use mnemo_tests::{
    assert_chunks_once, assert_rebuild_equals_live, upload, watch_all, EnvOptions, NatsCluster,
    ProgressSeen, TestEnv,
};

/// Uploads `text` as `name`, trying again while the cluster elects a
/// leader (`UNAVAILABLE`): what a client does on a failover.
async fn upload_through_failover(env: &TestEnv, name: &str, text: &str) -> String {
    let mut backoff = mnemo_bus::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    for _ in 0..60 {
        let mut docs = env.documents("alice").await;
        match upload(&mut docs, name, text.as_bytes()).await {
            Ok(r) => return r.document_id,
            Err(e) if e.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(backoff.next_delay().unwrap_or(Duration::from_secs(2))).await
            }
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
    panic!("{name}: the cluster never took the upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_survives_its_stream_leader_killed_and_restarted() {
    let mut cluster = NatsCluster::start(3).await;
    let env = TestEnv::start_with(EnvOptions {
        nats: Some(cluster.nats()),
        replicas: 3,
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut info = env.bus.events.clone();
    let info = info.info().await.unwrap();
    assert_eq!(info.config.num_replicas, 3);

    // The learner follows everything, from before the first upload.
    let mut progress = env.progress("alice").await;
    let mut updates = progress
        .watch(watch_all(0, true))
        .await
        .unwrap()
        .into_inner();

    let mut uploaded = BTreeSet::new();
    for i in 0..6 {
        let text = format!("# Before {i}\n\nThe kiwi{i} note, written before the failover.\n");
        uploaded.insert(upload_through_failover(&env, &format!("before-{i}.md"), &text).await);
    }
    // Kill the event stream's leader while those are in the pipeline.
    let leader = info
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("the stream has a leader");
    let killed = cluster.node(&leader);
    let failover = std::time::Instant::now();
    cluster.kill(killed);
    let mut first_after = None;
    for i in 0..6 {
        let text = format!("# During {i}\n\nThe kea{i} note, written during the failover.\n");
        uploaded.insert(upload_through_failover(&env, &format!("during-{i}.md"), &text).await);
        first_after.get_or_insert(failover.elapsed());
    }
    let rejoin = std::time::Instant::now();
    cluster.restart(killed).await;
    println!(
        "failover: leader {leader} killed; first upload accepted {} ms later; the node rejoined in {} ms",
        first_after.unwrap_or_default().as_millis(),
        rejoin.elapsed().as_millis()
    );
    for i in 0..4 {
        let text = format!("# After {i}\n\nThe weka{i} note, written after the restart.\n");
        uploaded.insert(upload_through_failover(&env, &format!("after-{i}.md"), &text).await);
    }

    // Every document ends indexed; progress never goes backwards.
    let mut seen = ProgressSeen::default();
    while seen.indexed.len() < uploaded.len() {
        let u = match tokio::time::timeout(Duration::from_secs(180), updates.message()).await {
            Ok(Ok(Some(u))) => u,
            // The stream may end while the API's hub recovers from the
            // failover: resume from the last sequence seen, as clients do.
            Ok(Ok(None)) | Ok(Err(_)) => {
                updates = progress
                    .watch(watch_all(seen.last, true))
                    .await
                    .unwrap()
                    .into_inner();
                continue;
            }
            Err(_) => panic!(
                "stuck: {} of {} indexed",
                seen.indexed.len(),
                uploaded.len()
            ),
        };
        seen.observe(&u);
    }
    assert_eq!(seen.indexed, uploaded);

    // No chunk twice; a rebuild from the log equals the live read models.
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    mnemo_projector::runner::wait_for(&db, &env.ns, seen.last, Duration::from_secs(60))
        .await
        .unwrap();
    assert_chunks_once(&db, uploaded.len()).await;
    assert_rebuild_equals_live(&env, &db).await;
}
