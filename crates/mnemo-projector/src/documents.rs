//! The `documents` read model: one row per document (projections/documents/).

use mnemo_bus::envelope::Envelope;
use mnemo_domain::{DocumentEvent, Stage};
use time::OffsetDateTime;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::ProjectorError;

/// A row of `documents`, as queries return it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow {
    pub document_id: Uuid,
    pub owner_id: String,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub topic: Option<String>,
    pub batch_id: String,
    pub stage: String,
    pub run: i32,
    pub reason: Option<String>,
    pub uploaded_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_sequence: i64,
}

impl DocumentRow {
    fn from_row(r: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            document_id: r.try_get("document_id")?,
            owner_id: r.try_get("owner_id")?,
            filename: r.try_get("filename")?,
            content_type: r.try_get("content_type")?,
            size_bytes: r.try_get("size_bytes")?,
            sha256: r.try_get("sha256")?,
            topic: r.try_get("topic")?,
            batch_id: r.try_get("batch_id")?,
            stage: r.try_get("stage")?,
            run: r.try_get("run")?,
            reason: r.try_get("reason")?,
            uploaded_at: r.try_get("uploaded_at")?,
            updated_at: r.try_get("updated_at")?,
            last_sequence: r.try_get("last_sequence")?,
        })
    }
}

/// Applies one document event (from the message at `sequence`) inside the
/// projector's transaction; returns the stage the document is in after it.
pub async fn apply(
    tx: &impl GenericClient,
    owner_token: &str,
    envelope: &Envelope,
    sequence: u64,
    event: &DocumentEvent,
) -> Result<Stage, ProjectorError> {
    use DocumentEvent as E;
    let seq = sequence as i64;
    let at = envelope.occurred_at;
    let doc_id = document_id_of(envelope);
    let set_stage = |stage: Stage| (stage.as_str().to_owned(), None::<String>);
    let (stage, reason): (String, Option<String>) = match event {
        E::DocumentUploaded(d) => {
            tx.execute(
                "INSERT INTO documents (document_id, owner_token, owner_id, filename, content_type,
                     size_bytes, sha256, topic, batch_id, stage, run, uploaded_at, updated_at, last_sequence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'uploaded', 1, $10, $10, $11)
                 ON CONFLICT (document_id) DO NOTHING",
                &[
                    &d.document_id.as_uuid(),
                    &owner_token,
                    &d.owner.as_str(),
                    &d.filename,
                    &d.content_type.mime(),
                    &(d.size_bytes as i64),
                    &d.sha256.as_str(),
                    &d.topic,
                    &d.batch_id,
                    &at,
                    &seq,
                ],
            )
            .await?;
            return Ok(Stage::Uploaded);
        }
        E::ExtractionProgressed { pages_total, .. } => {
            tx.execute(
                "UPDATE documents SET pages_total = $2 WHERE document_id = $1",
                &[&doc_id, &(*pages_total as i32)],
            )
            .await?;
            set_stage(Stage::Extracting)
        }
        E::TextExtracted { pages, .. } => {
            tx.execute(
                "UPDATE documents SET pages_total = $2 WHERE document_id = $1",
                &[&doc_id, &(*pages as i32)],
            )
            .await?;
            set_stage(Stage::Chunking)
        }
        E::DocumentChunked { last, chunks, .. } => {
            tx.execute(
                "UPDATE documents SET chunks_total = chunks_total + $2, chunks_final = chunks_final OR $3
                 WHERE document_id = $1",
                &[&doc_id, &(chunks.len() as i32), last],
            )
            .await?;
            set_stage(if *last {
                Stage::Embedding
            } else {
                Stage::Chunking
            })
        }
        E::ChunksEmbedded { .. } => set_stage(Stage::Embedding),
        E::DocumentIndexed { run, .. } => {
            tx.execute(
                "UPDATE documents SET indexed_run = $2 WHERE document_id = $1",
                &[&doc_id, &(*run as i32)],
            )
            .await?;
            set_stage(Stage::Indexed)
        }
        E::DocumentFailed { reason, .. } => {
            (Stage::Failed.as_str().to_owned(), Some(reason.clone()))
        }
        E::ProcessingCancelled { reason, .. } => {
            (Stage::Cancelled.as_str().to_owned(), Some(reason.clone()))
        }
        E::ReprocessRequested { .. } => {
            tx.execute(
                "UPDATE documents SET chunks_total = 0, chunks_final = false, pages_total = NULL
                 WHERE document_id = $1",
                &[&doc_id],
            )
            .await?;
            set_stage(Stage::Uploaded)
        }
    };
    tx.execute(
        "UPDATE documents SET stage = $2, run = $3, reason = $4, updated_at = $5, last_sequence = $6
         WHERE document_id = $1",
        &[&doc_id, &stage, &(event.run() as i32), &reason, &at, &seq],
    )
    .await?;
    Ok(Stage::parse(&stage).unwrap_or(Stage::Uploaded))
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

/// The caller's documents, newest first.
pub async fn list(
    client: &impl GenericClient,
    owner_token: &str,
    topic: Option<&str>,
    limit: i64,
) -> Result<Vec<DocumentRow>, ProjectorError> {
    let rows = client
        .query(
            "SELECT * FROM documents
             WHERE owner_token = $1 AND ($2::text IS NULL OR topic = $2)
             ORDER BY uploaded_at DESC, document_id DESC
             LIMIT $3",
            &[&owner_token, &topic, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| DocumentRow::from_row(r).map_err(ProjectorError::from))
        .collect()
}
