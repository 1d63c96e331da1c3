//! The embedder service: vectors for every chunk the chunker records.
//!
//! - Every delivery in flight (up to `concurrency` documents) submits its
//!   texts to one [`Batcher`]: batches are cut across documents, by length,
//!   within a padded-token budget, and the model runs back to back while
//!   any document waits (see [`crate::batcher`]).
//! - The queue keys texts by (model id, SHA-256 of the text): identical
//!   text is embedded once per process, whether it comes again later
//!   (cache) or at the same time from another document (shared). Nothing is
//!   cached before it is computed, and nothing is recorded for a text that
//!   failed.
//! - Vectors are appended as they come, [`VECTORS_PER_EVENT`] per
//!   `ChunksEmbedded`, so progress moves during a long document; the
//!   delivery is marked in progress every [`IN_PROGRESS_EVERY`] so
//!   JetStream does not hand work in progress to another copy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mnemo_bus::consumer::{append_failure, append_result, Delivery, Handler, Outcome};
use mnemo_bus::{Bus, CommandExecutor, ConsumerSpec, JetStreamEventStore, RetryPolicy};
use mnemo_domain::document::ChunkVector;
use mnemo_domain::{Document, DocumentCommand, DocumentErrorKind, DocumentEvent, Stage};
use tracing::Instrument;

use crate::batcher::{BatchPlan, Batcher, TextToEmbed};
use crate::Embedder;

/// Vectors per `ChunksEmbedded` message: 64 × 384 f32s as base64 are
/// ~135 KB, far below the 1 MiB message limit.
pub const VECTORS_PER_EVENT: usize = 64;
/// How often a delivery waiting on the model tells JetStream it is alive
/// (well inside the consumer's ack wait).
pub const IN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A chunk of the delivery that still needs a vector.
struct Todo {
    chunk_id: String,
    text: String,
    tokens: usize,
}

pub struct EmbedderService {
    executor: CommandExecutor<Document>,
    model: Arc<Embedder>,
    batcher: Batcher,
}

impl EmbedderService {
    /// Builds the service and starts its batching task (needs a tokio
    /// runtime).
    pub fn new(bus: &Bus, model: Arc<Embedder>, plan: BatchPlan) -> Arc<Self> {
        let (batcher, _task) = Batcher::start(model.clone(), plan);
        Arc::new(Self {
            executor: CommandExecutor::new(
                JetStreamEventStore::new(bus, "doc", 10_000),
                (),
                RetryPolicy::default(),
            ),
            model,
            batcher,
        })
    }

    /// What the queue has done so far (cache hits, shared, embedded, ...).
    pub fn stats(&self) -> &crate::batcher::BatcherStats {
        self.batcher.stats()
    }

    /// Appends `vectors` as one `ChunksEmbedded`.
    async fn record(
        &self,
        aggregate: &str,
        run: u32,
        vectors: Vec<ChunkVector>,
        md: &HashMap<String, String>,
    ) -> Outcome {
        let command = DocumentCommand::RecordEmbeddings {
            run,
            model: self.model.model_id().to_owned(),
            dims: self.model.dims() as u32,
            vectors,
        };
        append_result(&self.executor, aggregate, command, md, |e| {
            matches!(
                e.kind(),
                DocumentErrorKind::Stale | DocumentErrorKind::FailedPrecondition
            )
        })
        .await
    }

    async fn embed_chunks(
        &self,
        delivery: &Delivery,
        aggregate: &str,
        run: u32,
        chunks: Vec<Todo>,
        md: &HashMap<String, String>,
    ) -> Outcome {
        let doc = match self.executor.store().load(aggregate).await {
            Ok(c) => c.aggregate,
            Err(e) => {
                return Outcome::Retry {
                    reason: e.to_string(),
                }
            }
        };
        if doc.run != run || !matches!(doc.stage, Some(Stage::Chunking | Stage::Embedding)) {
            return Outcome::Done;
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
        let mut results = match self.batcher.submit(texts) {
            Ok(r) => Some(r),
            Err(e) => return Outcome::Retry { reason: e.report() },
        };
        let mut alive = tokio::time::interval(IN_PROGRESS_EVERY);
        alive.tick().await; // the first tick is immediate
        while remaining > 0 || !ready.is_empty() {
            // Append whenever a full event's worth is ready (or at the end).
            if ready.len() >= VECTORS_PER_EVENT || (remaining == 0 && !ready.is_empty()) {
                let take = ready.len().min(VECTORS_PER_EVENT);
                let part: Vec<ChunkVector> = ready.drain(..take).collect();
                let outcome = self.record(aggregate, run, part, md).await;
                if outcome != Outcome::Done {
                    return outcome;
                }
                continue;
            }
            let Some(rx) = results.as_mut() else { break };
            tokio::select! {
                next = rx.recv() => match next {
                    Some(Ok(embedded)) => {
                        let Some(chunk_id) = missing.get(embedded.index) else {
                            return Outcome::Retry { reason: "the embedding queue returned an unknown text".into() };
                        };
                        ready.push(ChunkVector { chunk_id: chunk_id.clone(), vector: embedded.vector });
                        remaining -= 1;
                    }
                    Some(Err(e)) => return Outcome::Retry { reason: e.report() },
                    None => return Outcome::Retry { reason: "the embedding queue stopped".into() },
                },
                _ = alive.tick() => {
                    let _ = delivery.in_progress().await;
                }
            }
        }
        results.take();
        Outcome::Done
    }
}

impl Handler for EmbedderService {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        if !delivery.has_event_type(&[mnemo_domain::DocumentEventKind::DocumentChunked]) {
            return Outcome::Done;
        }
        let stored = match delivery.decode_or_reject::<DocumentEvent>() {
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
            return Outcome::Reject {
                reason: format!(
                    "chunk {} has {} tokens but the model takes {max}: the chunker and the embedder disagree on --max-tokens",
                    long.chunk_id, long.tokens
                ),
            };
        }
        let aggregate = stored.envelope.aggregate_id.clone();
        let md = stored.envelope.caused_metadata();
        let span = tracing::info_span!("embed", document = %aggregate, event_id = %stored.envelope.event_id, run, chunks = chunks.len());
        self.embed_chunks(delivery, &aggregate, run, chunks, &md)
            .instrument(span)
            .await
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

/// Documents in flight at once by default: enough that the batching queue
/// never runs dry while one delivery appends its events.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Runs the embedder service until `shutdown` resolves: `concurrency`
/// deliveries in flight, all feeding one batching queue.
pub async fn run(
    bus: &Bus,
    model: Arc<Embedder>,
    concurrency: usize,
    plan: BatchPlan,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), mnemo_bus::BusError> {
    let mut spec = ConsumerSpec::new("embedder", format!("{}.>", bus.namespace.events_of("doc")));
    spec.concurrency = concurrency.max(1);
    spec.ack_wait = IN_PROGRESS_EVERY * 6;
    let service = EmbedderService::new(bus, model, plan);
    let result = mnemo_bus::consumer::run(bus, spec, service.clone(), shutdown).await;
    let (cache_hits, shared, embedded, batches, failed) = service.stats().snapshot();
    tracing::info!(
        cache_hits,
        shared,
        embedded,
        batches,
        failed,
        "embedder stopped"
    );
    result
}
