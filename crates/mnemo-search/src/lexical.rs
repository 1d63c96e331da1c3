//! The lexical side in PostgreSQL: the full-text query for queries written
//! in websearch syntax (`websearch_to_tsquery`, ranked with `ts_rank_cd`),
//! the query's lexemes (for BM25, [`crate::terms`], and for snippets), and hit
//! details with highlighted snippets ([`crate::snippet`]) — always restricted to the caller's
//! documents and to each document's current indexed run.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::snippet::{snippet, QueryWords};
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

/// Whether `query` uses websearch operators — a "quoted phrase", a
/// -exclusion or OR — whose meaning only PostgreSQL's query parser keeps;
/// such queries run [`top`], everything else ranks by BM25.
pub fn has_operators(query: &str) -> bool {
    query.contains('"')
        || query
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("or") || (w.len() > 1 && w.starts_with('-')))
}

/// The query's lexemes as the chunks' `tsv` column has them (English
/// stemming, stop words dropped), in no particular order; words a query
/// in websearch syntax excludes (`-word`) are left out.
pub async fn lexemes(client: &impl GenericClient, query: &str) -> Result<Vec<String>, SearchError> {
    let wanted: Vec<&str> = query
        .split_whitespace()
        .filter(|w| !(w.len() > 1 && w.starts_with('-')))
        .collect();
    let row = client
        .query_one(
            "SELECT ARRAY(SELECT lexeme FROM unnest(to_tsvector('english', $1)))",
            &[&wanted.join(" ")],
        )
        .await?;
    Ok(row.get(0))
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

/// Details of `chunk_ids` (in no particular order), with snippets
/// highlighting `query`'s words ([`crate::snippet`]); only the caller's.
pub async fn details(
    client: &impl GenericClient,
    owner_token: &str,
    chunk_ids: &[String],
    query: &QueryWords,
) -> Result<Vec<HitDetails>, SearchError> {
    let rows = client
        .query(
            "SELECT c.chunk_id, c.document_id, d.filename, c.page_start, c.page_end, c.text,
                    d.external_id
               FROM chunks c
               JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
              WHERE c.owner_token = $1 AND c.chunk_id = ANY($2)",
            &[&owner_token, &chunk_ids],
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
            snippet: snippet(r.get(5), query),
            external_id: r.get(6),
        })
        .collect())
}
