//! A rebuild's writes over several PostgreSQL connections at once.
//!
//! PostgreSQL does a rebuild's work on one core per connection (lexemes,
//! index entries, tuples), so one connection leaves the other cores idle.
//! Every document projection's rows belong to one document, and every
//! learning row to one owner, so the documents (or owners) can be split
//! between connections with no two transactions touching the same row:
//! each batch is partitioned by document (or owner), and every partition
//! is applied in its own transaction, concurrently.
//!
//! Each partition keeps its own checkpoint (`<key>#<p>`), moved in the
//! same transaction as its rows, so an interrupted rebuild resumes exactly:
//! a partition skips what it already applied ([`crate::batch::apply_with`]
//! only folds messages above its checkpoint). A resume with another number
//! of connections would split the documents differently, so it starts over.

use futures::future::try_join_all;
use tokio_postgres::Client;

use crate::batch::{self, EventMessage};
use crate::learning::LearningMessage;
use crate::projection::{Feed, Projection};
use crate::ProjectorError;

/// A batch of decoded messages of one feed, in stream order.
#[derive(Debug)]
pub enum Batch {
    Documents(Vec<EventMessage>),
    Learning(Vec<LearningMessage>),
}

impl Batch {
    /// A batch of `feed` with no message.
    pub fn empty(feed: Feed) -> Self {
        match feed {
            Feed::Documents => Self::Documents(Vec::new()),
            Feed::Learning => Self::Learning(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Documents(m) => m.len(),
            Self::Learning(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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

    /// Applies one batch, partitioned by document (or owner), on every
    /// connection at once; every partition's checkpoint moves to
    /// `through`. Returns the events folded.
    pub async fn apply(
        &mut self,
        projections: &[Projection],
        batch: Batch,
        through: u64,
        lexemes_from: Option<&str>,
    ) -> Result<u64, ProjectorError> {
        match batch {
            Batch::Documents(messages) => {
                self.apply_documents(projections, messages, through, lexemes_from)
                    .await
            }
            Batch::Learning(messages) => self.apply_learning(messages, through).await,
        }
    }

    async fn apply_learning(
        &mut self,
        messages: Vec<LearningMessage>,
        through: u64,
    ) -> Result<u64, ProjectorError> {
        let n = self.clients.len();
        let mut parts: Vec<Vec<LearningMessage>> = (0..n).map(|_| Vec::new()).collect();
        for m in messages {
            parts[owner_partition(&m.owner_token, n)].push(m);
        }
        let applied = try_join_all(
            self.clients
                .iter_mut()
                .zip(&self.keys)
                .zip(&parts)
                .map(|((client, key), part)| crate::learning::apply(client, key, part, through)),
        )
        .await?;
        Ok(applied.iter().sum())
    }

    async fn apply_documents(
        &mut self,
        projections: &[Projection],
        messages: Vec<EventMessage>,
        through: u64,
        lexemes_from: Option<&str>,
    ) -> Result<u64, ProjectorError> {
        let n = self.clients.len();
        let mut parts: Vec<Vec<EventMessage>> = (0..n).map(|_| Vec::new()).collect();
        for m in messages {
            if m.erased == Some(true) {
                // An erasure deletes the owner's rows in every partition.
                for part in parts.iter_mut() {
                    part.push(m.clone());
                }
                continue;
            }
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

/// The partition of an owner's learning rows: stable across runs and
/// builds, like [`partition`] (FNV-1a, not the standard library's hasher,
/// whose output may change between Rust releases).
fn owner_partition(owner_token: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in owner_token.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::{owner_partition, partition};

    #[test]
    fn owners_split_and_always_the_same_way() {
        let owners: Vec<String> = (0..200).map(|i| format!("owner-{i}")).collect();
        let on_first = owners.iter().filter(|o| owner_partition(o, 2) == 0).count();
        assert!((60..140).contains(&on_first), "{on_first}");
        // Pinned: a resumed rebuild must split the owners as before.
        assert_eq!(owner_partition("alice", 2), owner_partition("alice", 2));
        assert_eq!(
            owner_partition("", 3),
            (0xcbf2_9ce4_8422_2325u64 % 3) as usize
        );
        assert_eq!(owner_partition("alice", 1), 0);
    }

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
