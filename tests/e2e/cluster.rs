//! mnemo on a 3-node NATS JetStream cluster (issue 20): the namespace's
//! streams replicated three times, the whole pipeline running, and while
//! documents flow, the event stream's leader is killed and restarted, then
//! the new leader is cut off the network and put back. Every document
//! still ends indexed, no chunk is stored twice, the learner's progress
//! never goes backwards, and a rebuild of every read model from the log
//! equals the live one.
//!
//! `MNEMO_CLUSTER_DOCS` (default 40) is how many documents flow, spread
//! over the five phases; the figures in docs/benchmarks.md are from 200.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mnemo_tests::{
    assert_caught_up_and_rebuilt, eventually, upload, EnvOptions, NatsCluster, ProgressSeen,
    TestEnv,
};

/// Uploads `text` as `name`, trying again while the cluster elects a
/// leader (`UNAVAILABLE`): what a client does on a failover.
async fn upload_through_failover(env: &TestEnv, name: &str, text: &str) -> String {
    let mut backoff = mnemo_bus::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    for _ in 0..60 {
        let mut docs = env.documents("alice").await;
        let attempt = Instant::now();
        match upload(&mut docs, name, text.as_bytes()).await {
            Ok(r) => return r.document_id,
            Err(e) if e.code() == tonic::Code::Unavailable => {
                println!(
                    "  {name}: UNAVAILABLE after {} ms: {}",
                    attempt.elapsed().as_millis(),
                    e.message()
                );
                tokio::time::sleep(backoff.next_delay().unwrap_or(Duration::from_secs(2))).await
            }
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
    panic!("{name}: the cluster never took the upload");
}

/// The event stream's leader, as the cluster says now (asked again while
/// the operator's connection fails over or an election runs).
async fn stream_leader(env: &TestEnv) -> String {
    let leader = std::sync::Mutex::new(None);
    let answered = eventually(Duration::from_secs(60), || {
        let events = env.bus.events.clone();
        let leader = &leader;
        async move {
            let found = events
                .get_info()
                .await
                .ok()
                .and_then(|i| i.cluster.as_ref().and_then(|c| c.leader.clone()));
            let got = found.is_some();
            *leader.lock().unwrap() = found;
            got
        }
    })
    .await;
    assert!(answered, "the event stream has no leader");
    leader.into_inner().unwrap().expect("a leader")
}

/// Waits until every replica of the event stream is back and current:
/// the healed or restarted node has caught up. How long it took.
async fn until_replicas_current(env: &TestEnv) -> Duration {
    let started = Instant::now();
    let current = eventually(Duration::from_secs(120), || {
        let mut events = env.bus.events.clone();
        async move {
            let Ok(info) = events.info().await else {
                return false;
            };
            info.cluster.as_ref().is_some_and(|c| {
                c.leader.is_some()
                    && c.replicas.len() == 2
                    && c.replicas.iter().all(|r| r.current && !r.offline)
            })
        }
    })
    .await;
    assert!(current, "the event stream's replicas never all caught up");
    started.elapsed()
}

/// What a stuck run looks like: the read model's stage of each document
/// the progress stream did not show indexed, and every consumer's state.
async fn where_stuck(env: &TestEnv, indexed: &BTreeSet<String>) -> String {
    let mut out = Vec::new();
    if let Ok(db) = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns).await {
        if let Ok(rows) = db
            .query(
                "SELECT document_id::text, stage, run, last_sequence FROM documents",
                &[],
            )
            .await
        {
            for r in rows {
                let id: String = r.get(0);
                if !indexed.contains(&id) {
                    let (stage, run, seq): (String, i32, i64) = (r.get(1), r.get(2), r.get(3));
                    out.push(format!("{id}: {stage} (run {run}, seq {seq})"));
                }
            }
        }
    }
    for service in ["extractor", "chunker", "embedder", "projector"] {
        let name = env.ns.consumer(service);
        let events = env.bus.events.clone();
        if let Ok(mut c) = events
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
            .await
        {
            if let Ok(i) = c.info().await {
                out.push(format!(
                    "{service}: pending {}, ack pending {}, redelivered {}, waiting {}, delivered {}, ack floor {}",
                    i.num_pending, i.num_ack_pending, i.num_redelivered, i.num_waiting,
                    i.delivered.stream_sequence, i.ack_floor.stream_sequence
                ));
            }
        }
    }
    out.join("; ")
}

/// Uploads `n` documents named `<phase>-<i>.md`; the time to the first
/// accepted one.
async fn upload_phase(
    env: &TestEnv,
    phase: &str,
    n: usize,
    uploaded: &mut BTreeSet<String>,
) -> Duration {
    let started = Instant::now();
    let mut first = None;
    for i in 0..n {
        let text =
            format!("# {phase} {i}\n\nThe {phase}{i} note, uploaded during the {phase} phase.\n");
        uploaded.insert(upload_through_failover(env, &format!("{phase}-{i}.md"), &text).await);
        first.get_or_insert(started.elapsed());
    }
    first.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_survives_its_stream_leader_killed_restarted_and_partitioned() {
    let total: usize = std::env::var("MNEMO_CLUSTER_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let per_phase = (total / 5).max(1);
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
    let (mut progress, mut updates) = env.watch_everything("alice").await;
    let flow = Instant::now();
    let mut uploaded = BTreeSet::new();
    upload_phase(&env, "before", per_phase, &mut uploaded).await;

    // Kill the event stream's leader while those are in the pipeline.
    let leader = stream_leader(&env).await;
    let killed = cluster.node(&leader);
    cluster.kill(killed);
    let after_kill = upload_phase(&env, "kill", per_phase, &mut uploaded).await;
    let rejoin = Instant::now();
    cluster.restart(killed).await;
    let caught_up = until_replicas_current(&env).await;
    println!(
        "failover: leader {leader} killed; first upload accepted {} ms later; restarted in {} ms, current {} ms later",
        after_kill.as_millis(),
        rejoin.elapsed().saturating_sub(caught_up).as_millis(),
        caught_up.as_millis()
    );
    upload_phase(&env, "restart", per_phase, &mut uploaded).await;

    // Cut the (new) leader off the network, clients and peers alike,
    // while documents flow; then put it back.
    let leader = stream_leader(&env).await;
    let cut = cluster.node(&leader);
    cluster.partition(cut);
    let after_cut = upload_phase(&env, "partition", per_phase, &mut uploaded).await;
    let moved = stream_leader(&env).await;
    assert_ne!(moved, leader, "a node cut off is no longer the leader");
    cluster.heal(cut);
    let healed = until_replicas_current(&env).await;
    println!(
        "partition: leader {leader} cut off; first upload accepted {} ms later (new leader {moved}); healed, current {} ms later",
        after_cut.as_millis(),
        healed.as_millis()
    );
    upload_phase(&env, "healed", per_phase, &mut uploaded).await;

    // Every document ends indexed; progress never goes backwards.
    let mut seen = ProgressSeen::default();
    let ended = seen
        .until_indexed(
            &mut progress,
            &mut updates,
            &uploaded,
            Duration::from_secs(180),
        )
        .await;
    if let Err(stuck) = ended {
        panic!("{stuck}; {}", where_stuck(&env, &seen.indexed).await);
    }
    assert_eq!(seen.indexed, uploaded);
    println!(
        "cluster: {} documents indexed in {} s through a leader kill, a restart and a partition",
        uploaded.len(),
        flow.elapsed().as_secs()
    );

    // No chunk twice; a rebuild from the log equals the live read models.
    assert_caught_up_and_rebuilt(&env, seen.last, uploaded.len()).await;
}
