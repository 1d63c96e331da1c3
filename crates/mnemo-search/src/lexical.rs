//! The lexical side: PostgreSQL full text over the `chunks` read model
//! (`websearch_to_tsquery`, ranked with `ts_rank_cd`), restricted to the
//! caller's documents and to each document's current indexed run.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{Scope, SearchError};

/// The full-text candidates: `$1` owner token, `$2` documents (NULL: all),
/// `$3` topic (NULL: any), `$4` the query, `$5` how many.
pub const TOP_SQL: &str = "SELECT c.chunk_id
       FROM chunks c
       JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
      WHERE c.owner_token = $1
        AND ($2::uuid[] IS NULL OR c.document_id = ANY($2))
        AND ($3::text IS NULL OR d.topic = $3)
        AND c.tsv @@ websearch_to_tsquery('english', $4)
      ORDER BY ts_rank_cd(c.tsv, websearch_to_tsquery('english', $4)) DESC, c.chunk_id
      LIMIT $5";

/// The best `n` chunk ids for `query`, best first.
pub async fn top(
    client: &impl GenericClient,
    scope: &Scope,
    query: &str,
    n: usize,
) -> Result<Vec<String>, SearchError> {
    let rows = client
        .query(
            TOP_SQL,
            &[
                &scope.owner_token,
                &scope.documents.as_deref(),
                &scope.topic,
                &query,
                &(n as i64),
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// What a hit shows: document, title, pages and a highlighted snippet.
#[derive(Debug, Clone, PartialEq)]
pub struct HitDetails {
    pub chunk_id: String,
    pub document_id: Uuid,
    pub title: String,
    pub page_start: u32,
    pub page_end: u32,
    pub snippet: String,
    /// The document's external id, if its upload gave one.
    pub external_id: Option<String>,
}

/// Details of `chunk_ids` (in no particular order), with snippets for
/// `query`; only the caller's.
pub async fn details(
    client: &impl GenericClient,
    owner_token: &str,
    chunk_ids: &[String],
    query: &str,
) -> Result<Vec<HitDetails>, SearchError> {
    let rows = client
        .query(
            "SELECT c.chunk_id, c.document_id, d.filename, c.page_start, c.page_end,
                    ts_headline('english', c.text, websearch_to_tsquery('english', $3),
                                'StartSel=«, StopSel=», MaxFragments=2, MaxWords=30, MinWords=12, FragmentDelimiter=\" … \"'),
                    d.external_id
               FROM chunks c
               JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
              WHERE c.owner_token = $1 AND c.chunk_id = ANY($2)",
            &[&owner_token, &chunk_ids, &query],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| HitDetails {
            chunk_id: r.get(0),
            document_id: r.get(1),
            title: r.get(2),
            page_start: r.get::<_, i32>(3).max(0) as u32,
            page_end: r.get::<_, i32>(4).max(0) as u32,
            snippet: r.get(5),
            external_id: r.get(6),
        })
        .collect())
}
