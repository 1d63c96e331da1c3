//! Applying a batch of event messages to projections, in one transaction
//! together with a checkpoint: the exactly-once core shared by the live
//! projector ([`crate::runner`]) and rebuilds ([`crate::rebuild`]).
//!
//! Each projection is a pure fold; a batch loads the rows it touches, folds
//! every event in stream order in memory, then writes each table with one
//! or two set-wise statements. Messages at or below the checkpoint were
//! applied before and are skipped, so re-reading part of the stream (after
//! a failure, or by a second projector) changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use mnemo_bus::envelope::Envelope;
use mnemo_bus::event_store::{decode_message, Decoded, StoredEvents};
use mnemo_bus::{BusError, Keyring};
use mnemo_domain::DocumentEvent;
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::chunks::ChunkChanges;
use crate::documents::{self, DocumentRow};
use crate::projection::{Feed, Projection};
use crate::{chunks, stage_timings, ProjectorError};

/// One decoded event message.
#[derive(Debug, Clone)]
pub struct EventMessage {
    pub sequence: u64,
    /// The owner token from the subject (`<ns>.ev.doc.<owner>.<doc>`).
    pub owner_token: String,
    pub document_id: Uuid,
    pub stored: StoredEvents<DocumentEvent>,
    /// The message as stored, for a dead letter should it come to that.
    pub payload: bytes::Bytes,
    /// A tombstone (its owner was erased: no events): `Some(true)` for the
    /// `LearnerErased` message, on which the owner's rows are deleted.
    pub erased: Option<bool>,
}

impl EventMessage {
    /// Decodes a message of the document subjects (opened with its
    /// owner's key; an erased owner's is a tombstone).
    pub async fn decode(
        keys: &Keyring,
        subject: &str,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &bytes::Bytes,
    ) -> Result<Self, BusError> {
        let owner_token = keys
            .namespace()
            .owner_token_of(subject)
            .unwrap_or_default()
            .to_owned();
        let (stored, erased) =
            match decode_message::<DocumentEvent>(keys, subject, sequence, headers, payload).await?
            {
                Decoded::Events(stored) => (stored, None),
                Decoded::Erased(t) => (
                    StoredEvents {
                        envelope: t.envelope,
                        stream_sequence: t.stream_sequence,
                        subject: t.subject,
                        events: Vec::new(),
                    },
                    Some(t.learner_erased),
                ),
            };
        let document_id = match erased {
            Some(true) => Uuid::nil(),
            _ => documents::document_id_of(&stored.envelope),
        };
        Ok(Self {
            sequence,
            owner_token,
            document_id,
            stored,
            payload: payload.clone(),
            erased,
        })
    }

    fn touches_chunks(&self) -> bool {
        self.stored.events.iter().any(|e| {
            !e.is_replay()
                && matches!(
                    e,
                    DocumentEvent::ChunksEmbedded { .. } | DocumentEvent::DocumentChunked { .. }
                )
        })
    }
}

/// Documents whose run may have become fully embedded in a batch, with the
/// envelope of the message that made it so (for causation/correlation).
pub type Candidates = HashMap<Uuid, (String, Envelope)>;

/// What a batch did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The checkpoint after the batch.
    pub checkpoint: u64,
    /// Events folded (messages above the old checkpoint).
    pub events: u64,
    /// Documents to check for indexing — also for messages applied before
    /// (a redelivery re-runs that check, never the writes).
    pub candidates: Candidates,
}

/// Reads every event of `feed` from sequence `from` on, in stream order,
/// with no gap (an ordered consumer: nothing to acknowledge, nothing kept
/// on the server once dropped).
pub async fn read_from(
    bus: &mnemo_bus::Bus,
    feed: Feed,
    from: u64,
) -> Result<async_nats::jetstream::consumer::pull::Ordered, ProjectorError> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let consumer = bus
        .events
        .create_consumer(OrderedConfig {
            name: Some(mnemo_bus::consumer::ordered_reader_name("projector")),
            filter_subject: format!("{}.>", bus.namespace.events_of(feed.kind())),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            ..Default::default()
        })
        .await
        .map_err(|e| ProjectorError::stream("cannot create an ordered reader", e))?;
    consumer
        .messages()
        .await
        .map_err(|e| ProjectorError::stream("cannot read the event stream", e))
}

/// One delivery of an ordered reader.
pub type Delivery =
    Result<async_nats::jetstream::Message, async_nats::jetstream::consumer::pull::OrderedError>;

/// Longest wait for a message the server said is pending (it is on its
/// way; this only bounds a batch should delivery stall).
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A live runner's batch, up to `max` deliveries: `first`, what is already
/// buffered, and — while the server says more is pending for this reader,
/// i.e. while catching up from an old checkpoint — what is on its way.
/// Caught up, nothing is waited for: a batch is what has arrived.
pub async fn fill(
    messages: &mut async_nats::jetstream::consumer::pull::Ordered,
    first: Delivery,
    max: usize,
) -> Vec<Delivery> {
    use futures::{FutureExt, StreamExt};
    let pending = |d: &Delivery| {
        d.as_ref()
            .ok()
            .and_then(|m| m.info().ok())
            .is_some_and(|i| i.pending > 0)
    };
    let mut more = pending(&first);
    let mut raw = vec![first];
    while raw.len() < max {
        let next = match messages.next().now_or_never() {
            Some(next) => next,
            None if more => match tokio::time::timeout(PENDING_WAIT, messages.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => break,
        };
        let Some(d) = next else { break };
        more = pending(&d);
        raw.push(d);
    }
    raw
}

/// The checkpoint stored under `key` (0 before the first batch).
pub async fn checkpoint(client: &impl GenericClient, key: &str) -> Result<u64, ProjectorError> {
    let row = client
        .query_opt(
            "SELECT last_sequence FROM projection_checkpoints WHERE consumer = $1",
            &[&key],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
}

/// Applies `messages` (in stream order) to `projections` and moves the
/// checkpoint `key` to `through` (the last sequence of the batch, which may
/// be above the last message when undecodable ones were set aside), all in
/// one transaction.
pub async fn apply(
    client: &mut Client,
    key: &str,
    projections: &[Projection],
    messages: &[EventMessage],
    through: u64,
) -> Result<Applied, ProjectorError> {
    let mut applied = apply_with(client, key, projections, messages, through, None).await?;
    for m in messages.iter().filter(|m| m.touches_chunks()) {
        applied.candidates.insert(
            m.document_id,
            (m.owner_token.clone(), m.stored.envelope.clone()),
        );
    }
    Ok(applied)
}

/// [`apply`], taking chunks' lexemes from `lexemes_from.chunks` where the
/// same chunk is already there (a rebuild beside the live schema), and
/// without indexing candidates (a rebuild declares nothing indexed).
pub async fn apply_with(
    client: &mut Client,
    key: &str,
    projections: &[Projection],
    messages: &[EventMessage],
    through: u64,
    lexemes_from: Option<&str>,
) -> Result<Applied, ProjectorError> {
    let tx = client.transaction().await?;
    let at = lock_checkpoint(&tx, key).await?;
    let mut applied = Applied {
        checkpoint: at.max(through),
        ..Default::default()
    };
    let fresh: Vec<&EventMessage> = messages.iter().filter(|m| m.sequence > at).collect();
    if !fresh.is_empty() {
        applied.events = fold_and_flush(&tx, projections, &fresh, lexemes_from).await?;
    }
    if applied.checkpoint > at {
        set_checkpoint(&tx, key, applied.checkpoint).await?;
    }
    tx.commit().await?;
    Ok(applied)
}

/// Creates the checkpoint `key` if needed and locks its row for the
/// transaction; returns where it stands. The row lock serialises
/// projectors (and a rebuild's swap) on this checkpoint.
pub async fn lock_checkpoint(tx: &impl GenericClient, key: &str) -> Result<u64, ProjectorError> {
    tx.execute(
        "INSERT INTO projection_checkpoints (consumer, last_sequence) VALUES ($1, 0)
         ON CONFLICT (consumer) DO NOTHING",
        &[&key],
    )
    .await?;
    Ok(tx
        .query_one(
            "SELECT last_sequence FROM projection_checkpoints WHERE consumer = $1 FOR UPDATE",
            &[&key],
        )
        .await?
        .get::<_, i64>(0) as u64)
}

/// Moves the (locked) checkpoint `key` to `sequence`.
pub async fn set_checkpoint(
    tx: &impl GenericClient,
    key: &str,
    sequence: u64,
) -> Result<(), ProjectorError> {
    tx.execute(
        "UPDATE projection_checkpoints SET last_sequence = $2, updated_at = now() WHERE consumer = $1",
        &[&key, &(sequence as i64)],
    )
    .await?;
    Ok(())
}

/// Waits until the checkpoint `key` reaches `sequence`, polling it until
/// `timeout`. Returns the checkpoint reached.
pub async fn wait_for(
    client: &impl GenericClient,
    key: &str,
    sequence: u64,
    timeout: std::time::Duration,
) -> Result<u64, ProjectorError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let at = checkpoint(client, key).await?;
        if at >= sequence || tokio::time::Instant::now() >= deadline {
            return Ok(at);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn fold_and_flush(
    tx: &impl GenericClient,
    projections: &[Projection],
    fresh: &[&EventMessage],
    lexemes_from: Option<&str>,
) -> Result<u64, ProjectorError> {
    // Tombstones fold nothing; a `LearnerErased` deletes its owner's rows
    // once the batch's other writes are in (in log order: whatever of the
    // owner came before it is gone, and nothing of theirs comes after).
    let erased: BTreeSet<&str> = fresh
        .iter()
        .filter(|m| m.erased == Some(true))
        .map(|m| m.owner_token.as_str())
        .collect();
    let fresh: Vec<&EventMessage> = fresh
        .iter()
        .copied()
        .filter(|m| m.erased.is_none())
        .collect();
    let events = fold_events(tx, projections, &fresh, lexemes_from).await?;
    for owner in erased {
        delete_owner(tx, projections, owner).await?;
    }
    Ok(events)
}

/// Deletes every row of `owner` from the document read models.
async fn delete_owner(
    tx: &impl GenericClient,
    projections: &[Projection],
    owner: &str,
) -> Result<(), ProjectorError> {
    if projections.contains(&Projection::Chunks) {
        tx.execute(
            "DELETE FROM chunk_embeddings WHERE chunk_id IN (SELECT chunk_id FROM chunks WHERE owner_token = $1)",
            &[&owner],
        )
        .await?;
        tx.execute("DELETE FROM chunks WHERE owner_token = $1", &[&owner])
            .await?;
    }
    if projections.contains(&Projection::Documents) {
        tx.execute("DELETE FROM documents WHERE owner_token = $1", &[&owner])
            .await?;
    }
    if projections.contains(&Projection::StageTimings) {
        tx.execute(
            "DELETE FROM stage_timings WHERE owner_token = $1",
            &[&owner],
        )
        .await?;
    }
    tracing::info!(owner, "an erased learner's document rows deleted");
    Ok(())
}

async fn fold_events(
    tx: &impl GenericClient,
    projections: &[Projection],
    fresh: &[&EventMessage],
    lexemes_from: Option<&str>,
) -> Result<u64, ProjectorError> {
    let ids: Vec<Uuid> = fresh
        .iter()
        .map(|m| m.document_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let has = |p: Projection| projections.contains(&p);
    // A document whose upload is in the batch has no rows yet (the upload
    // is its first event, and nothing of it is at or below the
    // checkpoint): only the others' rows are read. In a rebuild that is
    // almost every document.
    let uploaded: HashSet<Uuid> = fresh
        .iter()
        .filter(|m| {
            m.stored
                .events
                .iter()
                .any(|e| matches!(e, DocumentEvent::DocumentUploaded(_)))
        })
        .map(|m| m.document_id)
        .collect();
    let stored: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| !uploaded.contains(id))
        .collect();
    let mut rows: HashMap<Uuid, Option<DocumentRow>> = HashMap::new();
    if has(Projection::Documents) {
        let mut loaded = if stored.is_empty() {
            HashMap::new()
        } else {
            documents::load(tx, &stored).await?
        };
        rows = ids.iter().map(|id| (*id, loaded.remove(id))).collect();
    }
    let mut timings = if has(Projection::StageTimings) && !stored.is_empty() {
        stage_timings::load(tx, &stored).await?
    } else {
        Default::default()
    };
    let mut chunk_changes = ChunkChanges::default();
    let mut events = 0;
    for m in fresh {
        let (seq, when, owner) = (m.sequence, m.stored.envelope.occurred_at, &m.owner_token);
        let span = tracing::debug_span!("project", event_id = %m.stored.envelope.event_id, document = %m.stored.envelope.aggregate_id, seq);
        let _e = span.enter();
        for event in &m.stored.events {
            events += 1;
            if event.is_replay() {
                // A backfill's vectors: stored, but the document's row and
                // its stage timings describe the pipeline run, which ended.
                if has(Projection::Chunks) {
                    chunk_changes.fold(m.document_id, owner, when, event);
                }
                continue;
            }
            if let Some(row) = rows.get_mut(&m.document_id) {
                DocumentRow::fold(row, owner, seq, when, event);
            }
            if has(Projection::StageTimings) {
                timings.fold_event(m.document_id, owner, event, when);
            }
            if has(Projection::Chunks) {
                chunk_changes.fold(m.document_id, owner, when, event);
            }
        }
    }
    let changed: Vec<&DocumentRow> = rows.values().flatten().collect();
    documents::flush(tx, &changed).await?;
    chunks::flush(tx, &chunk_changes, lexemes_from).await?;
    stage_timings::flush(tx, &timings).await?;
    Ok(events)
}
