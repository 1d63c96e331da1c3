//! The full text of the caller's chunks: the retrieved ones (to answer from)
//! and all of one document's (to make cards from). Only the owner's, and
//! only each document's current indexed run.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::SearchError;

/// One chunk with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkText {
    pub chunk_id: String,
    pub document_id: Uuid,
    /// The document's file name.
    pub title: String,
    pub ordinal: u32,
    pub page_start: u32,
    pub page_end: u32,
    pub text: String,
}

const COLUMNS: &str =
    "c.chunk_id, c.document_id, d.filename, c.ordinal, c.page_start, c.page_end, c.text";

/// Chunks of indexed runs matching `filter` (on `c`, the chunks), in
/// document and ordinal order.
async fn select(
    client: &impl GenericClient,
    filter: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<ChunkText>, SearchError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}
                   FROM chunks c
                   JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
                  WHERE {filter}
                  ORDER BY c.document_id, c.ordinal"
            ),
            params,
        )
        .await?;
    Ok(rows.iter().map(row).collect())
}

fn row(r: &tokio_postgres::Row) -> ChunkText {
    ChunkText {
        chunk_id: r.get(0),
        document_id: r.get(1),
        title: r.get(2),
        ordinal: r.get::<_, i32>(3).max(0) as u32,
        page_start: r.get::<_, i32>(4).max(0) as u32,
        page_end: r.get::<_, i32>(5).max(0) as u32,
        text: r.get(6),
    }
}

/// The texts of `chunk_ids` (in no particular order); others' are never returned.
pub async fn by_ids(
    client: &impl GenericClient,
    owner_token: &str,
    chunk_ids: &[String],
) -> Result<Vec<ChunkText>, SearchError> {
    select(
        client,
        "c.owner_token = $1 AND c.chunk_id = ANY($2)",
        &[&owner_token, &chunk_ids],
    )
    .await
}

/// What the read model knows of one of the owner's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentChunks {
    /// No such document for this owner (or another owner's).
    Missing,
    /// The document exists but no run of it is indexed yet; its stage.
    NotIndexed(String),
    /// Its indexed run's chunks, in order.
    Chunks(Vec<ChunkText>),
}

/// All chunks of `document`'s indexed run, in order.
pub async fn of_document(
    client: &impl GenericClient,
    owner_token: &str,
    document: Uuid,
) -> Result<DocumentChunks, SearchError> {
    let doc = client
        .query_opt(
            "SELECT stage, indexed_run FROM documents WHERE document_id = $1 AND owner_token = $2",
            &[&document, &owner_token],
        )
        .await?;
    let Some(doc) = doc else {
        return Ok(DocumentChunks::Missing);
    };
    if doc.get::<_, Option<i32>>(1).is_none() {
        return Ok(DocumentChunks::NotIndexed(doc.get(0)));
    }
    let chunks = select(
        client,
        "c.document_id = $1 AND c.owner_token = $2",
        &[&document, &owner_token],
    )
    .await?;
    Ok(DocumentChunks::Chunks(chunks))
}

/// Which of `documents` belong to the owner.
pub async fn owned_documents(
    client: &impl GenericClient,
    owner_token: &str,
    documents: &[Uuid],
) -> Result<Vec<Uuid>, SearchError> {
    let rows = client
        .query(
            "SELECT document_id FROM documents WHERE owner_token = $1 AND document_id = ANY($2)",
            &[&owner_token, &documents],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
