//! The document aggregate's state, `handle` (decide) and `apply` (fold).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::content::ContentType;
use crate::document::{ChunkVector, DocumentCommand, DocumentError, DocumentEvent, FailureCode};
use crate::ids::{DocumentId, Sha256Hex};
use crate::owner::OwnerId;

/// Where a document is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Uploaded,
    Extracting,
    Chunking,
    Embedding,
    Indexed,
    Failed,
    Cancelled,
}

impl Stage {
    /// Indexed, failed and cancelled end a run.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Indexed | Self::Failed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploaded => "uploaded",
            Self::Extracting => "extracting",
            Self::Chunking => "chunking",
            Self::Embedding => "embedding",
            Self::Indexed => "indexed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Uploaded,
            Self::Extracting,
            Self::Chunking,
            Self::Embedding,
            Self::Indexed,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document as its events describe it. `Default` is "does not exist yet".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: Option<DocumentId>,
    pub owner: Option<OwnerId>,
    pub filename: String,
    pub content_type: Option<ContentType>,
    pub size_bytes: u64,
    pub sha256: Option<Sha256Hex>,
    pub topic: Option<String>,
    pub batch_id: String,
    pub idempotency_key: Option<String>,
    /// The uploader's own id for the document, if given.
    pub external_id: Option<String>,
    /// `None` until uploaded.
    pub stage: Option<Stage>,
    /// Current processing run (1 after upload, +1 per reprocess).
    pub run: u32,
    /// Why the run failed or was cancelled.
    pub reason: Option<String>,
    /// When the run failed: the stage it failed in, and the code.
    #[serde(default)]
    pub failure: Option<(Stage, FailureCode)>,
    pub pages_done: u32,
    pub pages_total: u32,
    /// Pages of this run's text that could not be read (a partial extraction).
    pub pages_failed: u32,
    pub text_sha256: Option<Sha256Hex>,
    /// Chunk batches recorded in this run, and the index of the last one once known.
    pub chunk_batches: BTreeSet<u32>,
    pub last_chunk_batch: Option<u32>,
    /// Chunk ids of this run, and those that have a vector.
    pub chunk_ids: BTreeSet<String>,
    pub embedded: BTreeSet<String>,
    /// The model the pipeline embedded this run with (its first vectors').
    #[serde(default)]
    pub embedding_model: Option<String>,
    /// The last indexed run: the one search serves, kept while a newer run
    /// is processed (and when that one fails or is cancelled).
    #[serde(default)]
    pub indexed: Option<IndexedRun>,
}

/// What a backfill needs to know of the run search serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexedRun {
    pub run: u32,
    pub chunk_ids: BTreeSet<String>,
    /// The pipeline's model for the run.
    pub embedding_model: Option<String>,
    /// Chunk ids with a backfilled vector, by model.
    pub backfilled: BTreeMap<String, BTreeSet<String>>,
}

impl IndexedRun {
    /// Whether every chunk of the run has a vector of `model`, from the
    /// pipeline or a backfill.
    pub fn covered_by(&self, model: &str) -> bool {
        self.embedding_model.as_deref() == Some(model)
            || self
                .backfilled
                .get(model)
                .is_some_and(|b| b.len() == self.chunk_ids.len())
    }
}

impl Document {
    /// Every chunk batch of the run has been recorded.
    pub fn all_chunks_recorded(&self) -> bool {
        self.last_chunk_batch
            .is_some_and(|last| (0..=last).all(|b| self.chunk_batches.contains(&b)))
    }

    /// Every recorded chunk of the run has a vector.
    pub fn all_chunks_embedded(&self) -> bool {
        self.all_chunks_recorded() && self.embedded.len() == self.chunk_ids.len()
    }

    /// Checks vectors against the run's chunks and the declared width.
    fn check_vectors(
        chunk_ids: &BTreeSet<String>,
        dims: u32,
        vectors: &[ChunkVector],
    ) -> Result<(), DocumentError> {
        if let Some(v) = vectors.iter().find(|v| v.vector.len() != dims as usize) {
            return Err(DocumentError::InvalidInput(format!(
                "vector for {} has {} dimensions, expected {dims}",
                v.chunk_id,
                v.vector.len()
            )));
        }
        if let Some(v) = vectors.iter().find(|v| !chunk_ids.contains(&v.chunk_id)) {
            return Err(DocumentError::InvalidInput(format!(
                "vector for unknown chunk {}",
                v.chunk_id
            )));
        }
        Ok(())
    }

    /// The stage, or `NotFound` for a document that was never uploaded.
    fn existing_stage(&self) -> Result<Stage, DocumentError> {
        self.stage.ok_or(DocumentError::NotFound)
    }

    /// Checks that a pipeline result belongs to the current, live run.
    fn live_run(&self, run: u32, command: &'static str) -> Result<Stage, DocumentError> {
        let stage = self.existing_stage()?;
        if run != self.run {
            return Err(DocumentError::StaleRun {
                current: self.run,
                got: run,
            });
        }
        if stage.is_terminal() {
            return Err(DocumentError::InvalidTransition { stage, command });
        }
        Ok(stage)
    }

    fn decide(&self, command: DocumentCommand) -> Result<Vec<DocumentEvent>, DocumentError> {
        use DocumentCommand as C;
        use DocumentEvent as E;
        let name = command.name();
        let wrong_stage = |stage| DocumentError::InvalidTransition {
            stage,
            command: name,
        };
        match command {
            C::Upload(upload) => {
                if self.stage.is_some() {
                    // A retried upload with the same key and bytes is the
                    // same upload; so are the same bytes again without a key
                    // (the API names such a document by its bytes).
                    let same_retry = self.idempotency_key == upload.idempotency_key
                        && self.sha256.as_ref() == Some(&upload.sha256);
                    return if same_retry {
                        Ok(vec![])
                    } else {
                        Err(DocumentError::AlreadyExists)
                    };
                }
                if upload.filename.trim().is_empty() {
                    return Err(DocumentError::InvalidInput("filename is empty".into()));
                }
                Ok(vec![E::DocumentUploaded(upload)])
            }
            C::RecordExtractionProgress {
                run,
                pages_done,
                pages_total,
            } => {
                let stage = self.live_run(run, name)?;
                if pages_done > pages_total {
                    return Err(DocumentError::InvalidInput(format!(
                        "pages_done {pages_done} > pages_total {pages_total}"
                    )));
                }
                match stage {
                    Stage::Uploaded | Stage::Extracting => {}
                    // Progress that arrives after the text is moot, not wrong.
                    _ => return Ok(vec![]),
                }
                if stage == Stage::Extracting && pages_done <= self.pages_done {
                    return Ok(vec![]); // redelivered or out of order
                }
                Ok(vec![E::ExtractionProgressed {
                    run,
                    pages_done,
                    pages_total,
                }])
            }
            C::RecordTextExtracted {
                run,
                text_sha256,
                pages,
                chars,
                extractor,
                pages_failed,
            } => {
                let stage = self.live_run(run, name)?;
                if pages_failed > pages {
                    return Err(DocumentError::InvalidInput(format!(
                        "{pages_failed} pages failed of {pages}"
                    )));
                }
                match stage {
                    Stage::Uploaded | Stage::Extracting => Ok(vec![E::TextExtracted {
                        run,
                        text_sha256,
                        pages,
                        chars,
                        extractor,
                        pages_failed,
                    }]),
                    // Redelivery of the result already recorded.
                    _ if self.text_sha256.as_ref() == Some(&text_sha256) => Ok(vec![]),
                    other => Err(wrong_stage(other)),
                }
            }
            C::RecordChunks {
                run,
                batch,
                last,
                chunks,
            } => {
                let stage = self.live_run(run, name)?;
                if !matches!(stage, Stage::Chunking | Stage::Embedding) {
                    return Err(wrong_stage(stage));
                }
                if self.chunk_batches.contains(&batch) {
                    return Ok(vec![]); // redelivered batch
                }
                if stage == Stage::Embedding {
                    return Err(wrong_stage(stage)); // a new batch after the last one
                }
                if let Some(known_last) = self.last_chunk_batch {
                    if batch > known_last || last {
                        return Err(DocumentError::InvalidInput(format!(
                            "chunk batch {batch} after the last batch {known_last}"
                        )));
                    }
                }
                let mut seen = BTreeSet::new();
                for c in &chunks {
                    if !seen.insert(&c.chunk_id) || self.chunk_ids.contains(&c.chunk_id) {
                        return Err(DocumentError::InvalidInput(format!(
                            "duplicate chunk id {}",
                            c.chunk_id
                        )));
                    }
                    if c.page_start > c.page_end {
                        return Err(DocumentError::InvalidInput(format!(
                            "chunk {} has page_start > page_end",
                            c.chunk_id
                        )));
                    }
                }
                Ok(vec![E::DocumentChunked {
                    run,
                    batch,
                    last,
                    chunks,
                }])
            }
            C::RecordEmbeddings {
                run,
                model,
                dims,
                vectors,
            } => {
                let stage = self.live_run(run, name)?;
                if !matches!(stage, Stage::Chunking | Stage::Embedding) {
                    return Err(wrong_stage(stage));
                }
                Self::check_vectors(&self.chunk_ids, dims, &vectors)?;
                let fresh: Vec<_> = vectors
                    .into_iter()
                    .filter(|v| !self.embedded.contains(&v.chunk_id))
                    .collect();
                if fresh.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::ChunksEmbedded {
                    run,
                    model,
                    dims,
                    vectors: fresh,
                    backfill: false,
                }])
            }
            C::RecordBackfillEmbeddings {
                run,
                model,
                dims,
                vectors,
            } => {
                let stage = self.existing_stage()?;
                // Only the run search serves is backfilled: the last indexed
                // one, also while a newer run is processed (or after that one
                // failed). A run in the pipeline gets the pipeline's model.
                let Some(indexed) = &self.indexed else {
                    return Err(wrong_stage(stage));
                };
                if run != indexed.run {
                    return Err(DocumentError::StaleRun {
                        current: indexed.run,
                        got: run,
                    });
                }
                Self::check_vectors(&indexed.chunk_ids, dims, &vectors)?;
                if indexed.embedding_model.as_deref() == Some(model.as_str()) {
                    return Ok(vec![]); // the run already has this model's vectors
                }
                let done = indexed.backfilled.get(&model);
                let fresh: Vec<_> = vectors
                    .into_iter()
                    .filter(|v| done.is_none_or(|d| !d.contains(&v.chunk_id)))
                    .collect();
                if fresh.is_empty() {
                    return Ok(vec![]); // redelivered or resumed
                }
                Ok(vec![E::ChunksEmbedded {
                    run,
                    model,
                    dims,
                    vectors: fresh,
                    backfill: true,
                }])
            }
            C::MarkIndexed { run } => {
                let stage = self.existing_stage()?;
                if stage == Stage::Indexed && run == self.run {
                    return Ok(vec![]); // redelivery
                }
                let stage = self.live_run(run, name)?;
                if stage != Stage::Embedding || !self.all_chunks_embedded() {
                    return Err(wrong_stage(stage));
                }
                Ok(vec![E::DocumentIndexed {
                    run,
                    chunks: self.chunk_ids.len() as u32,
                }])
            }
            C::RecordFailure {
                run,
                stage: failed_stage,
                reason,
                retryable,
            } => {
                let stage = self.existing_stage()?;
                if stage == Stage::Failed && run == self.run {
                    return Ok(vec![]); // redelivery
                }
                self.live_run(run, name)?;
                Ok(vec![E::DocumentFailed {
                    run,
                    stage: failed_stage,
                    code: FailureCode::classify(&reason),
                    reason,
                    retryable,
                }])
            }
            C::Cancel { reason } => {
                let stage = self.existing_stage()?;
                if stage.is_terminal() {
                    return Err(wrong_stage(stage));
                }
                Ok(vec![E::ProcessingCancelled {
                    run: self.run,
                    reason,
                }])
            }
            C::Reprocess { reason } => {
                self.existing_stage()?;
                Ok(vec![E::ReprocessRequested {
                    run: self.run + 1,
                    reason,
                }])
            }
        }
    }

    /// Forgets the results of the previous run.
    fn start_run(&mut self, run: u32) {
        self.run = run;
        self.stage = Some(Stage::Uploaded);
        self.reason = None;
        self.failure = None;
        self.pages_done = 0;
        self.pages_total = 0;
        self.pages_failed = 0;
        self.text_sha256 = None;
        self.chunk_batches.clear();
        self.last_chunk_batch = None;
        self.chunk_ids.clear();
        self.embedded.clear();
        self.embedding_model = None;
        // `indexed` stays: search serves that run until a newer one is indexed.
    }
}

impl Aggregate for Document {
    const TYPE: &'static str = "document";
    type Command = DocumentCommand;
    type Event = DocumentEvent;
    type Error = DocumentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use DocumentEvent as E;
        match event {
            E::DocumentUploaded(d) => {
                self.id = Some(d.document_id);
                self.owner = Some(d.owner);
                self.filename = d.filename;
                self.content_type = Some(d.content_type);
                self.size_bytes = d.size_bytes;
                self.sha256 = Some(d.sha256);
                self.topic = d.topic;
                self.batch_id = d.batch_id;
                self.idempotency_key = d.idempotency_key;
                self.external_id = d.external_id;
                self.start_run(1);
            }
            E::ExtractionProgressed {
                pages_done,
                pages_total,
                ..
            } => {
                self.stage = Some(Stage::Extracting);
                self.pages_done = pages_done;
                self.pages_total = pages_total;
            }
            E::TextExtracted {
                text_sha256,
                pages,
                pages_failed,
                ..
            } => {
                self.stage = Some(Stage::Chunking);
                self.text_sha256 = Some(text_sha256);
                self.pages_done = pages;
                self.pages_total = pages;
                self.pages_failed = pages_failed;
            }
            E::DocumentChunked {
                batch,
                last,
                chunks,
                ..
            } => {
                self.chunk_batches.insert(batch);
                if last {
                    self.last_chunk_batch = Some(batch);
                }
                self.chunk_ids
                    .extend(chunks.into_iter().map(|c| c.chunk_id));
                if self.all_chunks_recorded() {
                    self.stage = Some(Stage::Embedding);
                }
            }
            E::ChunksEmbedded {
                run,
                vectors,
                model,
                backfill: true,
                ..
            } => {
                if let Some(indexed) = self.indexed.as_mut().filter(|i| i.run == run) {
                    indexed
                        .backfilled
                        .entry(model)
                        .or_default()
                        .extend(vectors.into_iter().map(|v| v.chunk_id));
                }
            }
            E::ChunksEmbedded { vectors, model, .. } => {
                self.embedding_model.get_or_insert(model);
                self.embedded
                    .extend(vectors.into_iter().map(|v| v.chunk_id));
            }
            E::DocumentIndexed { run, .. } => {
                self.stage = Some(Stage::Indexed);
                self.indexed = Some(IndexedRun {
                    run,
                    chunk_ids: self.chunk_ids.clone(),
                    embedding_model: self.embedding_model.clone(),
                    backfilled: BTreeMap::new(),
                });
            }
            E::DocumentFailed {
                stage,
                reason,
                code,
                ..
            } => {
                self.stage = Some(Stage::Failed);
                self.reason = Some(reason);
                self.failure = Some((stage, code));
            }
            E::ProcessingCancelled { reason, .. } => {
                self.stage = Some(Stage::Cancelled);
                self.reason = Some(reason);
            }
            E::ReprocessRequested { run, .. } => self.start_run(run),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::document::{ChunkRecord, ChunkVector, UploadedDocument};

    type Given = TestFramework<Document>;

    fn new_document() -> UploadedDocument {
        UploadedDocument {
            document_id: "0190b2d4-6c1e-7000-8000-000000000001".parse().unwrap(),
            owner: OwnerId::new("alice").unwrap(),
            filename: "notes.pdf".into(),
            content_type: ContentType::Pdf,
            size_bytes: 10,
            sha256: Sha256Hex::from_digest(&[1; 32]),
            topic: None,
            batch_id: "b1".into(),
            idempotency_key: Some("k1".into()),
            external_id: None,
        }
    }

    fn uploaded() -> DocumentEvent {
        DocumentEvent::DocumentUploaded(new_document())
    }

    fn upload_command() -> DocumentCommand {
        DocumentCommand::Upload(new_document())
    }

    fn text(run: u32) -> DocumentEvent {
        DocumentEvent::TextExtracted {
            run,
            text_sha256: Sha256Hex::from_digest(&[2; 32]),
            pages: 3,
            chars: 100,
            extractor: "pdf-rs".into(),
            pages_failed: 0,
        }
    }

    fn chunk(id: &str) -> ChunkRecord {
        ChunkRecord {
            chunk_id: id.into(),
            ordinal: 0,
            text: "t".into(),
            page_start: 1,
            page_end: 1,
            tokens: 3,
        }
    }

    fn chunked(run: u32, batch: u32, last: bool, ids: &[&str]) -> DocumentEvent {
        DocumentEvent::DocumentChunked {
            run,
            batch,
            last,
            chunks: ids.iter().map(|i| chunk(i)).collect(),
        }
    }

    fn vectors(ids: &[&str]) -> Vec<ChunkVector> {
        ids.iter()
            .map(|i| ChunkVector {
                chunk_id: (*i).into(),
                vector: vec![0.5, 0.5],
            })
            .collect()
    }

    fn embedded(run: u32, ids: &[&str]) -> DocumentEvent {
        DocumentEvent::ChunksEmbedded {
            run,
            model: "m".into(),
            dims: 2,
            vectors: vectors(ids),
            backfill: false,
        }
    }

    fn backfilled(run: u32, ids: &[&str]) -> DocumentEvent {
        DocumentEvent::ChunksEmbedded {
            run,
            model: "m2".into(),
            dims: 2,
            vectors: vectors(ids),
            backfill: true,
        }
    }

    fn backfill(run: u32, ids: &[&str]) -> DocumentCommand {
        DocumentCommand::RecordBackfillEmbeddings {
            run,
            model: "m2".into(),
            dims: 2,
            vectors: vectors(ids),
        }
    }

    fn indexed_run_1() -> Vec<DocumentEvent> {
        vec![
            uploaded(),
            text(1),
            chunked(1, 0, true, &["a", "b"]),
            embedded(1, &["a", "b"]),
            DocumentEvent::DocumentIndexed { run: 1, chunks: 2 },
        ]
    }

    #[test]
    fn an_indexed_run_takes_another_models_vectors_as_a_backfill() {
        Given::with(())
            .given(indexed_run_1())
            .when(backfill(1, &["a", "b"]))
            .then_expect_events(vec![backfilled(1, &["a", "b"])]);
    }

    #[test]
    fn a_resumed_backfill_appends_only_what_is_missing() {
        let mut given = indexed_run_1();
        given.push(backfilled(1, &["a"]));
        Given::with(())
            .given(given.clone())
            .when(backfill(1, &["a", "b"]))
            .then_expect_events(vec![backfilled(1, &["b"])]);
        given.push(backfilled(1, &["b"]));
        Given::with(())
            .given(given)
            .when(backfill(1, &["a", "b"]))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_backfill_with_the_runs_own_model_appends_nothing() {
        Given::with(())
            .given(indexed_run_1())
            .when(DocumentCommand::RecordBackfillEmbeddings {
                run: 1,
                model: "m".into(),
                dims: 2,
                vectors: vectors(&["a"]),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_backfill_takes_the_run_search_serves() {
        // Never indexed (still in the pipeline): the pipeline's model comes first.
        Given::with(())
            .given(vec![uploaded(), text(1), chunked(1, 0, true, &["a"])])
            .when(backfill(1, &["a"]))
            .then_expect_error_message(
                "RecordBackfillEmbeddings is not allowed while the document is embedding",
            );
        // Reprocessing (run 2 in the pipeline, or failed): search still
        // serves run 1, which takes the backfill.
        let mut given = indexed_run_1();
        given.push(DocumentEvent::ReprocessRequested {
            run: 2,
            reason: "new chunking".into(),
        });
        given.push(DocumentEvent::DocumentFailed {
            run: 2,
            stage: Stage::Extracting,
            reason: "timed out".into(),
            retryable: true,
            code: FailureCode::TimedOut,
        });
        Given::with(())
            .given(given.clone())
            .when(backfill(1, &["a", "b"]))
            .then_expect_events(vec![backfilled(1, &["a", "b"])]);
        // Once run 2 is indexed, run 1's vectors are moot.
        given.extend([
            DocumentEvent::ReprocessRequested {
                run: 3,
                reason: "again".into(),
            },
            text(3),
            chunked(3, 0, true, &["c"]),
            embedded(3, &["c"]),
            DocumentEvent::DocumentIndexed { run: 3, chunks: 1 },
        ]);
        let mut doc = Document::default();
        for e in given {
            doc.apply(e);
        }
        assert!(matches!(
            doc.decide(backfill(1, &["a"])),
            Err(DocumentError::StaleRun { current: 3, got: 1 })
        ));
    }

    #[test]
    fn a_backfill_checks_its_vectors() {
        Given::with(())
            .given(indexed_run_1())
            .when(backfill(1, &["zzz"]))
            .then_expect_error_message("invalid input: vector for unknown chunk zzz");
    }

    #[test]
    fn a_backfill_leaves_the_pipelines_state_alone_and_covers_its_model() {
        let mut doc = Document::default();
        for e in indexed_run_1() {
            doc.apply(e);
        }
        let covered =
            |doc: &Document, m: &str| doc.indexed.as_ref().is_some_and(|i| i.covered_by(m));
        assert!(covered(&doc, "m") && !covered(&doc, "m2"));
        doc.apply(backfilled(1, &["a"]));
        assert!(!covered(&doc, "m2"));
        doc.apply(backfilled(1, &["b"]));
        assert_eq!(doc.stage, Some(Stage::Indexed));
        assert_eq!(doc.embedding_model.as_deref(), Some("m"));
        assert!(covered(&doc, "m2"));
        let replay = backfilled(1, &["a"]);
        assert!(replay.is_replay() && !embedded(1, &["a"]).is_replay());
        assert_eq!(replay.stage_after(), Stage::Indexed);
    }

    #[test]
    fn pipeline_events_serialize_without_the_backfill_flag() {
        let json = serde_json::to_value(embedded(1, &["a"])).unwrap();
        assert!(json["data"].get("backfill").is_none(), "{json}");
        let back: DocumentEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, embedded(1, &["a"]));
        let json = serde_json::to_value(backfilled(1, &["a"])).unwrap();
        assert_eq!(json["data"]["backfill"], true);
    }

    #[test]
    fn upload_creates_the_document() {
        Given::with(())
            .given_no_previous_events()
            .when(upload_command())
            .then_expect_events(vec![uploaded()]);
    }

    #[test]
    fn a_retried_upload_with_the_same_key_appends_nothing() {
        Given::with(())
            .given(vec![uploaded()])
            .when(upload_command())
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_same_bytes_again_without_a_key_append_nothing_other_bytes_are_refused() {
        let keyless = || UploadedDocument {
            idempotency_key: None,
            ..new_document()
        };
        // Another name, another batch: the same bytes are the same document.
        let again = UploadedDocument {
            filename: "copy of notes.pdf".into(),
            batch_id: "b2".into(),
            ..keyless()
        };
        Given::with(())
            .given(vec![DocumentEvent::DocumentUploaded(keyless())])
            .when(DocumentCommand::Upload(again))
            .then_expect_events(vec![]);
        let other = UploadedDocument {
            sha256: Sha256Hex::from_digest(&[9; 32]),
            ..keyless()
        };
        Given::with(())
            .given(vec![DocumentEvent::DocumentUploaded(keyless())])
            .when(DocumentCommand::Upload(other))
            .then_expect_error_message("document already exists");
    }

    #[test]
    fn a_different_upload_on_an_existing_id_is_refused() {
        let cmd = DocumentCommand::Upload(UploadedDocument {
            idempotency_key: None,
            external_id: None,
            ..new_document()
        });
        Given::with(())
            .given(vec![uploaded()])
            .when(cmd)
            .then_expect_error_message("document already exists");
    }

    #[test]
    fn commands_on_a_missing_document_are_not_found() {
        Given::with(())
            .given_no_previous_events()
            .when(DocumentCommand::Cancel { reason: "x".into() })
            .then_expect_error_message("document not found");
    }

    #[test]
    fn the_happy_path_reaches_indexed() {
        Given::with(())
            .given(vec![
                uploaded(),
                text(1),
                chunked(1, 0, false, &["a"]),
                chunked(1, 1, true, &["b"]),
                embedded(1, &["a", "b"]),
            ])
            .when(DocumentCommand::MarkIndexed { run: 1 })
            .then_expect_events(vec![DocumentEvent::DocumentIndexed { run: 1, chunks: 2 }]);
    }

    #[test]
    fn indexing_before_every_chunk_has_a_vector_is_refused() {
        Given::with(())
            .given(vec![
                uploaded(),
                text(1),
                chunked(1, 0, true, &["a", "b"]),
                embedded(1, &["a"]),
            ])
            .when(DocumentCommand::MarkIndexed { run: 1 })
            .then_expect_error_message(
                "MarkIndexed is not allowed while the document is embedding",
            );
    }

    #[test]
    fn redelivered_results_append_nothing() {
        Given::with(())
            .given(vec![uploaded(), text(1), chunked(1, 0, true, &["a"])])
            .when(DocumentCommand::RecordChunks {
                run: 1,
                batch: 0,
                last: true,
                chunks: vec![chunk("a")],
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![
                uploaded(),
                text(1),
                chunked(1, 0, true, &["a", "b"]),
                embedded(1, &["a"]),
            ])
            .when(DocumentCommand::RecordEmbeddings {
                run: 1,
                model: "m".into(),
                dims: 2,
                vectors: vectors(&["a", "b"]),
            })
            .then_expect_events(vec![embedded(1, &["b"])]);
    }

    #[test]
    fn a_partial_text_is_recorded_as_such_and_impossible_counts_refused() {
        let partial = DocumentCommand::RecordTextExtracted {
            run: 1,
            text_sha256: Sha256Hex::from_digest(&[2; 32]),
            pages: 3,
            chars: 100,
            extractor: "pdf-rs".into(),
            pages_failed: 2,
        };
        Given::with(())
            .given(vec![uploaded()])
            .when(partial)
            .then_expect_events(vec![DocumentEvent::TextExtracted {
                run: 1,
                text_sha256: Sha256Hex::from_digest(&[2; 32]),
                pages: 3,
                chars: 100,
                extractor: "pdf-rs".into(),
                pages_failed: 2,
            }]);
        Given::with(())
            .given(vec![uploaded()])
            .when(DocumentCommand::RecordTextExtracted {
                run: 1,
                text_sha256: Sha256Hex::from_digest(&[2; 32]),
                pages: 3,
                chars: 100,
                extractor: "pdf-rs".into(),
                pages_failed: 4,
            })
            .then_expect_error_message("invalid input: 4 pages failed of 3");
    }

    #[test]
    fn results_of_a_superseded_run_are_rejected() {
        Given::with(())
            .given(vec![
                uploaded(),
                DocumentEvent::ReprocessRequested {
                    run: 2,
                    reason: "new chunking".into(),
                },
            ])
            .when(DocumentCommand::RecordTextExtracted {
                run: 1,
                text_sha256: Sha256Hex::from_digest(&[2; 32]),
                pages: 3,
                chars: 100,
                extractor: "pdf-rs".into(),
                pages_failed: 0,
            })
            .then_expect_error_message("run 1 is stale: the document's current run is 2");
    }

    #[test]
    fn results_after_cancel_are_rejected_and_cancel_is_not_repeatable() {
        let cancelled = DocumentEvent::ProcessingCancelled {
            run: 1,
            reason: "user".into(),
        };
        Given::with(())
            .given(vec![uploaded(), cancelled.clone()])
            .when(DocumentCommand::RecordExtractionProgress {
                run: 1,
                pages_done: 1,
                pages_total: 3,
            })
            .then_expect_error_message(
                "RecordExtractionProgress is not allowed while the document is cancelled",
            );
        Given::with(())
            .given(vec![uploaded(), cancelled])
            .when(DocumentCommand::Cancel {
                reason: "again".into(),
            })
            .then_expect_error_message("Cancel is not allowed while the document is cancelled");
    }

    #[test]
    fn cancel_mid_pipeline_stops_the_run() {
        Given::with(())
            .given(vec![uploaded(), text(1)])
            .when(DocumentCommand::Cancel {
                reason: "user".into(),
            })
            .then_expect_events(vec![DocumentEvent::ProcessingCancelled {
                run: 1,
                reason: "user".into(),
            }]);
    }

    #[test]
    fn reprocess_starts_the_next_run_and_forgets_old_results() {
        let mut doc = Document::default();
        for e in [uploaded(), text(1), chunked(1, 0, true, &["a"])] {
            doc.apply(e);
        }
        doc.apply(DocumentEvent::ReprocessRequested {
            run: 2,
            reason: "r".into(),
        });
        assert_eq!(doc.run, 2);
        assert_eq!(doc.stage, Some(Stage::Uploaded));
        assert!(doc.chunk_ids.is_empty());
    }

    #[test]
    fn malformed_results_are_invalid_input() {
        Given::with(())
            .given(vec![uploaded()])
            .when(DocumentCommand::RecordExtractionProgress {
                run: 1,
                pages_done: 5,
                pages_total: 3,
            })
            .then_expect_error_message("invalid input: pages_done 5 > pages_total 3");
        Given::with(())
            .given(vec![uploaded(), text(1), chunked(1, 0, true, &["a"])])
            .when(DocumentCommand::RecordEmbeddings {
                run: 1,
                model: "m".into(),
                dims: 2,
                vectors: vectors(&["zzz"]),
            })
            .then_expect_error_message("invalid input: vector for unknown chunk zzz");
    }

    #[test]
    fn failure_is_recorded_once() {
        let failed = DocumentEvent::DocumentFailed {
            run: 1,
            stage: Stage::Extracting,
            reason: "no text layer (OCR not supported)".into(),
            retryable: false,
            code: FailureCode::NoTextLayer,
        };
        let cmd = DocumentCommand::RecordFailure {
            run: 1,
            stage: Stage::Extracting,
            reason: "no text layer (OCR not supported)".into(),
            retryable: false,
        };
        Given::with(())
            .given(vec![uploaded()])
            .when(cmd.clone())
            .then_expect_events(vec![failed.clone()]);
        Given::with(())
            .given(vec![uploaded(), failed])
            .when(cmd)
            .then_expect_events(vec![]);
    }
}
