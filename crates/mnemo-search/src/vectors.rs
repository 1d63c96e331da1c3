//! The vector side: every indexed chunk's embedding in memory, per owner,
//! searched exactly (cosine = dot product: vectors are L2-normalised).
//!
//! Loaded from the `chunks` and `chunk_embeddings` read models (one
//! model's vectors) at start; kept fresh by
//! [`crate::follow`], which reloads a document when its `DocumentIndexed`
//! event arrives (the projector appends it only after storing every chunk
//! and vector of the run, so PostgreSQL has them by then). Partitioned by
//! owner, so a search touches only the caller's vectors and a small owner
//! inside a big install stays exact and fast.
//!
//! Exact scan: 100,000 × 384-d vectors are ~150 MB and ~40 M multiply-adds
//! per query. An approximate (HNSW) index for bigger owners is the next
//! step; the interface (`top`) stays.

use std::collections::HashMap;
use std::sync::RwLock;

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{Scope, SearchError};

#[derive(Debug, Clone)]
struct Entry {
    chunk_id: String,
    document_id: Uuid,
    topic: Option<String>,
}

#[derive(Debug, Default)]
struct OwnerVectors {
    entries: Vec<Entry>,
    /// `entries.len() × dims` values, row-major.
    data: Vec<f32>,
}

/// Every owner's vectors.
#[derive(Debug)]
pub struct VectorIndex {
    dims: usize,
    /// The model whose vectors are served (`None`: any of `dims` dimensions).
    model: Option<String>,
    owners: RwLock<HashMap<String, OwnerVectors>>,
}

/// Vectors of each document's indexed run, for one model ($1; NULL: any).
const LOAD: &str = "SELECT c.chunk_id, c.document_id, c.owner_token, d.topic, e.vector
                      FROM chunks c
                      JOIN documents d ON d.document_id = c.document_id AND c.run = d.indexed_run
                      JOIN chunk_embeddings e ON e.chunk_id = c.chunk_id AND e.run = c.run
                     WHERE ($1::text IS NULL OR e.model = $1)";

impl VectorIndex {
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            model: None,
            owners: RwLock::new(HashMap::new()),
        }
    }

    /// Serves only `model`'s vectors (the model queries are embedded with).
    pub fn for_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The model whose vectors are served, if one was chosen.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Vectors held, over all owners.
    pub fn len(&self) -> usize {
        self.owners
            .read()
            .map(|o| o.values().map(|v| v.entries.len()).sum())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads every indexed chunk's vector (replacing what was held).
    pub async fn load_all(&self, client: &impl GenericClient) -> Result<usize, SearchError> {
        let rows = client.query(LOAD, &[&self.model]).await?;
        let mut owners: HashMap<String, OwnerVectors> = HashMap::new();
        for r in &rows {
            let owner: String = r.get(2);
            self.push(owners.entry(owner).or_default(), r);
        }
        let n = owners.values().map(|v| v.entries.len()).sum();
        if let Ok(mut held) = self.owners.write() {
            *held = owners;
        }
        Ok(n)
    }

    /// Replaces one document's vectors with those of its current indexed run.
    pub async fn refresh_document(
        &self,
        client: &impl GenericClient,
        document_id: Uuid,
    ) -> Result<(), SearchError> {
        let rows = client
            .query(
                &format!("{LOAD} AND c.document_id = $2"),
                &[&self.model, &document_id],
            )
            .await?;
        let Ok(mut owners) = self.owners.write() else {
            return Ok(());
        };
        for v in owners.values_mut() {
            remove_document(v, document_id, self.dims);
        }
        for r in &rows {
            let owner: String = r.get(2);
            self.push(owners.entry(owner).or_default(), r);
        }
        Ok(())
    }

    fn push(&self, v: &mut OwnerVectors, r: &tokio_postgres::Row) {
        let bytes: &[u8] = r.get(4);
        let Some(vector) = mnemo_projector::chunks::vector_from_bytes(bytes) else {
            return;
        };
        if vector.len() != self.dims {
            return; // another model's vector: not comparable
        }
        v.entries.push(Entry {
            chunk_id: r.get(0),
            document_id: r.get(1),
            topic: r.get(3),
        });
        v.data.extend_from_slice(&vector);
    }

    /// The `n` chunks of `scope` most similar to `query`, best first.
    pub fn top(&self, scope: &Scope, query: &[f32], n: usize) -> Vec<String> {
        if query.len() != self.dims || n == 0 {
            return Vec::new();
        }
        let Ok(owners) = self.owners.read() else {
            return Vec::new();
        };
        let Some(v) = owners.get(&scope.owner_token) else {
            return Vec::new();
        };
        let mut scored: Vec<(f32, usize)> = v
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| scope.admits(e.document_id, e.topic.as_deref()))
            .map(|(i, _)| {
                let row = &v.data[i * self.dims..(i + 1) * self.dims];
                (dot(row, query), i)
            })
            .collect();
        let n = n.min(scored.len());
        if n == 0 {
            return Vec::new();
        }
        let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        scored.select_nth_unstable_by(n - 1, by_score);
        scored.truncate(n);
        scored.sort_by(by_score);
        scored
            .into_iter()
            .map(|(_, i)| v.entries[i].chunk_id.clone())
            .collect()
    }
}

fn remove_document(v: &mut OwnerVectors, document_id: Uuid, dims: usize) {
    let mut i = 0;
    while i < v.entries.len() {
        if v.entries[i].document_id == document_id {
            let last = v.entries.len() - 1;
            v.entries.swap_remove(i);
            if i != last {
                let (head, tail) = v.data.split_at_mut(last * dims);
                head[i * dims..(i + 1) * dims].copy_from_slice(&tail[..dims]);
            }
            v.data.truncate(last * dims);
        } else {
            i += 1;
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators let the compiler vectorise without reassociation.
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        acc[0] += a[i] * b[i];
        acc[1] += a[i + 1] * b[i + 1];
        acc[2] += a[i + 2] * b[i + 2];
        acc[3] += a[i + 3] * b[i + 3];
    }
    let mut s = acc[0] + acc[1] + acc[2] + acc[3];
    for i in chunks..a.len() {
        s += a[i] * b[i];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_with(rows: &[(&str, u128, [f32; 2])]) -> VectorIndex {
        let index = VectorIndex::new(2);
        let mut owners = HashMap::new();
        for (chunk, doc, v) in rows {
            let o: &mut OwnerVectors = owners.entry("alice".to_string()).or_default();
            o.entries.push(Entry {
                chunk_id: chunk.to_string(),
                document_id: Uuid::from_u128(*doc),
                topic: None,
            });
            o.data.extend_from_slice(v);
        }
        *index.owners.write().unwrap() = owners;
        index
    }

    fn scope(owner: &str) -> Scope {
        Scope {
            owner_token: owner.into(),
            documents: None,
            topic: None,
        }
    }

    #[test]
    fn nearest_first_and_only_the_owners() {
        let index = index_with(&[
            ("a", 1, [1.0, 0.0]),
            ("b", 1, [0.0, 1.0]),
            ("c", 2, [0.7, 0.7]),
        ]);
        assert_eq!(index.top(&scope("alice"), &[1.0, 0.1], 2), vec!["a", "c"]);
        assert!(index.top(&scope("bob"), &[1.0, 0.1], 2).is_empty());
    }

    #[test]
    fn document_filters_and_removal_keep_rows_aligned() {
        let index = index_with(&[
            ("a", 1, [1.0, 0.0]),
            ("b", 2, [0.0, 1.0]),
            ("c", 1, [0.6, 0.8]),
        ]);
        let only_2 = Scope {
            documents: Some(vec![Uuid::from_u128(2)]),
            ..scope("alice")
        };
        assert_eq!(index.top(&only_2, &[1.0, 0.0], 3), vec!["b"]);
        {
            let mut owners = index.owners.write().unwrap();
            remove_document(owners.get_mut("alice").unwrap(), Uuid::from_u128(1), 2);
        }
        assert_eq!(index.top(&scope("alice"), &[0.0, 1.0], 3), vec!["b"]);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn dot_is_a_dot_product() {
        let a: Vec<f32> = (0..7).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..7).map(|i| (i * i) as f32).sum::<f32>());
    }
}
