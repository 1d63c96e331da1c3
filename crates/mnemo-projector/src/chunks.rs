//! The `chunks` read model (projections/chunks/): chunk text with a
//! full-text index, page spans for citations, and the vector once embedded.

use mnemo_domain::DocumentEvent;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ProjectorError;

/// Applies one document event to `chunks` inside the projector's transaction.
pub async fn apply(
    tx: &impl GenericClient,
    document_id: Uuid,
    owner_token: &str,
    at: OffsetDateTime,
    event: &DocumentEvent,
) -> Result<(), ProjectorError> {
    use DocumentEvent as E;
    match event {
        E::DocumentChunked { run, chunks, .. } if !chunks.is_empty() => {
            let ids: Vec<&str> = chunks.iter().map(|c| c.chunk_id.as_str()).collect();
            let ordinals: Vec<i32> = chunks.iter().map(|c| c.ordinal as i32).collect();
            let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
            let starts: Vec<i32> = chunks.iter().map(|c| c.page_start as i32).collect();
            let ends: Vec<i32> = chunks.iter().map(|c| c.page_end as i32).collect();
            let tokens: Vec<i32> = chunks.iter().map(|c| c.tokens as i32).collect();
            // One statement per batch; a redelivered batch inserts nothing.
            tx.execute(
                "INSERT INTO chunks (chunk_id, document_id, owner_token, run, ordinal, text,
                                     page_start, page_end, tokens, created_at)
                 SELECT u.id, $2, $3, $4, u.ord, u.txt, u.ps, u.pe, u.tok, $10
                 FROM UNNEST($1::text[], $5::int[], $6::text[], $7::int[], $8::int[], $9::int[])
                      AS u(id, ord, txt, ps, pe, tok)
                 ON CONFLICT (chunk_id, run) DO NOTHING",
                &[
                    &ids,
                    &document_id,
                    &owner_token,
                    &(*run as i32),
                    &ordinals,
                    &texts,
                    &starts,
                    &ends,
                    &tokens,
                    &at,
                ],
            )
            .await?;
        }
        E::ChunksEmbedded {
            run,
            model,
            vectors,
            ..
        } => {
            // One statement per event: the vectors travel as one flat
            // array and each row takes its slice (1-based, inclusive).
            let dims = vectors.first().map(|v| v.vector.len()).unwrap_or(0);
            if dims > 0 && vectors.iter().all(|v| v.vector.len() == dims) {
                let ids: Vec<&str> = vectors.iter().map(|v| v.chunk_id.as_str()).collect();
                let flat: Vec<f32> = vectors
                    .iter()
                    .flat_map(|v| v.vector.iter().copied())
                    .collect();
                tx.execute(
                    "UPDATE chunks c SET embedding = ($1::real[])[(u.n - 1) * $2 + 1 : u.n * $2], model = $3
                       FROM unnest($4::text[]) WITH ORDINALITY AS u(id, n)
                      WHERE c.chunk_id = u.id AND c.run = $5 AND c.document_id = $6",
                    &[&flat, &(dims as i64), model, &ids, &(*run as i32), &document_id],
                )
                .await?;
            } else {
                for v in vectors {
                    tx.execute(
                        "UPDATE chunks SET embedding = $1, model = $2
                         WHERE chunk_id = $3 AND run = $4 AND document_id = $5",
                        &[&v.vector, model, &v.chunk_id, &(*run as i32), &document_id],
                    )
                    .await?;
                }
            }
        }
        // The new run is searchable: the older runs' chunks go.
        E::DocumentIndexed { run, .. } => {
            tx.execute(
                "DELETE FROM chunks WHERE document_id = $1 AND run < $2",
                &[&document_id, &(*run as i32)],
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Of `candidates`, the documents (id, owner token, run) whose current run
/// has all its chunks recorded and embedded: the projector declares them
/// indexed. The aggregate re-checks, so a stale answer here is harmless.
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
                                 AND c.embedding IS NULL)",
            &[&candidates],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i32>(2).max(0) as u32))
        .collect())
}
