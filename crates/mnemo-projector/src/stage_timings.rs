//! The `stage_timings` read model (projections/stage_timings/): when each
//! run of each document entered and left each stage, from event timestamps.
//!
//! Like `documents`, a pure fold ([`Timings::fold`]) over rows loaded for
//! the documents a batch touches, written back set-wise ([`flush`]).

use std::collections::{BTreeMap, HashSet};

use mnemo_domain::{DocumentEvent, Stage};
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ProjectorError;

/// Key of a row: document, run, stage.
pub type TimingKey = (Uuid, i32, String);

/// A row of `stage_timings`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingRow {
    pub owner_token: String,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// Next stage, or failed / cancelled / superseded.
    pub outcome: Option<String>,
}

/// The rows of the documents a batch touches, and which of them changed.
#[derive(Debug, Default)]
pub struct Timings {
    rows: BTreeMap<TimingKey, TimingRow>,
    changed: HashSet<TimingKey>,
}

impl Timings {
    /// Records that the document's run `run` is in `stage` since `at`.
    pub fn fold(
        &mut self,
        document_id: Uuid,
        owner_token: &str,
        run: u32,
        stage: Stage,
        at: OffsetDateTime,
    ) {
        let run = run as i32;
        let lo = (document_id, i32::MIN, String::new());
        let hi = (document_id, i32::MAX, String::new());
        for (key, row) in self.rows.range_mut(lo..hi) {
            if row.finished_at.is_some() {
                continue;
            }
            if key.1 < run {
                // A newer run supersedes whatever an older one still had open.
                row.finished_at = Some(at);
                row.outcome = Some("superseded".into());
                self.changed.insert(key.clone());
            } else if key.1 == run && key.2 != stage.as_str() {
                // Leaving a stage closes its row, with where it went.
                row.finished_at = Some(at);
                row.outcome = Some(stage.as_str().to_owned());
                self.changed.insert(key.clone());
            }
        }
        if !stage.is_terminal() {
            let key = (document_id, run, stage.as_str().to_owned());
            if !self.rows.contains_key(&key) {
                self.rows.insert(
                    key.clone(),
                    TimingRow {
                        owner_token: owner_token.to_owned(),
                        started_at: at,
                        finished_at: None,
                        outcome: None,
                    },
                );
                self.changed.insert(key);
            }
        }
    }

    /// Folds one event of the document: the stage it leaves the run in,
    /// after the stage it shows the run passed through when no earlier
    /// event opened it — a failure belongs to the stage it happened in
    /// (`DocumentFailed.stage`), and a text extracted without a progress
    /// event was still extracted (its `extracting` row opens and closes at
    /// once; the time went to `uploaded`). So `mnemo stats` counts each
    /// stage's finishes and failures where they happened.
    pub fn fold_event(
        &mut self,
        document_id: Uuid,
        owner_token: &str,
        event: &DocumentEvent,
        at: OffsetDateTime,
    ) {
        let through = match event {
            DocumentEvent::TextExtracted { .. } => Some(Stage::Extracting),
            DocumentEvent::DocumentFailed { stage, .. } => Some(*stage),
            _ => None,
        };
        // Only a stage the run has no row of yet: a failure reported for a
        // stage already left (a late give-up) closes the open row instead.
        let run = event.run();
        let key = |s: Stage| (document_id, run as i32, s.as_str().to_owned());
        if let Some(stage) =
            through.filter(|s| !s.is_terminal() && !self.rows.contains_key(&key(*s)))
        {
            self.fold(document_id, owner_token, run, stage, at);
        }
        self.fold(document_id, owner_token, run, event.stage_after(), at);
    }

    /// The rows that changed, to write back.
    pub fn changed(&self) -> impl Iterator<Item = (&TimingKey, &TimingRow)> {
        self.rows.iter().filter(|(k, _)| self.changed.contains(*k))
    }
}

/// Loads every row of `ids` (a handful per document).
pub async fn load(client: &impl GenericClient, ids: &[Uuid]) -> Result<Timings, ProjectorError> {
    let rows = client
        .query(
            "SELECT document_id, run, stage, owner_token, started_at, finished_at, outcome
               FROM stage_timings WHERE document_id = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut timings = Timings::default();
    for r in rows {
        timings.rows.insert(
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?),
            TimingRow {
                owner_token: r.try_get(3)?,
                started_at: r.try_get(4)?,
                finished_at: r.try_get(5)?,
                outcome: r.try_get(6)?,
            },
        );
    }
    Ok(timings)
}

/// Writes the changed rows in one statement.
pub async fn flush(client: &impl GenericClient, timings: &Timings) -> Result<(), ProjectorError> {
    let changed: Vec<(&TimingKey, &TimingRow)> = timings.changed().collect();
    if changed.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changed.iter().map(|(k, _)| k.0).collect();
    let runs: Vec<i32> = changed.iter().map(|(k, _)| k.1).collect();
    let stages: Vec<&str> = changed.iter().map(|(k, _)| k.2.as_str()).collect();
    let owners: Vec<&str> = changed
        .iter()
        .map(|(_, r)| r.owner_token.as_str())
        .collect();
    let started: Vec<OffsetDateTime> = changed.iter().map(|(_, r)| r.started_at).collect();
    let finished: Vec<Option<OffsetDateTime>> =
        changed.iter().map(|(_, r)| r.finished_at).collect();
    let outcomes: Vec<Option<&str>> = changed.iter().map(|(_, r)| r.outcome.as_deref()).collect();
    client
        .execute(
            "INSERT INTO stage_timings (document_id, run, stage, owner_token, started_at, finished_at, outcome)
             SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::text[],
                                  $5::timestamptz[], $6::timestamptz[], $7::text[])
             ON CONFLICT (document_id, run, stage) DO UPDATE SET
                 finished_at = EXCLUDED.finished_at, outcome = EXCLUDED.outcome",
            &[&ids, &runs, &stages, &owners, &started, &finished, &outcomes],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn stages_open_and_close_in_order_and_a_new_run_supersedes() {
        let d = Uuid::new_v4();
        let mut t = Timings::default();
        t.fold(d, "o", 1, Stage::Uploaded, at(0));
        t.fold(d, "o", 1, Stage::Extracting, at(2));
        t.fold(d, "o", 1, Stage::Extracting, at(3)); // more progress: same row
        t.fold(d, "o", 2, Stage::Uploaded, at(5)); // reprocess
        t.fold(d, "o", 2, Stage::Failed, at(9));
        let rows: Vec<_> = t.changed().collect();
        let get = |run: i32, stage: &str| {
            rows.iter()
                .find(|(k, _)| k.1 == run && k.2 == stage)
                .map(|(_, r)| (*r).clone())
                .unwrap()
        };
        assert_eq!(rows.len(), 3);
        let up = get(1, "uploaded");
        assert_eq!(
            (up.finished_at, up.outcome.as_deref()),
            (Some(at(2)), Some("extracting"))
        );
        let ex = get(1, "extracting");
        assert_eq!(
            (ex.started_at, ex.outcome.as_deref()),
            (at(2), Some("superseded"))
        );
        let up2 = get(2, "uploaded");
        assert_eq!(
            (up2.finished_at, up2.outcome.as_deref()),
            (Some(at(9)), Some("failed"))
        );
    }

    #[test]
    fn a_failure_and_a_quick_extraction_count_where_they_happened() {
        use mnemo_domain::document::FailureCode;
        let d = Uuid::new_v4();
        let mut t = Timings::default();
        t.fold(d, "o", 1, Stage::Uploaded, at(0));
        // Failed while extracting, with no progress event before.
        t.fold_event(
            d,
            "o",
            &DocumentEvent::DocumentFailed {
                run: 1,
                stage: Stage::Extracting,
                reason: "damaged PDF: x".into(),
                retryable: false,
                code: FailureCode::Damaged,
            },
            at(4),
        );
        let rows: Vec<_> = t.changed().map(|(k, r)| (k.2.clone(), r.clone())).collect();
        let of = |stage: &str| rows.iter().find(|(s, _)| s == stage).unwrap().1.clone();
        assert_eq!(of("uploaded").outcome.as_deref(), Some("extracting"));
        let ex = of("extracting");
        assert_eq!(
            (ex.started_at, ex.finished_at, ex.outcome.as_deref()),
            (at(4), Some(at(4)), Some("failed"))
        );

        // Extracted at once: extracting finished too, into chunking.
        let d = Uuid::new_v4();
        let mut t = Timings::default();
        t.fold(d, "o", 1, Stage::Uploaded, at(0));
        t.fold_event(
            d,
            "o",
            &DocumentEvent::TextExtracted {
                run: 1,
                text_sha256: mnemo_domain::Sha256Hex::from_digest(&[1; 32]),
                pages: 1,
                chars: 9,
                extractor: "utf8".into(),
                pages_failed: 0,
            },
            at(3),
        );
        let rows: Vec<_> = t.changed().map(|(k, r)| (k.2.clone(), r.clone())).collect();
        let of = |stage: &str| rows.iter().find(|(s, _)| s == stage).unwrap().1.clone();
        assert_eq!(of("extracting").outcome.as_deref(), Some("chunking"));
        assert_eq!(of("chunking").finished_at, None);
    }

    #[test]
    fn a_late_failure_of_a_stage_already_left_closes_the_open_row() {
        use mnemo_domain::document::FailureCode;
        let d = Uuid::new_v4();
        let mut t = Timings::default();
        t.fold(d, "o", 1, Stage::Uploaded, at(0));
        t.fold(d, "o", 1, Stage::Extracting, at(1));
        t.fold(d, "o", 1, Stage::Chunking, at(2));
        t.fold_event(
            d,
            "o",
            &DocumentEvent::DocumentFailed {
                run: 1,
                stage: Stage::Extracting,
                reason: "gave up after 5 attempts".into(),
                retryable: true,
                code: FailureCode::RetriesExhausted,
            },
            at(5),
        );
        let rows: Vec<_> = t.changed().map(|(k, r)| (k.2.clone(), r.clone())).collect();
        let of = |stage: &str| rows.iter().find(|(s, _)| s == stage).unwrap().1.clone();
        assert_eq!(of("extracting").outcome.as_deref(), Some("chunking"));
        assert_eq!(of("chunking").outcome.as_deref(), Some("failed"));
        assert_eq!(rows.len(), 3, "no second extracting row: {rows:?}");
    }
}
