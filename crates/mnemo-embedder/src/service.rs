//! The embedder service: vectors for every chunk the chunker records.
//!
//! - Texts are embedded shortest-first in batches of similar length:
//!   fastembed pads a batch to its longest text, so mixing lengths wastes
//!   most of the work (vectors are bit-identical whatever the batch).
//! - Vectors are cached by (model id, SHA-256 of the text): identical text
//!   is never embedded twice in a process. Nothing is cached before it is
//!   computed, and nothing is recorded for a batch that failed.
//! - Between batches the delivery is marked in progress so JetStream does
//!   not hand a long document to another copy.
//! - Cross-document batching is not done yet: one `DocumentChunked` message
//!   is embedded at a time (up to `concurrency` in parallel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mnemo_bus::consumer::{append_failure, append_result, Delivery, Handler, Outcome};
use mnemo_bus::{Bus, CommandExecutor, ConsumerSpec, JetStreamEventStore, RetryPolicy};
use mnemo_domain::document::ChunkVector;
use mnemo_domain::{Document, DocumentCommand, DocumentErrorKind, DocumentEvent, Stage};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::Embedder;

/// Vectors per `ChunksEmbedded` message: 32 × 384 floats as JSON stay far
/// below the 1 MiB message limit (~130 KB).
const VECTORS_PER_EVENT: usize = 32;
/// Cached vectors (1.5 KB each).
const CACHE_ENTRIES: usize = 20_000;

pub struct EmbedderService {
    executor: CommandExecutor<Document>,
    model: Arc<Embedder>,
    cache: Mutex<HashMap<[u8; 32], Vec<f32>>>,
}

impl EmbedderService {
    pub fn new(bus: &Bus, model: Arc<Embedder>) -> Arc<Self> {
        Arc::new(Self {
            executor: CommandExecutor::new(
                JetStreamEventStore::new(bus, "doc", 10_000),
                (),
                RetryPolicy::default(),
            ),
            model,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn key(&self, text: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.model.model_id().as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.finalize().into()
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Vec<f32>> {
        self.cache.lock().ok()?.get(key).cloned()
    }

    fn remember(&self, key: [u8; 32], vector: &[f32]) {
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_ENTRIES {
                c.clear(); // coarse, and correctness never depends on it
            }
            c.insert(key, vector.to_vec());
        }
    }

    async fn embed_chunks(
        &self,
        delivery: &Delivery,
        aggregate: &str,
        run: u32,
        chunk_ids: Vec<(String, String)>,
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
        let mut todo: Vec<(String, String)> = chunk_ids
            .into_iter()
            .filter(|(id, _)| !doc.embedded.contains(id))
            .collect();
        todo.sort_by_key(|(_, text)| text.len());
        let mut done: Vec<ChunkVector> = Vec::with_capacity(todo.len());
        let mut missing: Vec<(String, String, [u8; 32])> = Vec::new();
        for (id, text) in todo {
            let key = self.key(&text);
            match self.cached(&key) {
                Some(vector) => done.push(ChunkVector {
                    chunk_id: id,
                    vector,
                }),
                None => missing.push((id, text, key)),
            }
        }
        for batch in missing.chunks(self.model.batch_size()) {
            let texts: Vec<String> = batch.iter().map(|(_, t, _)| t.clone()).collect();
            let model = self.model.clone();
            let vectors = match tokio::task::spawn_blocking(move || model.embed(&texts)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Outcome::Retry { reason: e.report() },
                Err(e) => {
                    return Outcome::Retry {
                        reason: format!("embedding task failed: {e}"),
                    }
                }
            };
            for ((id, _, key), vector) in batch.iter().zip(vectors) {
                self.remember(*key, &vector);
                done.push(ChunkVector {
                    chunk_id: id.clone(),
                    vector,
                });
            }
            let _ = delivery.in_progress().await;
        }
        for part in done.chunks(VECTORS_PER_EVENT) {
            let command = DocumentCommand::RecordEmbeddings {
                run,
                model: self.model.model_id().to_owned(),
                dims: self.model.dims() as u32,
                vectors: part.to_vec(),
            };
            let outcome = append_result(&self.executor, aggregate, command, md, |e| {
                matches!(
                    e.kind(),
                    DocumentErrorKind::Stale | DocumentErrorKind::FailedPrecondition
                )
            })
            .await;
            if outcome != Outcome::Done {
                return outcome;
            }
        }
        Outcome::Done
    }
}

impl Handler for EmbedderService {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let stored = match delivery.decode_or_reject::<DocumentEvent>() {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let mut run = None;
        let mut chunks = Vec::new();
        for e in &stored.events {
            if let DocumentEvent::DocumentChunked {
                run: r, chunks: c, ..
            } = e
            {
                run = Some(*r);
                chunks.extend(c.iter().map(|c| (c.chunk_id.clone(), c.text.clone())));
            }
        }
        let Some(run) = run else { return Outcome::Done };
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

/// Runs the embedder service until `shutdown` resolves.
pub async fn run(
    bus: &Bus,
    model: Arc<Embedder>,
    concurrency: usize,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), mnemo_bus::BusError> {
    let mut spec = ConsumerSpec::new("embedder", format!("{}.>", bus.namespace.events_of("doc")));
    spec.concurrency = concurrency.max(1);
    spec.ack_wait = std::time::Duration::from_secs(60);
    mnemo_bus::consumer::run(bus, spec, EmbedderService::new(bus, model), shutdown).await
}
