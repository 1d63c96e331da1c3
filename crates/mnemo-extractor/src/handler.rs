//! The extractor's consumer handler: which events it reacts to and what it
//! appends for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use mnemo_bus::consumer::{
    append, append_failure, heartbeat, heartbeat_every, Delivery, Handler, Outcome,
};
use mnemo_bus::{BlobStore, Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::content::ContentType;
use mnemo_domain::text::ExtractedText;
use mnemo_domain::{Document, DocumentCommand, DocumentEvent, Sha256Hex, Stage};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::error::{ExtractorError, ExtractorErrorKind};
use crate::{ExtractError, ExtractorConfig};

/// Extracts text for documents whose processing run starts.
pub struct Extractor {
    executor: CommandExecutor<Document>,
    blobs: BlobStore,
    keys: mnemo_bus::Keyring,
    config: ExtractorConfig,
}

impl Extractor {
    pub async fn new(bus: &Bus, config: ExtractorConfig) -> Result<Arc<Self>, mnemo_bus::BusError> {
        Ok(Arc::new(Self {
            executor: CommandExecutor::new(
                JetStreamEventStore::new(bus, "doc", 10_000),
                (),
                RetryPolicy::default(),
            ),
            blobs: bus.blob_store().await?,
            keys: bus.keys.clone(),
            config,
        }))
    }

    /// Appends a command; a refusal because the run moved on is not an error.
    async fn record(
        &self,
        aggregate: &str,
        command: DocumentCommand,
        md: &HashMap<String, String>,
    ) -> Result<(), ExtractorError> {
        Ok(append(&self.executor, aggregate, command, md).await?)
    }

    /// The run that an event starts, if it starts one.
    fn started_run(event: &DocumentEvent) -> Option<u32> {
        match event {
            DocumentEvent::DocumentUploaded(_) => Some(1),
            DocumentEvent::ReprocessRequested { run, .. } => Some(*run),
            _ => None,
        }
    }

    /// Extracts the text of `run`, started by the event at stream sequence
    /// `seen` (the state decided on always includes it).
    async fn extract(
        &self,
        aggregate: &str,
        run: u32,
        seen: u64,
        md: &HashMap<String, String>,
    ) -> Result<(), ExtractorError> {
        let state = self.executor.store().load_at_least(aggregate, seen).await?;
        let doc = state.aggregate;
        // Only the current run, and only before its text exists (a
        // redelivery after TextExtracted has nothing left to do).
        if doc.run != run || !matches!(doc.stage, Some(Stage::Uploaded | Stage::Extracting)) {
            return Ok(());
        }
        let (Some(sha), Some(content_type)) = (doc.sha256.clone(), doc.content_type) else {
            return Ok(());
        };
        tracing::info!(?content_type, "extracting");
        let key = self.keys.for_aggregate(aggregate).await?;
        let bytes = self.blobs.get(&key, sha.as_str()).await?;
        let too_large = ExtractError::TooLarge {
            limit_mib: self.config.max_text_bytes / (1024 * 1024),
        };
        let is_text = matches!(content_type, ContentType::PlainText | ContentType::Markdown);
        if is_text && bytes.len() as u64 > self.config.max_text_bytes {
            return Err(too_large.into());
        }
        let text = match content_type {
            ContentType::PlainText | ContentType::Markdown => ExtractedText {
                // A form feed separates pages in plain text, if anywhere.
                pages: String::from_utf8_lossy(&bytes)
                    .split('\u{c}')
                    .map(str::to_owned)
                    .collect(),
                extractor: "utf8".into(),
                pages_failed: 0,
            },
            ContentType::Pdf => self.extract_pdf(aggregate, run, &bytes, md).await?,
        };
        if text.is_blank() {
            return Err(ExtractError::NoTextLayer.into());
        }
        if text.pages.iter().map(|p| p.len() as u64).sum::<u64>() > self.config.max_text_bytes {
            return Err(too_large.into());
        }
        drop(bytes);
        let json = serde_json::to_vec(&text)?;
        let digest: [u8; 32] = Sha256::digest(&json).into();
        let text_sha = Sha256Hex::from_digest(&digest);
        self.blobs
            .put(&key, text_sha.as_str(), &mut json.as_slice())
            .await?;
        let command = DocumentCommand::RecordTextExtracted {
            run,
            text_sha256: text_sha,
            pages: text.pages.len() as u32,
            chars: text.chars(),
            extractor: text.extractor.clone(),
            pages_failed: text.pages_failed,
        };
        self.record(aggregate, command, md).await
    }

    async fn extract_pdf(
        &self,
        aggregate: &str,
        run: u32,
        bytes: &[u8],
        md: &HashMap<String, String>,
    ) -> Result<ExtractedText, ExtractorError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let work = crate::pdf_text::extract(bytes, &self.config, &tx);
        tokio::pin!(work);
        let mut last_report = Instant::now();
        loop {
            tokio::select! {
                result = &mut work => return Ok(result?),
                Some((done, total)) = rx.recv() => {
                    if last_report.elapsed() < self.config.progress_every {
                        continue;
                    }
                    last_report = Instant::now();
                    if done < total {
                        let progress = DocumentCommand::RecordExtractionProgress {
                            run,
                            pages_done: done,
                            pages_total: total,
                        };
                        // Progress is best effort; the result is what must land.
                        if let Err(e) = self.record(aggregate, progress, md).await {
                            tracing::warn!(error = %e, "progress not recorded");
                        }
                    }
                }
            }
        }
    }
}

impl Handler for Extractor {
    fn wants(&self, delivery: &Delivery) -> bool {
        delivery.has_event_type(&[
            mnemo_domain::DocumentEventKind::DocumentUploaded,
            mnemo_domain::DocumentEventKind::ReprocessRequested,
        ])
    }

    async fn handle(&self, delivery: &Delivery) -> Outcome {
        let stored = match delivery.decode_or_reject::<DocumentEvent>().await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let Some(run) = stored.events.iter().find_map(Extractor::started_run) else {
            return Outcome::Done;
        };
        let aggregate = stored.envelope.aggregate_id.clone();
        let md = stored.envelope.caused_metadata();
        let span = tracing::info_span!("extract", document = %aggregate, event_id = %stored.envelope.event_id, run);
        // A pdf-rs timeout followed by the `pdftotext` fallback can outlast
        // the ack wait: the heartbeat keeps the delivery this copy's.
        let work = self
            .extract(&aggregate, run, delivery.stream_sequence, &md)
            .instrument(span);
        match heartbeat(delivery, heartbeat_every(self.config.ack_wait), work).await {
            Ok(()) => Outcome::Done,
            Err(e) if e.kind() == ExtractorErrorKind::Document => {
                let failed = DocumentCommand::RecordFailure {
                    run,
                    stage: Stage::Extracting,
                    reason: e.to_string(),
                    retryable: false,
                };
                match self.record(&aggregate, failed, &md).await {
                    Ok(()) => Outcome::Done,
                    Err(e) => e.outcome(),
                }
            }
            Err(e) => e.outcome(),
        }
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) {
        append_failure(&self.executor, delivery, |e| {
            Extractor::started_run(e).map(|run| DocumentCommand::RecordFailure {
                run,
                stage: Stage::Extracting,
                reason: reason.to_owned(),
                retryable: true,
            })
        })
        .await;
    }
}
