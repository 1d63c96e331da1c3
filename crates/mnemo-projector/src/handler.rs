//! What the projector does with each feed: one [`FeedHandler`] per feed
//! of events, driven by the one supervised runner ([`crate::runner`]), as
//! esrs's `EventHandler` is driven by its store.
//!
//! - [`Documents`]: `<ns>.ev.doc.>` into `documents`, `chunks` +
//!   `chunk_embeddings` and `stage_timings` ([`crate::batch`]); after a
//!   batch commits, runs whose every chunk is stored with a vector are
//!   declared indexed (`MarkIndexed` → `DocumentIndexed`).
//! - [`Learning`]: `<ns>.ev.learn.>` into the `learning_*` tables
//!   ([`crate::learning`]).
//!
//! Adding a feed is a handler here plus its line in [`crate::run`].

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use mnemo_bus::{Bus, BusError, CommandExecutor, ExecuteError, JetStreamEventStore, Keyring};
use mnemo_domain::{Document, DocumentCommand};
use tokio_postgres::Client;
use tracing::Instrument;

use crate::batch::{self, Candidates, EventMessage};
use crate::learning::{self, LearningMessage};
use crate::projection::{Feed, Projection};
use crate::{chunks, ProjectorError};

/// One feed's read models, as the live runner drives them: decode a
/// message, apply a batch together with the checkpoint in one transaction,
/// then do what must follow a commit.
pub trait FeedHandler: Send + Sync + 'static {
    /// A decoded message of the feed.
    type Message: Send + Sync;
    /// What a committed batch leaves for [`FeedHandler::after_commit`].
    type Applied: Send;

    /// The feed this handler folds.
    fn feed(&self) -> Feed;

    /// Decodes one message, opened with its owner's key (an erased
    /// owner's is a tombstone); an error of kind `Unavailable` is retried,
    /// any other means it can never be read by this build (the runner
    /// dead-letters it and steps over it).
    fn decode(
        &self,
        keys: &Keyring,
        subject: &str,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &Bytes,
    ) -> impl Future<Output = Result<Self::Message, BusError>> + Send;

    /// Applies `messages` (in stream order; those at or below the
    /// checkpoint are skipped) and moves the checkpoint `key` to `through`,
    /// in one transaction.
    fn apply(
        &self,
        client: &mut Client,
        key: &str,
        messages: &[Self::Message],
        through: u64,
    ) -> impl Future<Output = Result<Self::Applied, ProjectorError>> + Send;

    /// Runs once a batch has committed. A failure here never re-applies the
    /// batch: the runner starts again from the checkpoint, and
    /// [`FeedHandler::resume`] finishes what this one left.
    fn after_commit(
        &self,
        client: &Client,
        applied: Self::Applied,
    ) -> impl Future<Output = Result<(), ProjectorError>> + Send;

    /// Runs when this copy becomes the active one and each time it reads
    /// again from the checkpoint: does what an `after_commit` that failed
    /// or never ran (a crash between the commit and it) left undone. An
    /// error is retried like a failed read.
    fn resume(&self, _client: &Client) -> impl Future<Output = Result<(), ProjectorError>> + Send {
        async { Ok(()) }
    }
}

/// The document read models, declaring runs indexed, and shredding what
/// an erased learner left (their key, files and dead letters:
/// `mnemo_bus::erase::shred`, once their `LearnerErased` is applied).
pub struct Documents {
    executor: CommandExecutor<Document>,
    bus: Bus,
}

/// Attempts at shredding an erased learner's key and files.
const SHRED_ATTEMPTS: u32 = 5;

/// What a committed document batch leaves to do.
pub struct DocumentsApplied {
    candidates: Candidates,
    /// Owners whose `LearnerErased` the batch applied.
    erased: Vec<String>,
}

impl FeedHandler for Documents {
    type Message = EventMessage;
    type Applied = DocumentsApplied;

    fn feed(&self) -> Feed {
        Feed::Documents
    }

    async fn decode(
        &self,
        keys: &Keyring,
        subject: &str,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &Bytes,
    ) -> Result<EventMessage, BusError> {
        EventMessage::decode(keys, subject, sequence, headers, payload).await
    }

    async fn apply(
        &self,
        client: &mut Client,
        key: &str,
        messages: &[EventMessage],
        through: u64,
    ) -> Result<DocumentsApplied, ProjectorError> {
        let applied =
            batch::apply(client, key, &Projection::OF_DOCUMENTS, messages, through).await?;
        let erased = messages
            .iter()
            .filter(|m| m.erased == Some(true))
            .map(|m| m.owner_token.clone())
            .collect();
        Ok(DocumentsApplied {
            candidates: applied.candidates,
            erased,
        })
    }

    /// Declares indexed every candidate whose chunks are all stored with
    /// vectors.
    async fn after_commit(
        &self,
        client: &Client,
        applied: DocumentsApplied,
    ) -> Result<(), ProjectorError> {
        // An erased learner's rows are gone with the batch; their key's
        // bytes, files and dead letters go now. The checkpoint has moved
        // past the erasure, so it is retried here; should it still fail,
        // nothing of theirs is readable anyway (their marker is there) and
        // the operator finishes it with `mnemo learner erase`.
        for owner in &applied.erased {
            let mut backoff =
                mnemo_bus::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            let mut attempt = 0;
            loop {
                attempt += 1;
                match mnemo_bus::erase::shred(&self.bus, owner).await {
                    Ok(_) => break,
                    Err(e) if attempt < SHRED_ATTEMPTS => {
                        tracing::warn!(owner = %owner, error = %e, attempt, "shredding an erased learner failed; trying again");
                        tokio::time::sleep(backoff.next_delay().unwrap_or(Duration::from_secs(2)))
                            .await;
                    }
                    Err(e) => {
                        tracing::error!(owner = %owner, error = %e, "could not shred an erased learner's key and files; run `mnemo learner erase` for them");
                        break;
                    }
                }
            }
        }
        let candidates = applied.candidates;
        let ids: Vec<uuid::Uuid> = candidates.keys().copied().collect();
        self.index_ready(client, &ids, |id| {
            candidates.get(id).map(|(_, cause)| cause)
        })
        .await
    }

    /// Every document whose chunks all have vectors but that is not
    /// declared indexed: one whose `MarkIndexed` failed (NATS electing a
    /// leader, a partition) or never ran (the projector killed after the
    /// commit). Without this it would wait at "embedding" for good: no
    /// later event of its own makes it a candidate again. Only documents
    /// ready to index are loaded (usually none); one whose `MarkIndexed`
    /// cannot succeed is skipped, so the read goes on. The `DocumentIndexed`
    /// it appends starts a trace and a correlation of its own: the event
    /// that completed the chunks is not at hand here.
    async fn resume(&self, client: &Client) -> Result<(), ProjectorError> {
        let waiting: Vec<uuid::Uuid> = client
            .query(
                "SELECT document_id FROM documents WHERE stage = 'embedding' AND chunks_final",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !waiting.is_empty() {
            tracing::info!(
                documents = waiting.len(),
                "resuming: declaring indexed what is ready"
            );
        }
        self.index_ready(client, &waiting, |_| None).await
    }
}

impl Documents {
    pub fn new(bus: &Bus) -> Self {
        Self {
            bus: bus.clone(),
            executor: CommandExecutor::new(
                JetStreamEventStore::<Document>::new(bus, "doc", 10_000),
                (),
                mnemo_bus::RetryPolicy::default(),
            ),
        }
    }

    /// Appends `MarkIndexed` for each of `ids` whose chunks are all stored
    /// with vectors; `cause` is the event that completed them, when known
    /// (its correlation and trace carry on).
    async fn index_ready<'c>(
        &self,
        client: &Client,
        ids: &[uuid::Uuid],
        cause: impl Fn(&uuid::Uuid) -> Option<&'c mnemo_bus::envelope::Envelope>,
    ) -> Result<(), ProjectorError> {
        if ids.is_empty() {
            return Ok(());
        }
        for (document_id, owner_token, run) in chunks::ready_to_index(client, ids).await? {
            // The last step of the document's trace: a child of the
            // event that completed its chunks.
            let span = tracing::info_span!("index", document = %document_id, run);
            let cause = cause(&document_id);
            mnemo_bus::trace::continue_trace(&span, cause.map(|c| c.traceparent.as_str()));
            let metadata = span.in_scope(|| cause.map(|c| c.caused_metadata()).unwrap_or_default());
            let aggregate = format!("{owner_token}.{document_id}");
            match self
                .executor
                .execute(&aggregate, DocumentCommand::MarkIndexed { run }, &metadata)
                .instrument(span)
                .await
            {
                Ok(done) => {
                    if done.appended.is_some() {
                        tracing::info!(document = %document_id, run, "document indexed");
                    }
                }
                // Not ready after all, already declared, or a newer run:
                // the aggregate knows best.
                Err(ExecuteError::Refused(e)) => {
                    tracing::debug!(document = %document_id, run, reason = %e, "not indexed")
                }
                // NATS away: read again from the checkpoint, and `resume`
                // tries again.
                Err(ExecuteError::Bus(e)) if e.kind() == mnemo_bus::BusErrorKind::Unavailable => {
                    return Err(e.into())
                }
                Err(e @ ExecuteError::Conflict { .. }) => {
                    return Err(
                        BusError::new(mnemo_bus::BusErrorKind::Conflict, e.to_string()).into(),
                    )
                }
                // Never for this document now (its owner erased, a stream
                // at its limit, an event this build cannot read): it must
                // not hold up every other document, nor the events that
                // come after (an erasure's among them).
                Err(ExecuteError::Bus(e)) => {
                    tracing::warn!(document = %document_id, run, error = %e, "cannot declare it indexed; skipped")
                }
            }
        }
        Ok(())
    }
}

/// The learning read model.
pub struct Learning;

impl FeedHandler for Learning {
    type Message = LearningMessage;
    type Applied = ();

    fn feed(&self) -> Feed {
        Feed::Learning
    }

    async fn decode(
        &self,
        keys: &Keyring,
        subject: &str,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &Bytes,
    ) -> Result<LearningMessage, BusError> {
        learning::decode(keys, subject, sequence, headers, payload).await
    }

    async fn apply(
        &self,
        client: &mut Client,
        key: &str,
        messages: &[LearningMessage],
        through: u64,
    ) -> Result<(), ProjectorError> {
        learning::apply(client, key, messages, through)
            .await
            .map(drop)
    }

    async fn after_commit(&self, _client: &Client, _applied: ()) -> Result<(), ProjectorError> {
        Ok(())
    }
}
