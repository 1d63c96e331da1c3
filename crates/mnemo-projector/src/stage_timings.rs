//! The `stage_timings` read model (projections/stage_timings/): when each
//! run of each document entered and left each stage, from event timestamps.

use mnemo_domain::Stage;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ProjectorError;

/// Records that the document's run `run` is in `stage` since `at`.
pub async fn record(
    tx: &impl GenericClient,
    document_id: Uuid,
    owner_token: &str,
    run: u32,
    stage: Stage,
    at: OffsetDateTime,
) -> Result<(), ProjectorError> {
    let run = run as i32;
    // A newer run supersedes whatever an older one still had open.
    tx.execute(
        "UPDATE stage_timings SET finished_at = $3, outcome = 'superseded'
         WHERE document_id = $1 AND run < $2 AND finished_at IS NULL",
        &[&document_id, &run, &at],
    )
    .await?;
    // Leaving a stage closes its row, with where it went.
    tx.execute(
        "UPDATE stage_timings SET finished_at = $3, outcome = $4
         WHERE document_id = $1 AND run = $2 AND finished_at IS NULL AND stage <> $4",
        &[&document_id, &run, &at, &stage.as_str()],
    )
    .await?;
    if !stage.is_terminal() {
        tx.execute(
            "INSERT INTO stage_timings (document_id, owner_token, run, stage, started_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (document_id, run, stage) DO NOTHING",
            &[&document_id, &owner_token, &run, &stage.as_str(), &at],
        )
        .await?;
    }
    Ok(())
}
