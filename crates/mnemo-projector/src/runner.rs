//! The live runner: follows one feed of the event stream from its
//! checkpoint and keeps that feed's read models current. One runner, driven
//! by a [`FeedHandler`] per feed ([`crate::handler`]).
//!
//! - *Ordered reads from the checkpoint.* The runner reads the feed's
//!   subjects with an ordered consumer starting right after its checkpoint
//!   (JetStream guarantees order and no gaps on it). Nothing is acknowledged:
//!   the checkpoint in PostgreSQL, written in the same transaction as the
//!   rows, *is* the position. After any failure the runner starts a new
//!   read from the checkpoint, so no event is ever skipped — a durable
//!   consumer with nak-and-continue would apply later events before the
//!   failed ones come back.
//! - *One active copy.* Copies take a PostgreSQL advisory lock on the
//!   checkpoint's name; the others wait on it as hot standbys and take over
//!   when the active one's session ends. (Correctness does not depend on the
//!   lock: two copies would both read in order and the checkpoint row lock
//!   would make the second skip what the first applied. The lock only saves
//!   the duplicate work.)
//! - *Poison events fail alone.* An event that cannot be decoded is
//!   dead-lettered (`<ns>.dlq.<feed's service>`) and stepped over. A batch
//!   that fails for a reason other than an unavailable database is retried
//!   one event at a time; an event that still fails after
//!   [`POISON_ATTEMPTS`] is dead-lettered and stepped over, so one bad
//!   event cannot stall every read model. A database outage never skips
//!   anything.
//! - *Supervised.* Connecting, and reading again after a failure, wait
//!   with [`mnemo_bus::Backoff`] (100 ms doubling to 5 s), which starts over
//!   once a batch has been applied. A reader that stops delivering while the
//!   stream holds more (an ordered consumer lost with a restarted server or
//!   a moved leader) is noticed within [`STALL_CHECK`], logged, and read
//!   again from the checkpoint.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use mnemo_bus::{Backoff, Bus, Namespace};
use tokio_postgres::{Client, GenericClient};

use crate::handler::FeedHandler;
use crate::{batch, db, migrations, Feed, ProjectorConfig, ProjectorError};

/// Attempts at one event, one at a time, before it is dead-lettered.
pub const POISON_ATTEMPTS: u32 = 3;

/// How long a live read may deliver nothing before the runner checks that
/// the stream has nothing for it either (see `check_not_stalled`).
pub const STALL_CHECK: Duration = Duration::from_secs(2);

/// Name of the document read models' checkpoint (and of their dead
/// letters' service): `<ns>_projector`.
pub fn consumer_name(ns: &Namespace) -> String {
    Feed::Documents.checkpoint_name(ns)
}

/// Stream sequence the document read models reflect.
pub async fn checkpoint(
    client: &impl GenericClient,
    ns: &Namespace,
) -> Result<u64, ProjectorError> {
    feed_checkpoint(client, ns, Feed::Documents).await
}

/// Waits until the document read models have applied `sequence`, polling
/// the checkpoint until `timeout`. Returns the checkpoint reached.
pub async fn wait_for(
    client: &impl GenericClient,
    ns: &Namespace,
    sequence: u64,
    timeout: Duration,
) -> Result<u64, ProjectorError> {
    feed_wait_for(client, ns, Feed::Documents, sequence, timeout).await
}

/// Stream sequence `feed`'s read models reflect (every event of the feed
/// at or below it is applied).
pub async fn feed_checkpoint(
    client: &impl GenericClient,
    ns: &Namespace,
    feed: Feed,
) -> Result<u64, ProjectorError> {
    batch::checkpoint(client, &feed.checkpoint_name(ns)).await
}

/// Waits until `feed`'s read models have applied `sequence` (polling the
/// checkpoint, bounded by `timeout`); returns the checkpoint reached.
pub async fn feed_wait_for(
    client: &impl GenericClient,
    ns: &Namespace,
    feed: Feed,
    sequence: u64,
    timeout: Duration,
) -> Result<u64, ProjectorError> {
    batch::wait_for(client, &feed.checkpoint_name(ns), sequence, timeout).await
}

/// Prepares the schema; safe to call at every start.
pub async fn prepare(config: &ProjectorConfig) -> Result<Client, ProjectorError> {
    let mut client = db::connect(&config.database_url, &config.namespace).await?;
    migrations::apply(&mut client, config.namespace.sql_schema()).await?;
    Ok(client)
}

/// Delays between reconnects and re-reads.
fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// Why a read of the stream ended.
enum Ended {
    Shutdown,
    /// Start again from the checkpoint (after a failure).
    Restart,
}

/// Runs `handler`'s feed until `shutdown` resolves, finishing the batch in
/// hand. The first connection must work (a wrong URL fails the start);
/// after that, PostgreSQL and NATS outages are waited out.
pub async fn run<H: FeedHandler>(
    bus: Bus,
    config: ProjectorConfig,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let first = prepare(&config).await?;
    let feed = handler.feed();
    let mut live = Live {
        key: feed.checkpoint_name(&config.namespace),
        bus,
        config,
        handler,
        poison: None,
        backoff: backoff(),
    };
    tokio::pin!(shutdown);
    let mut client = Some(first);
    loop {
        let mut c = match client.take() {
            Some(c) if !c.is_closed() => c,
            _ => match prepare(&live.config).await {
                Ok(c) => c,
                Err(e) => {
                    let delay = live.delay();
                    tracing::warn!(?feed, error = %e, ?delay, "PostgreSQL unavailable, retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            },
        };
        match live.follow(&mut c, &mut shutdown).await {
            Ok(Ended::Shutdown) => break,
            Ok(Ended::Restart) => client = Some(c),
            Err(e) => {
                let delay = live.delay();
                tracing::warn!(?feed, error = %e, ?delay, "projector read interrupted; resuming from the checkpoint");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                client = Some(c);
            }
        }
    }
    tracing::info!(?feed, "projector stopped");
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

struct Live<H> {
    bus: Bus,
    config: ProjectorConfig,
    handler: H,
    /// The feed's checkpoint (and advisory lock) name.
    key: String,
    poison: Option<Poison>,
    backoff: Backoff,
}

impl<H: FeedHandler> Live<H> {
    fn delay(&mut self) -> Duration {
        // Unlimited: the fallback is never used.
        self.backoff.next_delay().unwrap_or(Duration::from_secs(5))
    }

    /// One read of the stream from the checkpoint, until shutdown or failure.
    async fn follow(
        &mut self,
        client: &mut Client,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Result<Ended, ProjectorError> {
        let feed = self.handler.feed();
        // Leadership: wait (as a standby) until no other copy is active.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&self.key];
        let lock = client.execute("SELECT pg_advisory_lock(hashtext($1))", &params);
        tokio::select! {
            _ = &mut *shutdown => return Ok(Ended::Shutdown),
            r = lock => { r?; }
        }
        // What a failed or interrupted `after_commit` left undone.
        self.handler.resume(client).await?;
        let from = batch::checkpoint(&*client, &self.key).await? + 1;
        let mut messages = batch::read_from(&self.bus, feed, from).await?;
        tracing::info!(checkpoint = %self.key, from, "projector running");
        // The last stream sequence this read has taken in.
        let mut taken = from - 1;
        loop {
            let first = tokio::select! {
                _ = &mut *shutdown => return Ok(Ended::Shutdown),
                next = tokio::time::timeout(STALL_CHECK, messages.next()) => match next {
                    Ok(next) => next,
                    // Quiet: fine if the stream is, not if it holds more.
                    Err(_) => {
                        self.check_not_stalled(feed, taken).await?;
                        continue;
                    }
                },
            };
            let Some(first) = first else {
                return Err(ProjectorError::stream_ended());
            };
            let max = if self.poison.is_some() {
                1
            } else {
                self.config.batch_size
            };
            let raw = batch::fill(&mut messages, first, max).await;
            let mut decoded = Vec::with_capacity(raw.len());
            // The stored message of each decoded one, for a dead letter.
            let mut origins = Vec::with_capacity(raw.len());
            let mut through = 0;
            for m in raw {
                let m = m.map_err(|e| ProjectorError::stream("reading the event stream", e))?;
                let seq = m
                    .info()
                    .map_err(ProjectorError::not_jetstream)?
                    .stream_sequence;
                through = seq;
                match self
                    .handler
                    .decode(
                        &self.bus.keys,
                        &m.subject,
                        seq,
                        m.headers.as_ref(),
                        &m.payload,
                    )
                    .await
                {
                    Ok(d) => {
                        decoded.push(d);
                        origins.push((seq, m));
                    }
                    // The keyring out of reach: read again from the
                    // checkpoint once it answers (never dead-letter for it).
                    Err(e) if e.kind() == mnemo_bus::BusErrorKind::Unavailable => {
                        return Err(e.into());
                    }
                    // It can never succeed: set it aside rather than stall
                    // every later event.
                    Err(e) => {
                        tracing::error!(error = %e, seq, subject = %m.subject, "dead-lettering an undecodable event");
                        self.dead_letter(seq, &m, &e.to_string()).await;
                    }
                }
            }
            match self
                .handler
                .apply(client, &self.key, &decoded, through)
                .await
            {
                Ok(applied) => {
                    taken = through;
                    // Its lag: the stream's last sequence (nats-server's
                    // own metrics) minus this.
                    metrics::gauge!("mnemo_projector_applied_sequence", "checkpoint" => self.key.clone())
                        .set(through as f64);
                    if self.poison.is_some_and(|p| through >= p.until) {
                        self.poison = None;
                    }
                    self.backoff.reset();
                    self.handler.after_commit(client, applied).await?;
                }
                Err(e) if e.is_transient() || client.is_closed() => return Err(e),
                Err(e) => {
                    self.on_failure(client, origins.first(), through, &e)
                        .await?;
                    return Ok(Ended::Restart);
                }
            }
        }
    }

    /// Fails the read when the stream holds a message of the feed past
    /// `taken` that the reader has not delivered in a [`STALL_CHECK`]: an
    /// ordered consumer lost with its server (a restart, a leader moving)
    /// can stop delivering without an error, and the read models would
    /// stall silently. The runner then reads again from the checkpoint.
    async fn check_not_stalled(&self, feed: Feed, taken: u64) -> Result<(), ProjectorError> {
        let filter = format!("{}.>", self.bus.namespace.events_of(feed.kind()));
        match self
            .bus
            .events
            .direct_get_next_for_subject(filter.as_str(), Some(taken + 1))
            .await
        {
            Ok(waiting) => {
                tracing::warn!(
                    ?feed,
                    taken,
                    waiting = waiting.sequence,
                    "the ordered reader stopped delivering; recreating it from the checkpoint"
                );
                Err(ProjectorError::Bus(mnemo_bus::BusError::new(
                    mnemo_bus::BusErrorKind::Unavailable,
                    format!(
                        "the ordered reader stalled: event {} is in the stream but was not delivered",
                        waiting.sequence
                    ),
                )))
            }
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => {
                Ok(())
            }
            Err(e) => Err(ProjectorError::stream("checking the event stream", e)),
        }
    }

    /// A batch failed on its content: retry it one event at a time, and
    /// dead-letter an event that keeps failing alone.
    async fn on_failure(
        &mut self,
        client: &mut Client,
        first: Option<&(u64, async_nats::jetstream::Message)>,
        through: u64,
        error: &ProjectorError,
    ) -> Result<(), ProjectorError> {
        let Some((seq, message)) = first else {
            return Ok(());
        };
        let seq = *seq;
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
        // Only a batch of this one event counts as an attempt at it.
        if through == seq {
            poison.attempts += 1;
        }
        tracing::warn!(error = %error, seq, attempts = poison.attempts, "projection batch failed; retrying event by event");
        if poison.attempts >= POISON_ATTEMPTS {
            let reason = format!(
                "projector gave up after {} attempts: {error}",
                poison.attempts
            );
            tracing::error!(seq, %reason, "dead-lettering an event the read models cannot take");
            self.dead_letter(seq, message, &reason).await;
            // Step over it: the checkpoint moves past the event, nothing else.
            self.handler.apply(client, &self.key, &[], seq).await?;
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
        sequence: u64,
        message: &async_nats::jetstream::Message,
        reason: &str,
    ) {
        let origin = mnemo_bus::dlq::Origin {
            subject: &message.subject,
            stream_sequence: sequence,
            deliveries: 1,
            headers: message.headers.as_ref(),
            payload: &message.payload,
        };
        mnemo_bus::dlq::publish(
            &self.bus.jetstream,
            &self.bus.namespace,
            self.handler.feed().dlq_service(),
            &origin,
            reason,
        )
        .await;
    }
}
