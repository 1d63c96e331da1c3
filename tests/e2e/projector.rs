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
