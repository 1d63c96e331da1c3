//! The `chunks` read model (projections/chunks/): chunk text with a
//! full-text index and page spans for citations, and `chunk_embeddings`:
//! each chunk's vector per model.
//!
//! A batch folds its events into [`ChunkChanges`] (pure) and writes them
//! with a few set-wise statements ([`flush`]): old runs' rows out, new
//! chunks in, vectors upserted.

use std::collections::HashMap;

use mnemo_domain::DocumentEvent;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ProjectorError;

/// A new row of `chunks`, borrowed from the batch's decoded events (a
/// batch carries megabytes of text: nothing is copied until the rows are
/// encoded for PostgreSQL).
#[derive(Debug, Clone, PartialEq)]
struct NewChunk<'a> {
    chunk_id: &'a str,
    document_id: Uuid,
    owner_token: &'a str,
    run: i32,
    ordinal: i32,
    text: &'a str,
    page_start: i32,
    page_end: i32,
    tokens: i32,
    created_at: OffsetDateTime,
}

/// A vector to store under `(chunk, run, model)`, borrowed like [`NewChunk`].
#[derive(Debug, Clone, PartialEq)]
struct NewVector<'a> {
    document_id: Uuid,
    owner_token: &'a str,
    vector: &'a [f32],
}

/// What a batch of events does to `chunks` and `chunk_embeddings`; borrows
/// from the events it folds.
#[derive(Debug, Default)]
pub struct ChunkChanges<'a> {
    chunks: Vec<NewChunk<'a>>,
    vectors: Vectors<'a>,
    /// Per document: rows of runs below this go (a newer run is indexed).
    drop_below: HashMap<Uuid, i32>,
    /// Per document: the lowest run of the rows waiting in this batch, so
    /// that indexing a run only sweeps the batch when older rows wait.
    lowest_pending: HashMap<Uuid, i32>,
}

impl<'a> ChunkChanges<'a> {
    /// Folds one document event in.
    pub fn fold(
        &mut self,
        document_id: Uuid,
        owner_token: &'a str,
        at: OffsetDateTime,
        event: &'a DocumentEvent,
    ) {
        use DocumentEvent as E;
        match event {
            E::DocumentChunked { run, chunks, .. } => {
                self.note_pending(document_id, *run as i32);
                self.chunks.extend(chunks.iter().map(|c| NewChunk {
                    chunk_id: &c.chunk_id,
                    document_id,
                    owner_token,
                    run: *run as i32,
                    ordinal: c.ordinal as i32,
                    text: &c.text,
                    page_start: c.page_start as i32,
                    page_end: c.page_end as i32,
                    tokens: c.tokens as i32,
                    created_at: at,
                }))
            }
            E::ChunksEmbedded {
                run,
                model,
                vectors,
                ..
            } => {
                self.note_pending(document_id, *run as i32);
                for v in vectors {
                    self.vectors.insert(
                        (v.chunk_id.as_str(), *run as i32, model.as_str()),
                        NewVector {
                            document_id,
                            owner_token,
                            vector: &v.vector,
                        },
                    );
                }
            }
            // The new run is searchable: the older runs' rows go, both those
            // already stored and those still waiting in this batch.
            E::DocumentIndexed { run, .. } => {
                let run = *run as i32;
                let below = self.drop_below.entry(document_id).or_insert(run);
                *below = (*below).max(run);
                // Almost always nothing older waits (the run indexed is the
                // only one in the batch): no sweep.
                if self
                    .lowest_pending
                    .get(&document_id)
                    .is_some_and(|l| *l < run)
                {
                    self.chunks
                        .retain(|c| c.document_id != document_id || c.run >= run);
                    self.vectors
                        .retain(|k, v| v.document_id != document_id || k.1 >= run);
                    self.lowest_pending.insert(document_id, run);
                }
            }
            _ => {}
        }
    }

    fn note_pending(&mut self, document_id: Uuid, run: i32) {
        let lowest = self.lowest_pending.entry(document_id).or_insert(run);
        *lowest = (*lowest).min(run);
    }
}

/// A vector as stored: little-endian f32s.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// A stored vector back as f32s (`None` when the length is not a multiple of 4).
pub fn vector_from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Writes a batch's chunk changes: deletions first (they only ever concern
/// runs older than anything the batch inserts), then new chunks, then vectors.
/// `lexemes_from`: a schema whose `chunks` may already hold the same chunks'
/// lexemes (a rebuild's live schema; its name comes from our own
/// `Namespace`, never from input). Must run inside a transaction (it uses
/// savepoints).
pub async fn flush(
    client: &impl GenericClient,
    changes: &ChunkChanges<'_>,
    lexemes_from: Option<&str>,
) -> Result<(), ProjectorError> {
    // Run 1 has no older run to drop: only reprocessed documents need the
    // delete (without this, every batch of a rebuild, whose bulk mode drops
    // the by-document indexes, would scan the tables it is filling).
    let older: Vec<(Uuid, i32)> = changes
        .drop_below
        .iter()
        .filter(|(_, run)| **run > 1)
        .map(|(id, run)| (*id, *run))
        .collect();
    if !older.is_empty() {
        let ids: Vec<Uuid> = older.iter().map(|(id, _)| *id).collect();
        let runs: Vec<i32> = older.iter().map(|(_, run)| *run).collect();
        for table in ["chunks", "chunk_embeddings"] {
            // Table names are constants, never input.
            client
                .execute(
                    &format!(
                        "DELETE FROM {table} t USING UNNEST($1::uuid[], $2::int[]) AS u(d, r)
                          WHERE t.document_id = u.d AND t.run < u.r"
                    ),
                    &[&ids, &runs],
                )
                .await?;
        }
    }
    if !changes.chunks.is_empty() {
        // A chunk recorded twice (the aggregate never records one twice)
        // inserts once, the first time: the plain insert is tried first and
        // the conflict-checking one only if it meets a row already there.
        unless_duplicate(
            client,
            "chunk_rows",
            changes.chunks.len(),
            || insert_chunks(client, &changes.chunks, lexemes_from, ""),
            || {
                insert_chunks(
                    client,
                    &changes.chunks,
                    lexemes_from,
                    "ON CONFLICT (chunk_id, run) DO NOTHING",
                )
            },
        )
        .await?;
    }
    if !changes.vectors.is_empty() {
        // The last vector recorded for (chunk, run, model) wins: a batch
        // keeps only its last one, and a vector already stored (a backfill
        // run again) is replaced by the upsert, tried only if the bulk
        // copy meets it.
        unless_duplicate(
            client,
            "vector_rows",
            changes.vectors.len(),
            || copy_vectors(client, &changes.vectors),
            || upsert_vectors(client, &changes.vectors),
        )
        .await?;
    }
    Ok(())
}

/// Rows from which a write takes the bulk path of [`unless_duplicate`]:
/// below it (the live projector's small batches) the savepoint's round
/// trips cost more than speculative insertion saves.
pub const BULK_ROWS: usize = 256;

/// For `rows` at least [`BULK_ROWS`]: runs `fast`, a write that fails on a
/// duplicate key, inside a savepoint; should it meet one, rolls back to the
/// savepoint and runs `slow`, the write that resolves conflicts. Duplicates
/// are rare (never, in a log the aggregate wrote once), and the fast writes
/// skip PostgreSQL's speculative insertion, which costs about a fifth of an
/// insert. Fewer rows: `slow` alone, in one round trip.
async fn unless_duplicate<C, F, S, FF, SF>(
    client: &C,
    savepoint: &str,
    rows: usize,
    fast: F,
    slow: S,
) -> Result<(), ProjectorError>
where
    C: GenericClient,
    F: FnOnce() -> FF,
    S: FnOnce() -> SF,
    FF: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    SF: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if rows < BULK_ROWS {
        return Ok(slow().await?);
    }
    // Savepoint names are constants, never input.
    client
        .batch_execute(&format!("SAVEPOINT {savepoint}"))
        .await?;
    match fast().await {
        Ok(()) => {
            client
                .batch_execute(&format!("RELEASE SAVEPOINT {savepoint}"))
                .await?;
            Ok(())
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            tracing::debug!(
                savepoint,
                "a row was there already; writing with conflict checks"
            );
            client
                .batch_execute(&format!("ROLLBACK TO SAVEPOINT {savepoint}"))
                .await?;
            slow().await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Inserts new chunks, computing their lexemes — or taking them from
/// `lexemes_from.chunks` when the same chunk is there with the same text
/// (a rebuild beside the live table). `on_conflict`: a constant clause.
async fn insert_chunks(
    client: &impl GenericClient,
    c: &[NewChunk<'_>],
    lexemes_from: Option<&str>,
    on_conflict: &str,
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<&str> = c.iter().map(|c| c.chunk_id).collect();
    let docs: Vec<Uuid> = c.iter().map(|c| c.document_id).collect();
    let owners: Vec<&str> = c.iter().map(|c| c.owner_token).collect();
    let runs: Vec<i32> = c.iter().map(|c| c.run).collect();
    let ordinals: Vec<i32> = c.iter().map(|c| c.ordinal).collect();
    let texts: Vec<&str> = c.iter().map(|c| c.text).collect();
    let starts: Vec<i32> = c.iter().map(|c| c.page_start).collect();
    let ends: Vec<i32> = c.iter().map(|c| c.page_end).collect();
    let tokens: Vec<i32> = c.iter().map(|c| c.tokens).collect();
    let created: Vec<OffsetDateTime> = c.iter().map(|c| c.created_at).collect();
    // A correlated lookup by primary key, not a join: a join lets the
    // planner hash the whole live table for every batch.
    let lexemes = match lexemes_from {
        Some(schema) => format!(
            "coalesce((SELECT l.tsv FROM {schema}.chunks l
                        WHERE l.chunk_id = u.chunk_id AND l.run = u.run AND l.text = u.text),
                      to_tsvector('english', u.text))"
        ),
        None => "to_tsvector('english', u.text)".to_owned(),
    };
    client
        .execute(
            &format!(
                "INSERT INTO chunks (chunk_id, document_id, owner_token, run, ordinal, text,
                                     page_start, page_end, tokens, created_at, tsv)
                 SELECT u.*, {lexemes}
                   FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::int[], $5::int[],
                               $6::text[], $7::int[], $8::int[], $9::int[], $10::timestamptz[])
                        AS u(chunk_id, document_id, owner_token, run, ordinal, text,
                             page_start, page_end, tokens, created_at)
                 {on_conflict}"
            ),
            &[
                &ids, &docs, &owners, &runs, &ordinals, &texts, &starts, &ends, &tokens, &created,
            ],
        )
        .await?;
    Ok(())
}

/// Vectors by (chunk, run, model). A fast hash: a batch keys tens of
/// thousands of them, and SipHash was a visible share of a rebuild.
type Vectors<'a> = HashMap<(&'a str, i32, &'a str), NewVector<'a>, foldhash::fast::RandomState>;

/// Sends new vectors with `COPY … (FORMAT binary)`: no SQL arrays to build
/// and parse, and PostgreSQL's multi-row heap inserts. The rows are encoded
/// in memory first and sent at once, so PostgreSQL never waits on this
/// process mid-statement. Fails on a vector already stored.
async fn copy_vectors(
    client: &impl GenericClient,
    vectors: &Vectors<'_>,
) -> Result<(), tokio_postgres::Error> {
    use futures::SinkExt;
    // Each row: its vector's bytes plus ids, lengths and counts (< 256 B).
    let size = vectors.values().map(|v| v.vector.len() * 4 + 256).sum();
    let mut rows = crate::copy::BinaryRows::new(7, size);
    for ((chunk_id, run, model), v) in vectors {
        rows.row()
            .text(chunk_id)
            .int4(*run)
            .text(model)
            .uuid(&v.document_id)
            .text(v.owner_token)
            .int4(v.vector.len() as i32)
            .f32s_le(v.vector);
    }
    let sink = client
        .client()
        .copy_in::<_, bytes::Bytes>(
            "COPY chunk_embeddings (chunk_id, run, model, document_id, owner_token, dims, vector)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    futures::pin_mut!(sink);
    sink.send(rows.finish()).await?;
    sink.finish().await?;
    Ok(())
}

/// Inserts or replaces vectors.
async fn upsert_vectors(
    client: &impl GenericClient,
    vectors: &Vectors<'_>,
) -> Result<(), tokio_postgres::Error> {
    let v: Vec<(&(&str, i32, &str), &NewVector)> = vectors.iter().collect();
    let ids: Vec<&str> = v.iter().map(|(k, _)| k.0).collect();
    let runs: Vec<i32> = v.iter().map(|(k, _)| k.1).collect();
    let models: Vec<&str> = v.iter().map(|(k, _)| k.2).collect();
    let docs: Vec<Uuid> = v.iter().map(|(_, x)| x.document_id).collect();
    let owners: Vec<&str> = v.iter().map(|(_, x)| x.owner_token).collect();
    let dims: Vec<i32> = v.iter().map(|(_, x)| x.vector.len() as i32).collect();
    let bytes: Vec<Vec<u8>> = v.iter().map(|(_, x)| vector_bytes(x.vector)).collect();
    client
        .execute(
            "INSERT INTO chunk_embeddings (chunk_id, run, model, document_id, owner_token, dims, vector)
             SELECT * FROM UNNEST($1::text[], $2::int[], $3::text[], $4::uuid[], $5::text[],
                                  $6::int[], $7::bytea[])
             ON CONFLICT (chunk_id, run, model) DO UPDATE SET
                 dims = EXCLUDED.dims, vector = EXCLUDED.vector",
            &[&ids, &runs, &models, &docs, &owners, &dims, &bytes],
        )
        .await?;
    Ok(())
}

/// Of `candidates`, the documents (id, owner token, run) whose current run
/// has all its chunks recorded and each with a vector: the projector
/// declares them indexed. The aggregate re-checks, so a stale answer here
/// is harmless.
pub async fn ready_to_index(
    client: &impl GenericClient,
    candidates: &[Uuid],
) -> Result<Vec<(Uuid, String, u32)>, ProjectorError> {
    let rows = client
        .query(
            "SELECT d.document_id, d.owner_token, d.run FROM documents d
             WHERE d.document_id = ANY($1) AND d.stage = 'embedding' AND d.chunks_final
               AND NOT EXISTS (SELECT 1 FROM chunks c
                               WHERE c.document_id = d.document_id AND c.run = d.run
                                 AND NOT EXISTS (SELECT 1 FROM chunk_embeddings e
                                                 WHERE e.chunk_id = c.chunk_id AND e.run = c.run))",
            &[&candidates],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i32>(2).max(0) as u32))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnemo_domain::document::{ChunkRecord, ChunkVector};

    fn at() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    fn chunked(run: u32, ids: &[&str]) -> DocumentEvent {
        DocumentEvent::DocumentChunked {
            run,
            batch: 0,
            last: true,
            chunks: ids
                .iter()
                .enumerate()
                .map(|(i, id)| ChunkRecord {
                    chunk_id: (*id).into(),
                    ordinal: i as u32,
                    text: format!("text {id}"),
                    page_start: 1,
                    page_end: 2,
                    tokens: 4,
                })
                .collect(),
        }
    }

    fn embedded(run: u32, model: &str, ids: &[&str]) -> DocumentEvent {
        DocumentEvent::ChunksEmbedded {
            run,
            model: model.into(),
            dims: 2,
            vectors: ids
                .iter()
                .map(|id| ChunkVector {
                    chunk_id: (*id).into(),
                    vector: vec![0.5, -1.25],
                })
                .collect(),
            backfill: false,
        }
    }

    #[test]
    fn vectors_round_trip_as_bytes() {
        let v = vec![0.1f32, -3.5, f32::MIN_POSITIVE, 1e30];
        assert_eq!(vector_from_bytes(&vector_bytes(&v)), Some(v));
        assert_eq!(vector_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn indexing_a_run_drops_older_runs_pending_in_the_batch() {
        let d = Uuid::new_v4();
        let events = [
            chunked(1, &["a", "b"]),
            embedded(1, "m", &["a", "b"]),
            chunked(2, &["a2"]),
            embedded(2, "m", &["a2"]),
            embedded(2, "m2", &["a2"]),
            DocumentEvent::DocumentIndexed { run: 2, chunks: 1 },
        ];
        let mut c = ChunkChanges::default();
        for e in &events {
            c.fold(d, "o", at(), e);
        }
        assert_eq!(c.chunks.len(), 1);
        assert_eq!(c.chunks[0].chunk_id, "a2");
        assert_eq!(c.vectors.len(), 2, "one vector per model");
        assert!(c.vectors.keys().all(|k| k.1 == 2));
        assert_eq!(c.drop_below.get(&d), Some(&2));
    }

    #[test]
    fn other_documents_are_untouched_by_indexing() {
        let (d, e) = (Uuid::new_v4(), Uuid::new_v4());
        let events = [
            chunked(1, &["x"]),
            DocumentEvent::DocumentIndexed { run: 3, chunks: 0 },
        ];
        let mut c = ChunkChanges::default();
        c.fold(e, "o", at(), &events[0]);
        c.fold(d, "o", at(), &events[1]);
        assert_eq!(c.chunks.len(), 1);
        assert_eq!(c.vectors.len(), 0);
    }
}
