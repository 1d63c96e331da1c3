//! The live projector: follows the event stream from its checkpoint and
//! keeps every projection current.
//!
//! - *Ordered reads from the checkpoint.* The projector reads the document
//!   subjects with an ordered consumer starting right after its checkpoint
//!   (JetStream guarantees order and no gaps on it). Nothing is acknowledged:
//!   the checkpoint in PostgreSQL, written in the same transaction as the
//!   rows, *is* the position. After any failure the projector starts a new
//!   read from the checkpoint, so no event is ever skipped — a durable
//!   consumer with nak-and-continue would apply later events before the
//!   failed ones come back.
//! - *One active copy.* Copies take a PostgreSQL advisory lock per
//!   namespace; the others wait on it as hot standbys and take over when the
//!   active one's session ends. (Correctness does not depend on the lock:
//!   two copies would both read in order and the checkpoint row lock would
//!   make the second skip what the first applied. The lock only saves the
//!   duplicate work.)
//! - *Poison events fail alone.* An event that cannot be decoded is
//!   dead-lettered and stepped over. A batch that fails for a reason other
//!   than an unavailable database is retried one event at a time; an event
//!   that still fails after [`POISON_ATTEMPTS`] is dead-lettered
//!   (`<ns>.dlq.projector`) and stepped over, so one bad event cannot stall
//!   every read model. A database outage never skips anything.
//! - *Indexing.* After a batch commits, documents whose run now has every
//!   chunk stored with a vector are declared indexed through the aggregate
//!   (`MarkIndexed` → `DocumentIndexed`).

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use mnemo_bus::{Bus, CommandExecutor, ExecuteError, JetStreamEventStore, Namespace, RetryPolicy};
use mnemo_domain::{Document, DocumentCommand};
use tokio_postgres::{Client, GenericClient};

use crate::batch::{self, Candidates, EventMessage};
use crate::projection::{Feed, Projection};
use crate::{chunks, db, migrations, ProjectorConfig, ProjectorError};

/// Attempts at one event, one at a time, before it is dead-lettered.
pub const POISON_ATTEMPTS: u32 = 3;

/// Name of the live projector's checkpoint (and of its dead letters'
/// service): `<ns>_projector`.
pub fn consumer_name(ns: &Namespace) -> String {
    ns.consumer("projector")
}

/// Stream sequence the live read models reflect.
pub async fn checkpoint(
    client: &impl GenericClient,
    ns: &Namespace,
) -> Result<u64, ProjectorError> {
    batch::checkpoint(client, &consumer_name(ns)).await
}

/// Waits until the read models have applied `sequence`, polling the
/// checkpoint until `timeout`. Returns the checkpoint reached.
pub async fn wait_for(
    client: &impl GenericClient,
    ns: &Namespace,
    sequence: u64,
    timeout: Duration,
) -> Result<u64, ProjectorError> {
    batch::wait_for(client, &consumer_name(ns), sequence, timeout).await
}

/// Prepares the schema; safe to call at every start.
pub async fn prepare(config: &ProjectorConfig) -> Result<Client, ProjectorError> {
    let mut client = db::connect(&config.database_url, &config.namespace).await?;
    migrations::apply(&mut client, config.namespace.sql_schema()).await?;
    Ok(client)
}

/// Why a read of the stream ended.
enum Ended {
    Shutdown,
    /// Start again from the checkpoint (after a failure).
    Restart,
}

/// Runs the projector — the document read models and, beside them with a
/// checkpoint of its own, the learning read model
/// ([`crate::learning::runner`], decision 014) — until `shutdown`
/// resolves; each finishes the batch in hand. Either failing stops both.
pub async fn run(
    bus: Bus,
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let both = async {
        tokio::try_join!(
            run_documents(bus.clone(), config.clone(), stopped(stop_rx.clone())),
            crate::learning::runner::run(bus.clone(), config.clone(), stopped(stop_rx.clone())),
        )
        .map(|_| ())
    };
    tokio::pin!(both, shutdown);
    tokio::select! {
        r = &mut both => r,
        _ = &mut shutdown => {
            let _ = stop_tx.send(true);
            both.await
        }
    }
}

/// The document projector alone (see the module docs).
pub async fn run_documents(
    bus: Bus,
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    // The first connection must work: a wrong URL should fail the start,
    // not spin in the background.
    let first = prepare(&config).await?;
    let mut projector = Live {
        executor: CommandExecutor::new(
            JetStreamEventStore::<Document>::new(&bus, "doc", 10_000),
            (),
            RetryPolicy::default(),
        ),
        bus,
        config,
        poison: None,
    };
    tokio::pin!(shutdown);
    let mut client = Some(first);
    let mut delay = Duration::from_millis(100);
    loop {
        let mut c = match client.take() {
            Some(c) if !c.is_closed() => c,
            _ => match prepare(&projector.config).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, ?delay, "PostgreSQL unavailable, retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        match projector.follow(&mut c, &mut shutdown).await {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Restart) => {
                delay = Duration::from_millis(100);
                client = Some(c);
            }
            Err(e) => {
                tracing::warn!(error = %e, ?delay, "projector read interrupted; resuming from the checkpoint");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                client = Some(c);
            }
        }
    }
    tracing::info!("projector stopped");
    Ok(())
}

/// A single event being retried alone: its sequence and failed attempts.
#[derive(Debug, Clone, Copy)]
struct Poison {
    /// Events up to here are applied one per transaction.
    until: u64,
    sequence: u64,
    attempts: u32,
}

struct Live {
    bus: Bus,
    config: ProjectorConfig,
    executor: CommandExecutor<Document>,
    poison: Option<Poison>,
}

impl Live {
    /// One read of the stream from the checkpoint, until shutdown or failure.
    async fn follow(
        &mut self,
        client: &mut Client,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Ended, ProjectorError> {
        let ns = self.config.namespace.clone();
        let name = consumer_name(&ns);
        // Leadership: wait (as a standby) until no other copy is active.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&name];
        let lock = client.execute("SELECT pg_advisory_lock(hashtext($1))", &params);
        tokio::select! {
            _ = &mut *shutdown => return Ok(Ended::Shutdown),
            r = lock => { r?; }
        }
        let from = batch::checkpoint(&*client, &name).await? + 1;
        let mut messages = batch::read_from(&self.bus, Feed::Documents, from).await?;
        tracing::info!(checkpoint = %name, from, "projector running");
        loop {
            let single = self.poison.is_some();
            let first = tokio::select! {
                _ = &mut *shutdown => return Ok(Ended::Shutdown),
                next = messages.next() => next,
            };
            let Some(first) = first else {
                return Err(ProjectorError::Consumer("the event stream ended".into()));
            };
            let max = if single { 1 } else { self.config.batch_size };
            let raw = batch::fill(&mut messages, first, max).await;
            let mut decoded = Vec::with_capacity(raw.len());
            let mut through = 0;
            for m in raw {
                let m = m.map_err(|e| ProjectorError::Consumer(e.to_string()))?;
                let info = m
                    .info()
                    .map_err(|e| ProjectorError::Consumer(e.to_string()))?;
                let seq = info.stream_sequence;
                through = seq;
                match EventMessage::decode(&ns, &m.subject, seq, m.headers.as_ref(), &m.payload) {
                    Ok(d) => decoded.push(d),
                    // It can never succeed: set it aside rather than stall
                    // every later event.
                    Err(e) => {
                        tracing::error!(error = %e, seq, subject = %m.subject, "dead-lettering an undecodable event");
                        self.dead_letter(
                            &m.subject,
                            seq,
                            m.headers.as_ref(),
                            &m.payload,
                            &e.to_string(),
                        )
                        .await;
                    }
                }
            }
            match batch::apply(client, &name, &Projection::OF_DOCUMENTS, &decoded, through).await {
                Ok(applied) => {
                    if self.poison.is_some_and(|p| applied.checkpoint >= p.until) {
                        self.poison = None;
                    }
                    self.index_ready(client, applied.candidates).await?;
                }
                Err(e) if e.is_transient() || client.is_closed() => return Err(e),
                Err(e) => {
                    self.on_failure(client, &name, &decoded, through, &e)
                        .await?;
                    return Ok(Ended::Restart);
                }
            }
        }
    }

    /// A batch failed on its content: retry it one event at a time, and
    /// dead-letter an event that keeps failing alone.
    async fn on_failure(
        &mut self,
        client: &mut Client,
        name: &str,
        decoded: &[EventMessage],
        through: u64,
        error: &ProjectorError,
    ) -> Result<(), ProjectorError> {
        let Some(first) = decoded.first() else {
            return Ok(());
        };
        let seq = first.sequence;
        let mut poison = match self.poison {
            Some(p) if p.sequence == seq => p,
            Some(p) => Poison {
                sequence: seq,
                attempts: 0,
                ..p
            },
            None => Poison {
                until: through,
                sequence: seq,
                attempts: 0,
            },
        };
        if decoded.len() == 1 {
            poison.attempts += 1;
        }
        tracing::warn!(error = %error, seq, attempts = poison.attempts, "projection batch failed; retrying event by event");
        if poison.attempts >= POISON_ATTEMPTS {
            let reason = format!(
                "projector gave up after {} attempts: {error}",
                poison.attempts
            );
            tracing::error!(seq, %reason, "dead-lettering an event the read models cannot take");
            let headers = first.stored.envelope.to_headers();
            self.dead_letter(
                &first.stored.subject,
                seq,
                Some(&headers),
                &first.payload,
                &reason,
            )
            .await;
            // Step over it: the checkpoint moves past the event, nothing else.
            batch::apply(client, name, &Projection::OF_DOCUMENTS, &[], seq).await?;
            poison.attempts = 0;
        }
        self.poison = Some(poison);
        tokio::time::sleep(Duration::from_millis(
            200 * u64::from(poison.attempts.max(1)),
        ))
        .await;
        Ok(())
    }

    async fn dead_letter(
        &self,
        subject: &str,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &bytes::Bytes,
        reason: &str,
    ) {
        let origin = mnemo_bus::dlq::Origin {
            subject,
            stream_sequence: sequence,
            deliveries: 1,
            headers,
            payload,
        };
        mnemo_bus::dlq::publish(
            &self.bus.jetstream,
            &self.bus.namespace,
            "projector",
            &origin,
            reason,
        )
        .await;
    }

    /// Declares indexed every candidate whose chunks are all stored with vectors.
    async fn index_ready(
        &self,
        client: &Client,
        candidates: Candidates,
    ) -> Result<(), ProjectorError> {
        if candidates.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = candidates.keys().copied().collect();
        for (document_id, owner_token, run) in chunks::ready_to_index(client, &ids).await? {
            let Some((_, cause)) = candidates.get(&document_id) else {
                continue;
            };
            let metadata = cause.caused_metadata();
            let aggregate = format!("{owner_token}.{document_id}");
            match self
                .executor
                .execute(&aggregate, DocumentCommand::MarkIndexed { run }, &metadata)
                .await
            {
                Ok(done) => {
                    if done.appended.is_some() {
                        tracing::info!(document = %document_id, run, "document indexed");
                    }
                }
                // Not ready after all, or a newer run: the aggregate knows best.
                Err(ExecuteError::Refused(e)) => {
                    tracing::debug!(document = %document_id, run, reason = %e, "not indexed")
                }
                Err(ExecuteError::Bus(e)) => return Err(e.into()),
                Err(e @ ExecuteError::Conflict { .. }) => {
                    return Err(ProjectorError::Consumer(e.to_string()))
                }
            }
        }
        Ok(())
    }
}
