//! The chunker's consumer handler.

use std::collections::HashMap;
use std::sync::Arc;

use mnemo_bus::consumer::{
    append, append_failure, heartbeat, heartbeat_every, Delivery, Handler, Outcome,
};
use mnemo_bus::{BlobStore, Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::chunking::{chunk_id, chunk_pages, ChunkParams, PageText};
use mnemo_domain::text::ExtractedText;
use mnemo_domain::{document::ChunkRecord, Document, DocumentCommand, DocumentEvent, Stage};
use tracing::Instrument;

use crate::{ChunkerConfig, ChunkerError, ModelTokenizer};

/// Keeps each `DocumentChunked` message well under NATS's 1 MiB (and the
/// pipeline's ~256 KB target): text bytes per batch, and chunks per batch.
const BATCH_TEXT_BYTES: usize = 192 * 1024;
const BATCH_CHUNKS: usize = 128;

/// Cuts the text of documents whose extraction finished.
pub struct Chunker {
    executor: CommandExecutor<Document>,
    blobs: BlobStore,
    keys: mnemo_bus::Keyring,
    tokenizer: Arc<ModelTokenizer>,
    params: ChunkParams,
    heartbeat: std::time::Duration,
}

impl Chunker {
    pub async fn new(
        bus: &Bus,
        tokenizer: ModelTokenizer,
        config: &ChunkerConfig,
    ) -> Result<Arc<Self>, ChunkerError> {
        Ok(Arc::new(Self {
            executor: CommandExecutor::new(
                JetStreamEventStore::new(bus, "doc", 10_000),
                (),
                RetryPolicy::default(),
            ),
            blobs: bus.blob_store().await?,
            keys: bus.keys.clone(),
            tokenizer: Arc::new(tokenizer),
            params: config.params,
            heartbeat: heartbeat_every(config.ack_wait),
        }))
    }

    /// Chunks the text of `run`, extracted by the event at stream sequence
    /// `seen` (the state decided on always includes it).
    async fn chunk(
        &self,
        aggregate: &str,
        run: u32,
        seen: u64,
        text_sha: &str,
        md: &HashMap<String, String>,
    ) -> Result<(), ChunkerError> {
        let doc = self
            .executor
            .store()
            .load_at_least(aggregate, seen)
            .await?
            .aggregate;
        if doc.run != run || doc.stage != Some(Stage::Chunking) {
            return Ok(()); // superseded, cancelled, or done already
        }
        let Some(document_id) = doc.id.map(|i| i.to_string()) else {
            return Ok(());
        };
        let key = self.keys.for_aggregate(aggregate).await?;
        let bytes = self.blobs.get(&key, text_sha).await?;
        let text: ExtractedText =
            serde_json::from_slice(&bytes).map_err(ChunkerError::UnreadableText)?;
        let pages: Vec<PageText> = text
            .pages
            .into_iter()
            .enumerate()
            .map(|(i, text)| PageText {
                number: i as u32 + 1,
                text,
            })
            .collect();
        // Tokenizing is CPU work: keep it off the async threads.
        let (tokenizer, params) = (self.tokenizer.clone(), self.params);
        let drafts =
            tokio::task::spawn_blocking(move || chunk_pages(&pages, &*tokenizer, params)).await??;
        let records: Vec<ChunkRecord> = drafts
            .into_iter()
            .map(|d| ChunkRecord {
                chunk_id: chunk_id(&document_id, d.ordinal, &d.text),
                ordinal: d.ordinal,
                text: d.text,
                page_start: d.page_start,
                page_end: d.page_end,
                tokens: d.tokens,
            })
            .collect();
        let batches = batches(records);
        let count = batches.len();
        for (i, chunks) in batches.into_iter().enumerate() {
            let command = DocumentCommand::RecordChunks {
                run,
                batch: i as u32,
                last: i + 1 == count,
                chunks,
            };
            append(&self.executor, aggregate, command, md).await?;
        }
        Ok(())
    }
}

/// Splits chunks into batches bounded in bytes and count; always at least
/// one batch (an empty last batch still says "no more chunks").
fn batches(records: Vec<ChunkRecord>) -> Vec<Vec<ChunkRecord>> {
    let mut out = vec![Vec::new()];
    let mut bytes = 0;
    for r in records {
        let size = r.text.len() + 160;
        let current = out.last().map_or(0, Vec::len);
        if current > 0 && (bytes + size > BATCH_TEXT_BYTES || current >= BATCH_CHUNKS) {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(b) = out.last_mut() {
            b.push(r);
        }
    }
    out
}

impl Handler for Chunker {
    fn wants(&self, delivery: &Delivery) -> bool {
        delivery.has_event_type(&[mnemo_domain::DocumentEventKind::TextExtracted])
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let stored = match delivery.decode_or_reject::<DocumentEvent>().await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let Some((run, sha)) = stored.events.iter().find_map(|e| match e {
            DocumentEvent::TextExtracted {
                run, text_sha256, ..
            } => Some((*run, text_sha256.to_string())),
            _ => None,
        }) else {
            return Outcome::Done;
        };
        let aggregate = stored.envelope.aggregate_id.clone();
        let md = stored.envelope.caused_metadata();
        let span = tracing::info_span!("chunk", document = %aggregate, event_id = %stored.envelope.event_id, run);
        let work = self
            .chunk(&aggregate, run, delivery.stream_sequence, &sha, &md)
            .instrument(span);
        match heartbeat(delivery, self.heartbeat, work).await {
            Ok(()) => Outcome::Done,
            Err(e) => e.outcome(),
        }
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) {
        append_failure(&self.executor, delivery, |e| match e {
            DocumentEvent::TextExtracted { run, .. } => Some(DocumentCommand::RecordFailure {
                run: *run,
                stage: Stage::Chunking,
                reason: reason.to_owned(),
                retryable: true,
            }),
            _ => None,
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u32, len: usize) -> ChunkRecord {
        ChunkRecord {
            chunk_id: format!("c{i}"),
            ordinal: i,
            text: "x".repeat(len),
            page_start: 1,
            page_end: 1,
            tokens: 1,
        }
    }

    #[test]
    fn batches_stay_bounded_and_keep_order() {
        let recs: Vec<_> = (0..300).map(|i| record(i, 1500)).collect();
        let b = batches(recs);
        assert!(b.len() > 2);
        for batch in &b {
            assert!(batch.len() <= BATCH_CHUNKS);
            assert!(batch.iter().map(|r| r.text.len() + 160).sum::<usize>() <= BATCH_TEXT_BYTES);
        }
        let order: Vec<u32> = b.iter().flatten().map(|r| r.ordinal).collect();
        assert_eq!(order, (0..300).collect::<Vec<_>>());
        assert_eq!(
            batches(vec![]).len(),
            1,
            "an empty document still gets its last batch"
        );
    }
}
