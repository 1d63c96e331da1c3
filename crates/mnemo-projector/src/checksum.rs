//! Checksums of the read models' contents, to prove that rebuilding them
//! from the event stream yields exactly the live tables
//! (`mnemo projections checksum`).
//!
//! Each table is read in primary-key order, every column as text, and
//! hashed with MD5 (a fingerprint, not a security measure). Only what the
//! events determine is covered: the projector's own bookkeeping
//! (`projection_checkpoints`, migration history) is not a read model.

use tokio_postgres::GenericClient;

use crate::ProjectorError;

/// Read models and the order their rows are hashed in.
pub const TABLES: &[(&str, &str)] = &[
    ("documents", "document_id"),
    ("chunks", "chunk_id, run"),
    ("chunk_embeddings", "chunk_id, run, model"),
    ("stage_timings", "document_id, run, stage"),
    ("learning_cards", "owner_token, card_id"),
    ("learning_reviews", "owner_token, card_id, review_id"),
    ("learning_topics", "owner_token, topic_id"),
    (
        "learning_topic_documents",
        "owner_token, topic_id, document_id",
    ),
    ("learning_sessions", "owner_token, session_id"),
];

/// One table's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableChecksum {
    pub table: String,
    pub rows: u64,
    pub md5: String,
}

/// Fingerprints of every read model, in [`TABLES`] order.
pub async fn checksums(client: &impl GenericClient) -> Result<Vec<TableChecksum>, ProjectorError> {
    let mut out = Vec::with_capacity(TABLES.len());
    for (table, order) in TABLES {
        // Table and column names are constants above, never input.
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY {order})), md5(''))
                       FROM {table} AS t"
                ),
                &[],
            )
            .await?;
        out.push(TableChecksum {
            table: (*table).to_owned(),
            rows: row.get::<_, i64>(0) as u64,
            md5: row.get(1),
        });
    }
    Ok(out)
}
