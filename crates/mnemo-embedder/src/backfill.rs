//! `mnemo backfill embed`: every indexed document's chunks re-embedded with
//! another model, replayed from the event log.
//!
//! - *A durable consumer from sequence 1.* `<ns>_backfill-embed-<model>`
//!   reads every document event. Only `DocumentIndexed` is acted on: by then
//!   the run's chunks are all known, and they are read back from the
//!   document's own events (`DocumentChunked` carries the texts), not from a
//!   read model.
//! - *Only the run search serves.* The vectors go through the document
//!   aggregate as `RecordBackfillEmbeddings`, which takes them only for the
//!   last indexed run (also while a newer run is processed, or after that
//!   one failed) and appends `ChunksEmbedded { backfill: true }`. A run
//!   superseded by a newer indexed one is skipped: that one's own
//!   `DocumentIndexed` comes later in the stream and is backfilled then.
//! - *Replay, not a new run.* Backfill events are replays
//!   ([`DocumentEvent::is_replay`]): the projector stores the vectors beside
//!   the pipeline's, and nothing a user watches (progress, stage, timings)
//!   moves.
//! - *Deterministic.* One text per model call: a quantized model's output
//!   depends on what else is in its batch (activation scales are computed
//!   per batch), so batching would make a replay differ from the first run.
//! - *Stop and resume.* Stopping (Ctrl-C, or `limit` documents done) lets
//!   the document in hand finish; the consumer's position is JetStream's,
//!   so running again resumes after the last acknowledged document. A
//!   document cut off halfway appends only its missing vectors (the
//!   aggregate drops what it already has). A resume whose consumer holds
//!   unacknowledged messages recreates it right after the ack floor; one
//!   backfill per model runs at a time (a second is refused). `restart`
//!   starts over from sequence 1 (after a dead-lettered document's cause is
//!   fixed): covered documents are skipped.
//! - *Progress* is a stream of [`BackfillProgress`]: events done of the
//!   stream's total, documents and chunks, rate and ETA.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mnemo_bus::consumer::{append_result, Delivery, Handler, Outcome};
use mnemo_bus::{Bus, BusError, CommandExecutor, ConsumerSpec, JetStreamEventStore, RetryPolicy};
use mnemo_domain::document::ChunkVector;
use mnemo_domain::{Document, DocumentCommand, DocumentEvent};
use tokio::sync::watch;
use tracing::Instrument;

use crate::handler::VECTORS_PER_EVENT;
use crate::Embedder;

/// How often progress is reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Reports in a row without a readable position before a run gives up.
const MAX_UNREADABLE: u32 = 30;

/// How a backfill runs.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Documents re-embedded at once.
    pub concurrency: usize,
    /// Keep going after catching up (new documents as they are indexed).
    pub follow: bool,
    /// Pause after this many documents (resume by running again).
    pub limit: Option<u64>,
    /// Forget where an earlier run stopped and replay from sequence 1
    /// (documents already covered are skipped).
    pub restart: bool,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            concurrency: 1,
            follow: false,
            limit: None,
            restart: false,
        }
    }
}

/// Where a backfill stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackfillProgress {
    /// The model whose vectors are added.
    pub model: String,
    /// Stream sequence up to which every document event is handled.
    pub done: u64,
    /// The stream's last sequence.
    pub total: u64,
    /// Where this run started (earlier runs did the rest).
    pub resumed_at: u64,
    /// Documents re-embedded, and chunks, by this run.
    pub documents: u64,
    pub chunks: u64,
    /// Indexed documents left alone: superseded, or already covered.
    pub skipped: u64,
    /// Events per second over this run.
    pub rate: f64,
    pub eta: Option<Duration>,
    /// Caught up with the stream (and not following).
    pub finished: bool,
}

/// The durable consumer's service name for `model` (kept to letters,
/// digits, `-` and `_`: the `@` of a model id becomes `_`).
pub fn consumer_service(model: &str) -> String {
    let safe: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("backfill-embed-{safe}")
}

#[derive(Default)]
struct Counters {
    documents: AtomicU64,
    chunks: AtomicU64,
    skipped: AtomicU64,
}

/// The consumer handler: one `DocumentIndexed` → its run's vectors.
struct Backfill {
    executor: CommandExecutor<Document>,
    model: Arc<Embedder>,
    counters: Arc<Counters>,
    limit: Option<u64>,
    stop: watch::Sender<bool>,
}

impl Handler for Backfill {
    async fn handle(&self, delivery: &Delivery) -> Outcome {
        if !delivery.has_event_type(&[mnemo_domain::DocumentEventKind::DocumentIndexed]) {
            return Outcome::Done;
        }
        let stored = match delivery.decode_or_reject::<DocumentEvent>().await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let Some(run) = stored.events.iter().find_map(|e| match e {
            DocumentEvent::DocumentIndexed { run, .. } => Some(*run),
            _ => None,
        }) else {
            return Outcome::Done;
        };
        let aggregate = stored.envelope.aggregate_id.clone();
        let md = stored.envelope.caused_metadata();
        let span = tracing::info_span!(
            "backfill",
            document_id = %aggregate.rsplit('.').next().unwrap_or_default(),
            event_id = %stored.envelope.event_id,
            run,
        );
        let outcome = self
            .document(delivery, &aggregate, run, &md)
            .instrument(span)
            .await;
        if outcome == Outcome::Done {
            let done = self.counters.documents.load(Ordering::Relaxed);
            if self.limit.is_some_and(|l| done >= l) {
                let _ = self.stop.send(true);
            }
        }
        outcome
    }

    async fn give_up(&self, delivery: &Delivery, reason: &str) {
        // The document stays indexed and searchable with its pipeline
        // model; the dead letter keeps the reason for `mnemo dlq`.
        tracing::error!(
            seq = delivery.stream_sequence,
            reason,
            "backfill gave up on a document"
        );
    }
}

impl Backfill {
    async fn document(
        &self,
        delivery: &Delivery,
        aggregate: &str,
        run: u32,
        md: &HashMap<String, String>,
    ) -> Outcome {
        let model_id = self.model.model_id().to_owned();
        // The state, and the messages, as of at least this DocumentIndexed:
        // a stale read would skip the document as "superseded".
        let seen = delivery.stream_sequence;
        let doc = match self.executor.store().load_at_least(aggregate, seen).await {
            Ok(c) => c.aggregate,
            Err(e) => {
                return Outcome::Unavailable {
                    reason: e.to_string(),
                }
            }
        };
        // The run search serves now; a later DocumentIndexed supersedes this one.
        let Some(indexed) = doc.indexed.filter(|i| i.run == run) else {
            tracing::debug!(current_run = doc.run, "superseded: nothing to backfill");
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Done;
        };
        if indexed.covered_by(&model_id) {
            tracing::debug!("already covered");
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Done;
        }
        let messages = match self
            .executor
            .store()
            .read_messages_at_least(aggregate, seen)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Unavailable {
                    reason: e.to_string(),
                }
            }
        };
        let done = indexed.backfilled.get(&model_id);
        let todo: Vec<(String, String)> = messages
            .into_iter()
            .flat_map(|m| m.events)
            .filter_map(|e| match e {
                DocumentEvent::DocumentChunked { run: r, chunks, .. } if r == run => Some(chunks),
                _ => None,
            })
            .flatten()
            .filter(|c| done.is_none_or(|d| !d.contains(&c.chunk_id)))
            .map(|c| (c.chunk_id, c.text))
            .collect();
        tracing::info!(chunks = todo.len(), "re-embedding");
        for part in todo.chunks(VECTORS_PER_EVENT) {
            let vectors = match self.embed_one_by_one(part.to_vec()).await {
                Ok(v) => v,
                Err(reason) => return Outcome::Retry { reason },
            };
            let command = DocumentCommand::RecordBackfillEmbeddings {
                run,
                model: model_id.clone(),
                dims: self.model.dims() as u32,
                vectors,
            };
            // Superseded or no longer indexed meanwhile: moot, not an error.
            let outcome = append_result(&self.executor, aggregate, command, md).await;
            if outcome != Outcome::Done {
                return outcome;
            }
            self.counters
                .chunks
                .fetch_add(part.len() as u64, Ordering::Relaxed);
            if let Err(e) = delivery.in_progress().await {
                tracing::warn!(error = %e, "could not extend the ack wait");
            }
        }
        self.counters.documents.fetch_add(1, Ordering::Relaxed);
        Outcome::Done
    }

    /// One model call per text (see the module docs: determinism).
    async fn embed_one_by_one(
        &self,
        chunks: Vec<(String, String)>,
    ) -> Result<Vec<ChunkVector>, String> {
        let model = self.model.clone();
        tokio::task::spawn_blocking(move || {
            chunks
                .into_iter()
                .map(|(chunk_id, text)| {
                    let vector = model
                        .embed(std::slice::from_ref(&text))
                        .map_err(|e| e.report())?
                        .into_iter()
                        .next()
                        .ok_or_else(|| "the model returned no vector".to_owned())?;
                    Ok(ChunkVector { chunk_id, vector })
                })
                .collect()
        })
        .await
        .map_err(|e| format!("the embedding task failed: {e}"))?
    }
}

/// Runs a backfill with `model` until it has caught up with the stream
/// (or, following, until `shutdown`), calling `report` every
/// [`REPORT_EVERY`] and once at the end; returns the last progress.
pub async fn run(
    bus: &Bus,
    model: Arc<Embedder>,
    options: BackfillOptions,
    mut report: impl FnMut(&BackfillProgress),
    shutdown: impl Future<Output = ()>,
) -> Result<BackfillProgress, BusError> {
    let model_id = model.model_id().to_owned();
    let mut spec = ConsumerSpec::new(
        consumer_service(&model_id),
        format!("{}.>", bus.namespace.events_of("doc")),
    );
    spec.concurrency = options.concurrency.max(1);
    spec.ack_wait = Duration::from_secs(60);
    // One pull always waiting: how a second backfill of the model tells
    // that this one runs (`refuse_if_running`), even while every worker
    // is busy on a document.
    spec.pull_ahead = 1;
    let info_error = |e: &dyn std::fmt::Display| {
        BusError::new(
            mnemo_bus::BusErrorKind::Unavailable,
            format!("cannot read the backfill's position: {e}"),
        )
    };
    // Refused (another backfill of the model runs) or JetStream said no.
    let cannot_start = |e: String| {
        BusError::new(
            mnemo_bus::BusErrorKind::Conflict,
            format!("cannot start the backfill: {e}"),
        )
    };
    if options.restart {
        forget_position(bus, &spec).await.map_err(cannot_start)?;
    } else {
        rewind_to_ack_floor(bus, &mut spec)
            .await
            .map_err(cannot_start)?;
    }
    let consumer = mnemo_bus::consumer::durable_consumer(bus, &spec).await?;
    let position = |info: &async_nats::jetstream::consumer::Info, last: u64| {
        let caught_up = info.num_pending == 0 && info.num_ack_pending == 0;
        (if caught_up { last } else { ack_floor(info) }, caught_up)
    };
    let last = bus
        .events
        .get_info()
        .await
        .map_err(|e| info_error(&e))?
        .state
        .last_sequence;
    let (resumed_at, _) = position(
        &consumer.get_info().await.map_err(|e| info_error(&e))?,
        last,
    );

    let (stop, mut stopped) = watch::channel(false);
    let counters = Arc::new(Counters::default());
    let handler = Arc::new(Backfill {
        executor: CommandExecutor::new(
            JetStreamEventStore::new(bus, "doc", 1_000),
            (),
            RetryPolicy::default(),
        ),
        model,
        counters: counters.clone(),
        limit: options.limit,
        stop: stop.clone(),
    });
    let consuming = mnemo_bus::consumer::run(bus, spec, handler, async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    tokio::pin!(consuming, shutdown);

    let started = Instant::now();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    let mut progress = BackfillProgress {
        model: model_id,
        resumed_at,
        done: resumed_at,
        total: last,
        ..Default::default()
    };
    let mut ended = false;
    let mut asked_to_stop = false;
    let mut unreadable = 0;
    while !ended {
        tokio::select! {
            result = &mut consuming => { result?; ended = true; }
            // Once: a finished future must not be polled again.
            _ = &mut shutdown, if !asked_to_stop => {
                asked_to_stop = true;
                let _ = stop.send(true);
            }
            _ = tick.tick() => {}
        }
        // Where it stands, from JetStream (which survives this process).
        let last = bus.events.get_info().await;
        let info = consumer.get_info().await;
        match (last, info) {
            (Ok(last), Ok(info)) => {
                unreadable = 0;
                let last = last.state.last_sequence;
                let (done, caught_up) = position(&info, last);
                progress.done = done;
                progress.total = last;
                if caught_up && !options.follow && !progress.finished {
                    progress.finished = true;
                    let _ = stop.send(true);
                }
            }
            (last, info) => {
                unreadable += 1;
                let error = match (last, info) {
                    (Err(e), _) => e.to_string(),
                    (_, Err(e)) => e.to_string(),
                    _ => String::new(),
                };
                tracing::warn!(%error, unreadable, "cannot read the backfill's position");
                if unreadable >= MAX_UNREADABLE && !ended {
                    // Without a position it cannot tell it has caught up.
                    let _ = stop.send(true);
                    let _ = (&mut consuming).await;
                    return Err(info_error(&error));
                }
            }
        }
        progress.documents = counters.documents.load(Ordering::Relaxed);
        progress.chunks = counters.chunks.load(Ordering::Relaxed);
        progress.skipped = counters.skipped.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        progress.rate = progress.done.saturating_sub(resumed_at) as f64 / secs;
        let left = progress.total.saturating_sub(progress.done);
        progress.eta =
            (progress.rate > 0.0).then(|| Duration::from_secs_f64(left as f64 / progress.rate));
        report(&progress);
    }
    Ok(progress)
}

/// Deletes the backfill's consumer, if any: the next one starts at 1.
async fn forget_position(bus: &Bus, spec: &ConsumerSpec) -> Result<(), String> {
    use async_nats::jetstream::consumer::pull;
    let name = bus.namespace.consumer(&spec.service);
    let Ok(existing) = bus.events.get_consumer::<pull::Config>(&name).await else {
        return Ok(()); // nothing to forget
    };
    refuse_if_running(&existing.get_info().await.map_err(|e| e.to_string())?)?;
    bus.events
        .delete_consumer(&name)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("starting over from sequence 1");
    Ok(())
}

/// One backfill per model at a time: a consumer with a pull request
/// waiting has a running backfill behind it, whose position must not be
/// pulled from under it.
fn refuse_if_running(info: &async_nats::jetstream::consumer::Info) -> Result<(), String> {
    if info.num_waiting > 0 {
        return Err(format!(
            "another `mnemo backfill embed` for this model is running (consumer {} is pulling); stop it first",
            info.name
        ));
    }
    Ok(())
}

/// The stream sequence up to which the consumer has acknowledged every
/// message: JetStream's ack floor, or, before a consumer that started past
/// sequence 1 acknowledges anything, the sequence before its start.
fn ack_floor(info: &async_nats::jetstream::consumer::Info) -> u64 {
    use async_nats::jetstream::consumer::DeliverPolicy;
    let before_start = match info.config.deliver_policy {
        DeliverPolicy::ByStartSequence { start_sequence } => start_sequence.saturating_sub(1),
        _ => 0,
    };
    info.ack_floor.stream_sequence.max(before_start)
}

/// A stopped run may leave messages delivered but never acknowledged
/// (pulled in a batch, or cut off); JetStream would hand them out again
/// only after their ack wait. Resuming starts a fresh consumer right after
/// the ack floor instead, at once: anything done past the floor is done
/// again as a no-op (the aggregate drops vectors it already has). One
/// backfill per model runs at a time.
async fn rewind_to_ack_floor(bus: &Bus, spec: &mut ConsumerSpec) -> Result<(), String> {
    use async_nats::jetstream::consumer::pull;
    let name = bus.namespace.consumer(&spec.service);
    let Ok(existing) = bus.events.get_consumer::<pull::Config>(&name).await else {
        return Ok(()); // a first run
    };
    let info = existing.get_info().await.map_err(|e| e.to_string())?;
    refuse_if_running(&info)?;
    if info.num_ack_pending == 0 {
        return Ok(());
    }
    let floor = ack_floor(&info);
    tracing::info!(
        floor,
        unacknowledged = info.num_ack_pending,
        "resuming right after the last acknowledged event"
    );
    bus.events
        .delete_consumer(&name)
        .await
        .map_err(|e| e.to_string())?;
    spec.start_sequence = Some(floor + 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::consumer_service;

    #[test]
    fn consumer_names_keep_only_what_jetstream_allows() {
        assert_eq!(
            consumer_service("all-MiniLM-L6-v2-int8@0123456789ab"),
            "backfill-embed-all-MiniLM-L6-v2-int8_0123456789ab"
        );
        assert_eq!(consumer_service("a.b c*>"), "backfill-embed-a_b_c__");
    }
}
