//! The `documents` read model: one row per document (projections/documents/).
//!
//! The row is a pure fold of the document's events ([`DocumentRow::fold`]);
//! a batch loads the rows it touches, folds its events in memory and writes
//! each changed row back with one statement ([`flush`]). Set-wise writes are
//! what let a rebuild from sequence 1 run at tens of thousands of events per
//! second.

use std::collections::HashMap;

use mnemo_bus::envelope::Envelope;
use mnemo_domain::{DocumentEvent, Stage};
use time::OffsetDateTime;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::ProjectorError;

/// A row of `documents`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub document_id: Uuid,
    pub owner_token: String,
    pub owner_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub topic: Option<String>,
    pub batch_id: String,
    pub external_id: Option<String>,
    pub stage: String,
    pub run: i32,
    pub reason: Option<String>,
    /// When the run failed: the stage it failed in (`Stage::as_str`) and
    /// the code (`FailureCode::as_str`). `None` for failures projected
    /// before these columns existed, until a rebuild (V4).
    pub failed_stage: Option<String>,
    pub failure_code: Option<String>,
    pub pages_total: Option<i32>,
    /// Pages of the run's text that could not be read.
    pub pages_failed: i32,
    pub chunks_total: i32,
    /// The run's last chunk batch has been seen.
    pub chunks_final: bool,
    /// The run search serves (the last one indexed).
    pub indexed_run: Option<i32>,
    pub uploaded_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Stream sequence of the last event folded in.
    pub last_sequence: i64,
}

/// Every column, in the order [`DocumentRow::from_row`] and [`flush`] use.
const COLUMNS: &str = "document_id, owner_token, owner_id, filename, content_type, size_bytes,
    sha256, topic, batch_id, external_id, stage, run, reason, pages_total, chunks_total,
    chunks_final, indexed_run, uploaded_at, updated_at, last_sequence, pages_failed,
    failed_stage, failure_code";

impl DocumentRow {
    pub fn from_row(r: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            document_id: r.try_get("document_id")?,
            owner_token: r.try_get("owner_token")?,
            owner_id: r.try_get("owner_id")?,
            filename: r.try_get("filename")?,
            content_type: r.try_get("content_type")?,
            size_bytes: r.try_get("size_bytes")?,
            sha256: r.try_get("sha256")?,
            topic: r.try_get("topic")?,
            batch_id: r.try_get("batch_id")?,
            external_id: r.try_get("external_id")?,
            stage: r.try_get("stage")?,
            run: r.try_get("run")?,
            reason: r.try_get("reason")?,
            pages_total: r.try_get("pages_total")?,
            chunks_total: r.try_get("chunks_total")?,
            chunks_final: r.try_get("chunks_final")?,
            indexed_run: r.try_get("indexed_run")?,
            uploaded_at: r.try_get("uploaded_at")?,
            updated_at: r.try_get("updated_at")?,
            last_sequence: r.try_get("last_sequence")?,
            pages_failed: r.try_get("pages_failed")?,
            failed_stage: r.try_get("failed_stage")?,
            failure_code: r.try_get("failure_code")?,
        })
    }

    /// Folds one event (from the message at `sequence`, appended at `at`)
    /// into the row; `row` is `None` until the document is uploaded.
    pub fn fold(
        row: &mut Option<Self>,
        owner_token: &str,
        sequence: u64,
        at: OffsetDateTime,
        event: &DocumentEvent,
    ) {
        use DocumentEvent as E;
        let seq = sequence as i64;
        if let E::DocumentUploaded(d) = event {
            // A repeated upload (same idempotency key) changes nothing.
            if row.is_none() {
                *row = Some(Self {
                    document_id: d.document_id.as_uuid(),
                    owner_token: owner_token.to_owned(),
                    owner_id: d.owner.as_str().to_owned(),
                    filename: d.filename.clone(),
                    content_type: d.content_type.mime().to_owned(),
                    size_bytes: d.size_bytes as i64,
                    sha256: d.sha256.as_str().to_owned(),
                    topic: d.topic.clone(),
                    batch_id: d.batch_id.clone(),
                    external_id: d.external_id.clone(),
                    stage: Stage::Uploaded.as_str().to_owned(),
                    run: 1,
                    reason: None,
                    failed_stage: None,
                    failure_code: None,
                    pages_total: None,
                    pages_failed: 0,
                    chunks_total: 0,
                    chunks_final: false,
                    indexed_run: None,
                    uploaded_at: at,
                    updated_at: at,
                    last_sequence: seq,
                });
            }
            return;
        }
        // Events of a document never uploaded cannot exist (the aggregate
        // refuses them); nothing to fold into.
        let Some(r) = row.as_mut() else { return };
        r.reason = None;
        r.failed_stage = None;
        r.failure_code = None;
        match event {
            E::DocumentUploaded(_) => {}
            E::ExtractionProgressed { pages_total, .. } => {
                r.pages_total = Some(*pages_total as i32)
            }
            E::TextExtracted {
                pages,
                pages_failed,
                ..
            } => {
                r.pages_total = Some(*pages as i32);
                r.pages_failed = *pages_failed as i32;
            }
            E::DocumentChunked { last, chunks, .. } => {
                r.chunks_total += chunks.len() as i32;
                r.chunks_final |= *last;
            }
            E::ChunksEmbedded { .. } => {}
            E::DocumentIndexed { run, .. } => r.indexed_run = Some(*run as i32),
            E::DocumentFailed {
                reason,
                stage,
                code,
                ..
            } => {
                r.reason = Some(reason.clone());
                r.failed_stage = Some(stage.as_str().to_owned());
                r.failure_code = Some(code.as_str().to_owned());
            }
            E::ProcessingCancelled { reason, .. } => r.reason = Some(reason.clone()),
            E::ReprocessRequested { .. } => {
                r.chunks_total = 0;
                r.chunks_final = false;
                r.pages_total = None;
                r.pages_failed = 0;
            }
        }
        r.stage = event.stage_after().as_str().to_owned();
        r.run = event.run() as i32;
        r.updated_at = at;
        r.last_sequence = seq;
    }
}

/// The document id is the last token of the aggregate id (`<owner>.<id>`).
pub fn document_id_of(envelope: &Envelope) -> Uuid {
    envelope
        .aggregate_id
        .rsplit('.')
        .next()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_default()
}

/// The current rows of `ids` (those that exist).
pub async fn load(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, DocumentRow>, ProjectorError> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM documents WHERE document_id = ANY($1)"),
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let row = DocumentRow::from_row(r)?;
            Ok((row.document_id, row))
        })
        .collect()
}

/// Writes `rows` (each the whole new state of its document) in one statement.
pub async fn flush(
    client: &impl GenericClient,
    rows: &[&DocumentRow],
) -> Result<(), ProjectorError> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    client
        .execute(
            &format!(
                "INSERT INTO documents ({COLUMNS})
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                     $12::int[], $13::text[], $14::int[], $15::int[], $16::bool[], $17::int[],
                     $18::timestamptz[], $19::timestamptz[], $20::bigint[], $21::int[],
                     $22::text[], $23::text[])
                 ON CONFLICT (document_id) DO UPDATE SET
                     stage = EXCLUDED.stage, run = EXCLUDED.run, reason = EXCLUDED.reason,
                     failed_stage = EXCLUDED.failed_stage, failure_code = EXCLUDED.failure_code,
                     pages_total = EXCLUDED.pages_total, pages_failed = EXCLUDED.pages_failed,
                     chunks_total = EXCLUDED.chunks_total,
                     chunks_final = EXCLUDED.chunks_final, indexed_run = EXCLUDED.indexed_run,
                     updated_at = EXCLUDED.updated_at, last_sequence = EXCLUDED.last_sequence"
            ),
            &[
                &col!(document_id),
                &col!(owner_token),
                &col!(owner_id),
                &col!(filename),
                &col!(content_type),
                &col!(size_bytes),
                &col!(sha256),
                &col!(topic),
                &col!(batch_id),
                &col!(external_id),
                &col!(stage),
                &col!(run),
                &col!(reason),
                &col!(pages_total),
                &col!(chunks_total),
                &col!(chunks_final),
                &col!(indexed_run),
                &col!(uploaded_at),
                &col!(updated_at),
                &col!(last_sequence),
                &col!(pages_failed),
                &col!(failed_stage),
                &col!(failure_code),
            ],
        )
        .await?;
    Ok(())
}

/// The caller's documents, newest first.
pub async fn list(
    client: &impl GenericClient,
    owner_token: &str,
    topic: Option<&str>,
    limit: i64,
) -> Result<Vec<DocumentRow>, ProjectorError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM documents
                 WHERE owner_token = $1 AND ($2::text IS NULL OR topic = $2)
                 ORDER BY uploaded_at DESC, document_id DESC
                 LIMIT $3"
            ),
            &[&owner_token, &topic, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| DocumentRow::from_row(r).map_err(ProjectorError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnemo_domain::content::ContentType;
    use mnemo_domain::document::{ChunkRecord, UploadedDocument};
    use mnemo_domain::{DocumentId, FailureCode, OwnerId, Sha256Hex};

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + s).unwrap()
    }

    fn uploaded(id: DocumentId) -> DocumentEvent {
        DocumentEvent::DocumentUploaded(UploadedDocument {
            document_id: id,
            owner: OwnerId::new("o").unwrap(),
            filename: "a.pdf".into(),
            content_type: ContentType::Pdf,
            size_bytes: 10,
            sha256: Sha256Hex::from_digest(&[0; 32]),
            topic: Some("bio".into()),
            batch_id: "b".into(),
            idempotency_key: None,
            external_id: Some("ext-1".into()),
        })
    }

    fn chunked(run: u32, n: usize, last: bool) -> DocumentEvent {
        DocumentEvent::DocumentChunked {
            run,
            batch: 0,
            last,
            chunks: (0..n)
                .map(|i| ChunkRecord {
                    chunk_id: format!("c{i}"),
                    ordinal: i as u32,
                    text: "t".into(),
                    page_start: 1,
                    page_end: 1,
                    tokens: 3,
                })
                .collect(),
        }
    }

    fn fold_all(events: &[DocumentEvent]) -> Option<DocumentRow> {
        let mut row = None;
        for (i, e) in events.iter().enumerate() {
            DocumentRow::fold(&mut row, "tok", i as u64 + 1, at(i as i64), e);
        }
        row
    }

    #[test]
    fn a_run_folds_into_one_row() {
        let id = DocumentId::new();
        let row = fold_all(&[
            uploaded(id),
            DocumentEvent::TextExtracted {
                run: 1,
                text_sha256: Sha256Hex::from_digest(&[1; 32]),
                pages: 4,
                chars: 9,
                extractor: "pdf-rs".into(),
                pages_failed: 0,
            },
            chunked(1, 3, false),
            chunked(1, 2, true),
            DocumentEvent::DocumentIndexed { run: 1, chunks: 5 },
        ])
        .unwrap();
        assert_eq!(row.document_id, id.as_uuid());
        assert_eq!(row.stage, "indexed");
        assert_eq!((row.pages_total, row.chunks_total), (Some(4), 5));
        assert!(row.chunks_final);
        assert_eq!(row.indexed_run, Some(1));
        assert_eq!(row.external_id.as_deref(), Some("ext-1"));
        assert_eq!(row.last_sequence, 5);
        assert_eq!(row.uploaded_at, at(0));
        assert_eq!(row.updated_at, at(4));
    }

    #[test]
    fn reprocess_resets_counts_but_keeps_the_indexed_run_and_failure_says_why() {
        let id = DocumentId::new();
        let row = fold_all(&[
            uploaded(id),
            chunked(1, 2, true),
            DocumentEvent::DocumentIndexed { run: 1, chunks: 2 },
            DocumentEvent::ReprocessRequested {
                run: 2,
                reason: "new chunking".into(),
            },
            DocumentEvent::DocumentFailed {
                run: 2,
                stage: Stage::Extracting,
                reason: "damaged PDF: x".into(),
                retryable: false,
                code: FailureCode::Damaged,
            },
        ])
        .unwrap();
        assert_eq!((row.stage.as_str(), row.run), ("failed", 2));
        assert_eq!((row.chunks_total, row.chunks_final), (0, false));
        assert_eq!(row.indexed_run, Some(1), "search keeps serving run 1");
        assert_eq!(row.reason.as_deref(), Some("damaged PDF: x"));
        assert_eq!(row.failed_stage.as_deref(), Some("extracting"));
        assert_eq!(row.failure_code.as_deref(), Some("damaged"));
    }

    #[test]
    fn a_repeated_upload_changes_nothing_and_orphans_are_ignored() {
        let id = DocumentId::new();
        let once = fold_all(&[uploaded(id), chunked(1, 1, false)]);
        let twice = fold_all(&[uploaded(id), chunked(1, 1, false), uploaded(id)]);
        assert_eq!(once.map(|r| r.chunks_total), twice.map(|r| r.chunks_total));
        assert_eq!(fold_all(&[chunked(1, 1, true)]), None);
    }
}
