//! A rebuild's writes over several PostgreSQL connections at once.
//!
//! PostgreSQL does a rebuild's work on one core per connection (lexemes,
//! index entries, tuples), so one connection leaves the other cores idle.
//! Every projection's rows belong to one document, so the documents can be
//! split between connections with no two transactions touching the same
//! row: each batch is partitioned by document, and every partition is
//! applied in its own transaction, concurrently.
//!
//! Each partition keeps its own checkpoint (`<key>#<p>`), moved in the
//! same transaction as its rows, so an interrupted rebuild resumes exactly:
//! a partition skips what it already applied ([`crate::batch::apply_with`]
//! only folds messages above its checkpoint). A resume with another number
//! of connections would split the documents differently, so it starts over.

use futures::future::try_join_all;
use tokio_postgres::Client;

use crate::batch::{self, EventMessage};
use crate::projection::Projection;
use crate::ProjectorError;

/// The scratch schema's writers, one per connection.
pub struct Writers {
    clients: Vec<Client>,
    keys: Vec<String>,
}

impl Writers {
    /// `clients` (at least one) write partitions of the checkpoint `key`.
    pub fn new(clients: Vec<Client>, key: &str) -> Self {
        let keys = (0..clients.len()).map(|p| format!("{key}#{p}")).collect();
        Self { clients, keys }
    }

    /// A connection for everything that is not a partition's batch.
    pub fn first(&self) -> &Client {
        &self.clients[0]
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether the scratch schema's checkpoints are this split's: one per
    /// partition, none more.
    pub async fn resumable(&self, key: &str) -> Result<bool, ProjectorError> {
        let n: i64 = self
            .first()
            .query_one(
                "SELECT count(*) FROM projection_checkpoints WHERE consumer LIKE $1 || '#%'",
                &[&key],
            )
            .await?
            .get(0);
        Ok(n == self.keys.len() as i64)
    }

    /// Where every partition has got to (the lowest checkpoint).
    pub async fn checkpoint(&self) -> Result<u64, ProjectorError> {
        let mut at = u64::MAX;
        for key in &self.keys {
            at = at.min(batch::checkpoint(self.first(), key).await?);
        }
        Ok(if at == u64::MAX { 0 } else { at })
    }

    /// Applies one batch, partitioned by document, on every connection at
    /// once; every partition's checkpoint moves to `through`. Returns the
    /// events folded.
    pub async fn apply(
        &mut self,
        projections: &[Projection],
        messages: Vec<EventMessage>,
        through: u64,
        lexemes_from: Option<&str>,
    ) -> Result<u64, ProjectorError> {
        let n = self.clients.len();
        let mut parts: Vec<Vec<EventMessage>> = (0..n).map(|_| Vec::new()).collect();
        for m in messages {
            parts[partition(m.document_id, n)].push(m);
        }
        let applied = try_join_all(self.clients.iter_mut().zip(&self.keys).zip(&parts).map(
            |((client, key), part)| {
                batch::apply_with(client, key, projections, part, through, lexemes_from)
            },
        ))
        .await?;
        Ok(applied.iter().map(|a| a.events).sum())
    }

    /// Runs groups of statements, one group per connection at a time and
    /// the groups concurrently (e.g. one table's index builds each).
    pub async fn run_groups(&self, groups: Vec<Vec<String>>) -> Result<(), ProjectorError> {
        let mut lanes: Vec<Vec<String>> = (0..self.clients.len()).map(|_| Vec::new()).collect();
        for (i, group) in groups.into_iter().enumerate() {
            lanes[i % self.clients.len()].extend(group);
        }
        try_join_all(
            self.clients
                .iter()
                .zip(lanes)
                .map(|(client, lane)| async move {
                    for sql in lane {
                        client.batch_execute(&sql).await?;
                    }
                    Ok::<(), ProjectorError>(())
                }),
        )
        .await?;
        Ok(())
    }
}

/// The partition of a message's document: stable across runs and builds
/// (a resume must split the documents as the interrupted run did), and
/// even (the low bits of a UUIDv7 are random).
fn partition(document: uuid::Uuid, n: usize) -> usize {
    (document.as_u128() % n as u128) as usize
}

#[cfg(test)]
mod tests {
    use super::partition;

    #[test]
    fn documents_split_evenly_and_always_the_same_way() {
        let ids: Vec<uuid::Uuid> = (0..1000).map(|_| uuid::Uuid::now_v7()).collect();
        let mut counts = [0usize; 2];
        for id in &ids {
            assert_eq!(partition(*id, 2), partition(*id, 2));
            counts[partition(*id, 2)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 400), "{counts:?}");
        assert_eq!(partition(uuid::Uuid::from_u128(7), 2), 1);
        assert_eq!(partition(uuid::Uuid::from_u128(7), 1), 0);
    }
}
