//! Helpers for rebuild tests: what queries see while a rebuild runs, and
//! whether its scratch schema is gone afterwards.

use std::collections::BTreeSet;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// Counts a table's rows over and over (no pause: as many reads as fit)
/// until stopped, collecting every count seen.
pub struct RowCounts {
    stop: watch::Sender<bool>,
    task: JoinHandle<BTreeSet<i64>>,
}

impl RowCounts {
    /// Starts counting `table` (a constant of the test) through `db`.
    pub fn start(db: Client, table: &'static str) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let sql = format!("SELECT count(*) FROM {table}");
            let mut seen = BTreeSet::new();
            loop {
                let n: i64 = db.query_one(&sql, &[]).await.unwrap().get(0);
                seen.insert(n);
                if *stopped.borrow_and_update() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        });
        Self { stop, task }
    }

    /// Stops counting; every distinct count seen, in order.
    pub async fn stop(self) -> Vec<i64> {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().into_iter().collect()
    }
}

/// Whether the schema `name` exists.
pub async fn schema_exists(db: &Client, name: &str) -> bool {
    db.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        &[&name],
    )
    .await
    .unwrap()
    .get(0)
}

/// Rebuilds `projection` and swaps it in, two messages per batch (many
/// batches from a test's few events); the report, and the sequence reached
/// after every batch.
pub async fn rebuild_in_small_batches(
    bus: &mnemo_bus::Bus,
    projection: mnemo_projector::Projection,
) -> (mnemo_projector::rebuild::RebuildReport, Vec<u64>) {
    let mut progress = Vec::new();
    let report = mnemo_projector::rebuild::rebuild(
        bus,
        &crate::database_url(),
        &[projection],
        &mnemo_projector::rebuild::RebuildOptions {
            batch_messages: 2,
            ..Default::default()
        },
        |p| progress.push(p.applied_through),
    )
    .await
    .unwrap();
    (report, progress)
}
