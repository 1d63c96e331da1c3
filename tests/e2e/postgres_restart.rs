//! PostgreSQL crashed and started again while documents flow (issue 20):
//! the pipeline goes on without it, the projector waits and resumes from
//! its checkpoint, every document ends indexed, and the read models equal
//! a rebuild from the log.

use std::collections::BTreeSet;
use std::time::Duration;

use mnemo_tests::{
    assert_caught_up_and_rebuilt, last_sequence, upload, EnvOptions, PrivatePostgres, ProgressSeen,
    TestEnv,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_projector_resumes_from_its_checkpoint_after_postgresql_crashes() {
    let pg = PrivatePostgres::start();
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        database_url: Some(pg.url()),
        ..Default::default()
    })
    .await;
    let (mut progress, mut updates) = env.watch_everything("alice").await;
    // Twenty notes of some length at once: more work than the crash takes.
    let uploads = (0..20).map(|i| {
        let env = &env;
        async move {
            let mut docs = env.documents("alice").await;
            let text = format!(
                "# Note {i}\n\n{}",
                format!("The takahe{i} note, written before the crash, and long. ").repeat(120)
            );
            upload(&mut docs, &format!("before-{i}.md"), text.as_bytes())
                .await
                .unwrap()
                .document_id
        }
    });
    let mut uploaded: BTreeSet<String> = futures::future::join_all(uploads)
        .await
        .into_iter()
        .collect();
    // Crash PostgreSQL while they are in the pipeline (the first ones may
    // be indexed already).
    let mut seen = ProgressSeen::default();
    // Documents whose vectors are in: all they wait for is the projector.
    let mut embedded = BTreeSet::new();
    pg.crash();
    let crashed_at = last_sequence(&env.bus).await;
    // The pipeline goes on without PostgreSQL: the other documents get
    // their vectors, and none whose vectors came after the crash is
    // indexed, which takes the projector's commit. (One whose commit came
    // before the crash may still show as indexed.)
    let mut embedded_after = BTreeSet::new();
    while uploaded
        .iter()
        .any(|d| !embedded.contains(d) && !seen.indexed.contains(d))
    {
        let u = tokio::time::timeout(Duration::from_secs(120), updates.message())
            .await
            .expect("the pipeline goes on without PostgreSQL")
            .unwrap()
            .expect("the stream goes on");
        seen.observe(&u);
        if u.event_type == "ChunksEmbedded" {
            embedded.insert(u.document_id.clone());
            if u.sequence > crashed_at {
                embedded_after.insert(u.document_id.clone());
            }
        }
        assert!(
            embedded_after.is_disjoint(&seen.indexed),
            "a document embedded after the crash was indexed without PostgreSQL"
        );
    }
    assert!(
        !embedded_after.is_empty(),
        "no document got its vectors while PostgreSQL was down"
    );
    pg.start_again();

    // After the restart the API takes uploads again.
    for i in 0..4 {
        let mut docs = env.documents("alice").await;
        let text = format!("# Note {i}\n\nThe kokako{i} note, after the restart.\n");
        let r = upload(&mut docs, &format!("after-{i}.md"), text.as_bytes())
            .await
            .unwrap();
        uploaded.insert(r.document_id);
    }
    seen.until_indexed(
        &mut progress,
        &mut updates,
        &uploaded,
        Duration::from_secs(180),
    )
    .await
    .unwrap();
    assert_eq!(seen.indexed, uploaded);

    // The projector resumed where it stopped: nothing applied twice or
    // skipped, so the read models equal a rebuild from the log.
    assert_caught_up_and_rebuilt(&env, seen.last, uploaded.len()).await;
}
