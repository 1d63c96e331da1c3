//! The embedder service's consumer handler: vectors for every chunk the
//! chunker records.
//!
//! - Every delivery in flight (up to `concurrency` documents) submits its
//!   texts to one [`Batcher`]: batches are cut across documents, by length,
//!   within a padded-token budget, and the model runs back to back while
//!   any document waits (see [`crate::batcher`]). An owner arriving beside
//!   another owner's work gets a second, express session's queue, so its
//!   model calls run beside the other's (see [`crate::express`]).
//! - The queue keys texts by (model id, SHA-256 of the text): identical
//!   text is embedded once per process, whether it comes again later
//!   (cache) or at the same time from another document (shared). Nothing is
//!   cached before it is computed, and nothing is recorded for a text that
//!   failed.
//! - Vectors are appended as they come, [`VECTORS_PER_EVENT`] per
//!   `ChunksEmbedded`, so progress moves during a long document; the
//!   delivery is marked in progress every quarter of the ack wait so
//!   JetStream does not hand work in progress to another copy.

use std::collections::HashMap;
use std::sync::Arc;

use mnemo_bus::consumer::{
    append, append_failure, heartbeat, heartbeat_every, Delivery, Handler, Outcome,
};
use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::document::ChunkVector;
use mnemo_domain::{Document, DocumentCommand, DocumentEvent, Stage};
use tracing::Instrument;

use crate::batcher::{Batcher, TextToEmbed};
use crate::error::EmbedderError;
use crate::express::Queues;
use crate::{Embedder, EmbedderServiceConfig};

/// Vectors per `ChunksEmbedded` message: 64 × 384 f32s as base64 are
/// ~135 KB, far below the 1 MiB message limit.
pub const VECTORS_PER_EVENT: usize = 64;

/// A chunk of the delivery that still needs a vector.
struct Todo {
    chunk_id: String,
    text: String,
    tokens: usize,
}

/// Embeds the chunks of every `DocumentChunked` batch.
pub struct EmbedderService {
    executor: CommandExecutor<Document>,
    model: Arc<Embedder>,
    queues: Queues,
    heartbeat: std::time::Duration,
}

impl EmbedderService {
    /// Builds the service and starts its batching task (needs a tokio
    /// runtime).
    pub fn new(bus: &Bus, config: &EmbedderServiceConfig) -> Arc<Self> {
        // With an express queue, the two take turns: its calls go first.
        let turns = Arc::new(crate::batcher::Turns::default());
        let express = config.express.clone().map(|m| {
            let turn = Some((turns.clone(), crate::batcher::Turn::First));
            Batcher::start_with(m, crate::express::plan(config.plan), turn).0
        });
        let main_turn = express
            .is_some()
            .then(|| (turns.clone(), crate::batcher::Turn::After));
        let (main, _task) = Batcher::start_with(config.model.clone(), config.plan, main_turn);
        let queues = Queues::new(main, express);
        Arc::new(Self {
            executor: CommandExecutor::new(
                JetStreamEventStore::new(bus, "doc", 10_000),
                (),
                RetryPolicy::default(),
            ),
            model: config.model.clone(),
            queues,
            heartbeat: heartbeat_every(config.ack_wait),
        })
    }

    /// What the main queue has done so far (cache hits, shared, embedded, ...).
    pub fn stats(&self) -> &crate::batcher::BatcherStats {
        self.queues.main().stats()
    }

    /// What the express queue has done so far, when there is one.
    pub fn express_stats(&self) -> Option<&crate::batcher::BatcherStats> {
        self.queues.express().map(Batcher::stats)
    }

    /// Appends `vectors` as one `ChunksEmbedded`.
    async fn record(
        &self,
        aggregate: &str,
        run: u32,
        vectors: Vec<ChunkVector>,
        md: &HashMap<String, String>,
    ) -> Result<(), EmbedderError> {
        let command = DocumentCommand::RecordEmbeddings {
            run,
            model: self.model.model_id().to_owned(),
            dims: self.model.dims() as u32,
            vectors,
        };
        Ok(append(&self.executor, aggregate, command, md).await?)
    }

    /// Embeds `chunks` of `run`, recorded by the event at stream sequence
    /// `seen` (the state decided on always includes it).
    async fn embed_chunks(
        &self,
        aggregate: &str,
        run: u32,
        seen: u64,
        chunks: Vec<Todo>,
        md: &HashMap<String, String>,
    ) -> Result<(), EmbedderError> {
        let doc = self
            .executor
            .store()
            .load_at_least(aggregate, seen)
            .await?
            .aggregate;
        if doc.run != run || !matches!(doc.stage, Some(Stage::Chunking | Stage::Embedding)) {
            return Ok(());
        }
        // Redelivery: only what has no vector yet.
        let mut ready: Vec<ChunkVector> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        let mut texts: Vec<TextToEmbed> = Vec::new();
        for todo in chunks
            .into_iter()
            .filter(|c| !doc.embedded.contains(&c.chunk_id))
        {
            texts.push(TextToEmbed {
                index: missing.len(),
                text: todo.text,
                tokens: todo.tokens,
            });
            missing.push(todo.chunk_id);
        }
        tracing::debug!(to_embed = missing.len(), "vectors needed");
        let mut remaining = missing.len();
        // The owner's lane (the aggregate id is `<owner token>.<document>`).
        let owner = aggregate.split_once('.').map_or(aggregate, |(o, _)| o);
        let place = self.queues.submit(owner, texts)?;
        tracing::debug!(route = ?place.route, "texts queued");
        let (mut results, mut hold) = (place.results, Some(place.hold));
        while remaining > 0 || !ready.is_empty() {
            // Append whenever a full event's worth is ready (or at the end).
            if ready.len() >= VECTORS_PER_EVENT || (remaining == 0 && !ready.is_empty()) {
                let take = ready.len().min(VECTORS_PER_EVENT);
                let part: Vec<ChunkVector> = ready.drain(..take).collect();
                self.record(aggregate, run, part, md).await?;
                continue;
            }
            let embedded = results.recv().await.ok_or(EmbedderError::QueueStopped)??;
            let chunk_id = missing
                .get(embedded.index)
                .ok_or(EmbedderError::UnknownText(embedded.index))?;
            ready.push(ChunkVector {
                chunk_id: chunk_id.clone(),
                vector: embedded.vector,
            });
            remaining -= 1;
            if remaining == 0 {
                // The model's part is done: the queue is free for others.
                hold = None;
            }
        }
        drop(hold);
        Ok(())
    }
}

impl Handler for EmbedderService {
    fn wants(&self, delivery: &Delivery) -> bool {
        delivery.has_event_type(&[mnemo_domain::DocumentEventKind::DocumentChunked])
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let stored = match delivery.decode_or_reject::<DocumentEvent>().await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let mut run = None;
        let mut chunks: Vec<Todo> = Vec::new();
        for e in &stored.events {
            if let DocumentEvent::DocumentChunked {
                run: r, chunks: c, ..
            } = e
            {
                run = Some(*r);
                chunks.extend(c.iter().map(|c| Todo {
                    chunk_id: c.chunk_id.clone(),
                    text: c.text.clone(),
                    tokens: c.tokens as usize,
                }));
            }
        }
        let Some(run) = run else { return Outcome::Done };
        // The model would silently drop the end of a longer text.
        let max = self.model.max_length();
        if let Some(long) = chunks.iter().find(|c| c.tokens > max) {
            return EmbedderError::ChunkTooLong {
                chunk_id: long.chunk_id.clone(),
                tokens: long.tokens,
                max,
            }
            .outcome();
        }
        let aggregate = stored.envelope.aggregate_id.clone();
        let md = stored.envelope.caused_metadata();
        let span = tracing::info_span!("embed", document = %aggregate, event_id = %stored.envelope.event_id, run, chunks = chunks.len());
        let work = self
            .embed_chunks(&aggregate, run, delivery.stream_sequence, chunks, &md)
            .instrument(span);
        match heartbeat(delivery, self.heartbeat, work).await {
            Ok(()) => Outcome::Done,
            Err(e) => e.outcome(),
        }
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) {
        append_failure(&self.executor, delivery, |e| match e {
            DocumentEvent::DocumentChunked { run, .. } => Some(DocumentCommand::RecordFailure {
                run: *run,
                stage: Stage::Embedding,
                reason: reason.to_owned(),
                retryable: true,
            }),
            _ => None,
        })
        .await;
    }
}
