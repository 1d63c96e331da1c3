//! The loop every event-consuming service shares: a durable pull consumer,
//! a handler per message, and what happens after.
//!
//! - *Ack after the output.* A handler returns [`Outcome::Done`] only once
//!   what it produced is appended; the message is acknowledged after that.
//! - *Retry with backoff.* [`Outcome::Retry`] naks with a delay; JetStream
//!   redelivers. Long work is wrapped in [`heartbeat`] (in-progress every
//!   quarter of the ack wait), so a short ack wait does not expire under it
//!   and yet a crashed worker's message comes back within one ack wait.
//! - *Outages are not attempts.* [`Outcome::Unavailable`] (NATS, the blob
//!   store or PostgreSQL down or busy) retries the message in this process,
//!   with backoff and heartbeats, without limit and without a redelivery:
//!   an election or a restart never spends the attempts meant for bad input.
//! - *Bounded attempts.* After `max_deliver` deliveries, or at once on
//!   [`Outcome::Reject`], the handler's [`Handler::give_up`] runs (e.g. to
//!   append `DocumentFailed`), a copy goes to the dead-letter stream
//!   (`<ns>.dlq.<service>`, with the reason), and the message is terminated.
//!   Work that stalls past the ack wait (or dies with its process) is
//!   redelivered by JetStream and counts as an attempt too.
//! - *Pull what can be worked on.* Each pull asks for as many messages as
//!   there are free workers (plus [`ConsumerSpec::pull_ahead`]), so no
//!   message waits in a busy process while another copy is idle, and a
//!   crashed process holds only the messages it was working on.
//! - *Shared work.* N copies of a service use the same durable consumer name
//!   and JetStream spreads messages between them.
//! - *Graceful stop.* On shutdown no new message is taken; messages pulled
//!   but not started are handed back (nak) at once; messages in hand finish
//!   and are acknowledged before [`run`] returns (within one ack wait; what
//!   is still running then is left to be redelivered).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use cqrs_es::DomainEvent;
use futures::{FutureExt, StreamExt};
use mnemo_domain::schema::EventKind;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::{BusError, BusErrorKind};
use crate::event_store::{decode_message, Decoded, StoredEvents};
use crate::Bus;

pub use crate::dlq::headers as dlq_headers;

/// What a service consumes and how patiently.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Service name: the durable consumer is `<ns>_<service>`.
    pub service: String,
    /// Subjects consumed (one filter: nats-server 2.9 ignores plural filters).
    pub filter_subject: String,
    /// How long a delivery may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
    /// Deliveries before giving up.
    pub max_deliver: i64,
    /// Delay before each redelivery after a retry (last one repeats).
    pub backoff: Vec<Duration>,
    /// Messages handled at once by this process.
    pub concurrency: usize,
    /// Where a consumer created now starts (None: sequence 1). An existing
    /// consumer keeps its own position.
    pub start_sequence: Option<u64>,
    /// Messages pulled beyond the free workers (0 for services: a message
    /// never waits in a busy copy). A single-process job may pull one ahead
    /// so its consumer always has a pull waiting (`num_waiting`), which is
    /// how the embedding backfill tells that it is running.
    pub pull_ahead: usize,
    /// Read ahead and serve owners in turn ([`crate::fair`]); off by
    /// default, the pipeline services turn it on.
    pub fair: crate::fair::FairShare,
}

impl ConsumerSpec {
    pub fn new(service: impl Into<String>, filter_subject: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            filter_subject: filter_subject.into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            concurrency: 4,
            start_sequence: None,
            pull_ahead: 0,
            fair: crate::fair::FairShare::OFF,
        }
    }

    /// A service consuming every document event (`<ns>.ev.doc.>`), as the
    /// pipeline services do (each skips what it does not handle by the
    /// event-type header).
    pub fn document_events(ns: &crate::Namespace, service: impl Into<String>) -> Self {
        Self::new(service, format!("{}.>", ns.events_of("doc")))
    }

    /// Messages handled at once by this process (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Reads ahead and serves owners in turn ([`crate::fair`]);
    /// [`crate::fair::FairShare::OFF`] takes messages in stream order.
    pub fn with_fair_share(mut self, fair: crate::fair::FairShare) -> Self {
        self.fair = fair;
        self
    }

    /// How long a delivery may stay unacknowledged before redelivery.
    pub fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// How often a delivery being worked on is reported to JetStream
    /// ([`heartbeat`]): a quarter of the ack wait, so three reports can be
    /// lost before the message is redelivered to another copy.
    pub fn heartbeat(&self) -> Duration {
        heartbeat_every(self.ack_wait)
    }

    fn delay_after(&self, delivered: i64) -> Duration {
        let i = (delivered.max(1) - 1) as usize;
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// What the handler made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled, output appended (or nothing to do): acknowledge.
    Done,
    /// Failed on this input in a way that may pass later (a tool missing,
    /// the model failing on a batch): redelivered with backoff; counts
    /// against `max_deliver`.
    Retry { reason: String },
    /// A dependency (NATS, the blob store, PostgreSQL) is unavailable, or
    /// appends kept conflicting: retried in this process until it passes
    /// or the service stops; never counts against `max_deliver`.
    Unavailable { reason: String },
    /// Can never succeed (poison input): give up now.
    Reject { reason: String },
}

/// One delivered message.
pub struct Delivery {
    message: Message,
    pub subject: String,
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub delivered: i64,
    /// The owners' keys, to open the message with.
    keys: crate::keys::Keyring,
}

impl Delivery {
    fn new(message: Message, keys: crate::keys::Keyring) -> Result<Self, BusError> {
        let info = message.info().map_err(|e| {
            BusError::new(
                BusErrorKind::Corrupt,
                format!("not a JetStream delivery: {e}"),
            )
        })?;
        let (stream_sequence, delivered) = (info.stream_sequence, info.delivered);
        Ok(Self {
            subject: message.subject.to_string(),
            stream_sequence,
            delivered,
            message,
            keys,
        })
    }

    pub fn payload(&self) -> &Bytes {
        &self.message.payload
    }

    /// The JetStream message, e.g. to hand it back.
    pub(crate) fn into_message(self) -> Message {
        self.message
    }

    /// Acknowledges a message the handler does not want.
    pub(crate) async fn ack_unwanted(&self) {
        if let Err(e) = self.message.ack().await {
            tracing::warn!(seq = self.stream_sequence, error = %e, "cannot acknowledge a message no handler wants; it will come back");
        }
    }

    /// Whether the message holds an event of one of `kinds` (e.g.
    /// `&[DocumentEventKind::TextExtracted]`), read from the
    /// `Mnemo-Event-Type` header without decoding the payload (see
    /// [`crate::envelope::names_event_kind`]). A message without the
    /// header is treated as relevant, so decoding reports it.
    pub fn has_event_type<K: EventKind>(&self, kinds: &[K]) -> bool {
        crate::envelope::names_event_kind(self.message.headers.as_ref(), kinds).unwrap_or(true)
    }

    /// Decodes the events in the message (opened with the owner's key).
    pub async fn decode<E: DomainEvent + crate::upcast::Upcast>(
        &self,
    ) -> Result<Decoded<E>, BusError> {
        decode_message(
            &self.keys,
            &self.subject,
            self.stream_sequence,
            self.message.headers.as_ref(),
            &self.message.payload,
        )
        .await
    }

    /// Decodes the events, or says what to do instead: an erased owner's
    /// message is done with (nothing of theirs is processed again); one
    /// that cannot be decoded now never will be (reject); the keyring out
    /// of reach is a wait.
    pub async fn decode_or_reject<E: DomainEvent + crate::upcast::Upcast>(
        &self,
    ) -> Result<StoredEvents<E>, Outcome> {
        match self.decode().await {
            Ok(Decoded::Events(stored)) => Ok(stored),
            Ok(Decoded::Erased(_)) => Err(Outcome::Done),
            Err(e) if e.kind() == BusErrorKind::Unavailable => Err(Outcome::Unavailable {
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == BusErrorKind::Erased => Err(Outcome::Done),
            Err(e) => Err(Outcome::Reject {
                reason: e.to_string(),
            }),
        }
    }

    /// Tells JetStream the work goes on (resets the ack wait).
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.message.ack_with(AckKind::Progress).await.map_err(|e| {
            BusError::new(
                BusErrorKind::Unavailable,
                format!("cannot send progress: {e}"),
            )
        })
    }
}

/// A quarter of `ack_wait` (at least 100 ms): see [`ConsumerSpec::heartbeat`].
pub fn heartbeat_every(ack_wait: Duration) -> Duration {
    (ack_wait / 4).max(Duration::from_millis(100))
}

/// The longest a delivery is kept alive by [`heartbeat`]: work that runs
/// longer is taken for hung (every service bounds its own work well below
/// this), and JetStream hands the message to another copy after one more
/// ack wait.
pub const HEARTBEAT_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Runs `work` for `delivery`, telling JetStream every `every` that the work
/// goes on (`in_progress`), so a long document is not redelivered to
/// another copy mid-work, for at most [`HEARTBEAT_LIMIT`]. What every
/// service wraps its handling in.
pub async fn heartbeat<F: Future>(delivery: &Delivery, every: Duration, work: F) -> F::Output {
    tokio::pin!(work);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let until = tokio::time::Instant::now() + HEARTBEAT_LIMIT;
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = beat.tick(), if tokio::time::Instant::now() < until => {
                if let Err(e) = delivery.in_progress().await {
                    tracing::warn!(error = %e, "could not tell JetStream the work goes on");
                }
            }
        }
    }
}

/// A service's reaction to messages.
pub trait Handler: Send + Sync + 'static {
    /// Whether this message is for the handler at all (e.g. by its event
    /// type, [`Delivery::has_event_type`]). One that is not is
    /// acknowledged at once: it never waits for a worker or takes a place
    /// in the read-ahead window ([`crate::fair`]).
    fn wants(&self, _delivery: &Delivery) -> bool {
        true
    }

    /// Handles one message.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Outcome> + Send;

    /// Runs once when the message is given up on, before it is dead-lettered
    /// (e.g. append `DocumentFailed` for the document).
    fn give_up(&self, delivery: &Delivery, reason: &str) -> impl Future<Output = ()> + Send;
}

/// Creates (or finds) the service's durable consumer, and brings an
/// existing one's settings (ack wait, attempts, pending limit) up to the
/// spec: a durable consumer outlives the process that made it, and a
/// service restarted with a shorter `--<service>-ack-wait` must get it.
pub async fn durable_consumer(
    bus: &Bus,
    spec: &ConsumerSpec,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, BusError> {
    let name = bus.namespace.consumer(&spec.service);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("mnemo {}", spec.service)),
        filter_subject: spec.filter_subject.clone(),
        deliver_policy: match spec.start_sequence {
            Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            None => DeliverPolicy::All,
        },
        ack_policy: AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        // One more than we use: the consumer itself must never be
        // the one that stops delivering, or give_up would not run.
        max_deliver: spec.max_deliver + 1,
        // Consumer-wide: room for several copies, each pulling only what
        // its free workers can take.
        max_ack_pending: ((spec.concurrency + spec.fair.window) * 4).max(16) as i64,
        ..Default::default()
    };
    let cannot = |e: &dyn std::fmt::Display| {
        BusError::new(
            BusErrorKind::Unavailable,
            format!("cannot create consumer {name}: {e}"),
        )
    };
    // Idempotent, so tried again while JetStream does not answer (a
    // cluster forming or electing a consumer leader).
    let mut consumer = crate::setup::while_unavailable("creating the consumer", || async {
        bus.events
            .get_or_create_consumer(&name, config.clone())
            .await
            .map_err(|e| cannot(&e))
    })
    .await?;
    let current = &consumer.cached_info().config;
    if current.ack_wait != config.ack_wait
        || current.max_deliver != config.max_deliver
        || current.max_ack_pending != config.max_ack_pending
    {
        tracing::info!(consumer = %name, ack_wait = ?config.ack_wait, max_deliver = config.max_deliver, "updating the consumer's settings");
        // Keep its position: only the settings change.
        let updated = pull::Config {
            deliver_policy: current.deliver_policy,
            ..config
        };
        consumer = bus
            .events
            .create_consumer(updated)
            .await
            .map_err(|e| cannot(&e))?;
    }
    Ok(consumer)
}

/// How long one pull waits for messages before it is renewed.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// Runs `handler` on the service's consumer until `shutdown` resolves.
pub async fn run<H: Handler>(
    bus: &Bus,
    spec: ConsumerSpec,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BusError> {
    if spec.fair.window > 0 {
        return run_fair(bus, spec, handler, shutdown).await;
    }
    let mut consumer = durable_consumer(bus, &spec).await?;
    report_state(&mut consumer, &spec).await;
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let spec = Arc::new(spec);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut in_hand = tokio::task::JoinSet::new();
    let mut pull_backoff = crate::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    // Messages pulled when the stop came, never started: handed back below.
    let mut unstarted = Vec::new();
    tokio::pin!(shutdown);
    crate::metrics::running(&spec.service, true);
    tracing::info!(service = %spec.service, filter = %spec.filter_subject, "consumer running");
    'pulling: loop {
        // Ask for what the free workers can take now; with none free (and
        // nothing to pull ahead), wait for one. `biased`: a stop asked for
        // wins over more work that is ready.
        let wanted = permits.available_permits() + spec.pull_ahead;
        if wanted == 0 {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                p = permits.clone().acquire_owned() => drop(p),
            }
            continue;
        }
        let pulled = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            b = consumer.batch().max_messages(wanted).expires(PULL_WAIT).messages() => b,
        };
        let mut batch = match pulled {
            Ok(b) => b,
            Err(e) => {
                let delay = pull_backoff.next_delay().unwrap_or(PULL_WAIT);
                tracing::warn!(service = %spec.service, error = %e, ?delay, "cannot pull; retrying");
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    while let Some(Some(Ok(m))) = batch.next().now_or_never() {
                        unstarted.push(m);
                    }
                    break 'pulling;
                }
                next = batch.next() => next,
            };
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::debug!(service = %spec.service, error = %e, "pull ended");
                    break;
                }
                None => break,
            };
            pull_backoff.reset();
            // Normally free already; a message pulled ahead waits here.
            let permit = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    unstarted.push(message);
                    while let Some(Some(Ok(m))) = batch.next().now_or_never() {
                        unstarted.push(m);
                    }
                    break 'pulling;
                }
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break 'pulling,
                },
            };
            let delivery = match Delivery::new(message, bus.keys.clone()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "dropping a non-JetStream message");
                    continue;
                }
            };
            let work = Work {
                handler: &handler,
                spec: &spec,
                bus,
                stopping: &stopping,
            };
            work.start(delivery, permit, &mut in_hand);
            // Reap finished tasks as we go.
            while in_hand.try_join_next().is_some() {}
        }
    }
    stop(&spec, stopping_tx, unstarted, in_hand).await;
    Ok(())
}

/// The consumer's pending, ack-pending and redelivered counts, as
/// JetStream has them now, into the metrics ([`crate::metrics`]).
async fn report_state(
    consumer: &mut async_nats::jetstream::consumer::Consumer<pull::Config>,
    spec: &ConsumerSpec,
) {
    match consumer.info().await {
        Ok(info) => crate::metrics::consumer_state(&spec.service, info),
        Err(e) => {
            tracing::debug!(service = %spec.service, error = %e, "cannot read the consumer's state")
        }
    }
}

/// The namespace's dead letters waiting (`<NS>_DLQ`), into the metrics.
async fn report_dead_letters(bus: &Bus) {
    let name = bus.namespace.dlq_stream();
    // Opening the stream reads its state: one request.
    match bus.jetstream.get_stream(&name).await {
        Ok(stream) => crate::metrics::dead_letters(stream.cached_info().state.messages),
        Err(e) => tracing::debug!(error = %e, "cannot read the dead-letter stream's state"),
    }
}

/// [`run`] with a read-ahead window served owner by owner ([`crate::fair`]).
async fn run_fair<H: Handler>(
    bus: &Bus,
    spec: ConsumerSpec,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BusError> {
    let mut consumer = durable_consumer(bus, &spec).await?;
    report_state(&mut consumer, &spec).await;
    report_dead_letters(bus).await;
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    // Places for owners with nothing in hand when every worker is busy.
    let guests = Arc::new(Semaphore::new((spec.concurrency / 2).max(1)));
    let lanes_busy = crate::fair::InHand::default();
    let spec = Arc::new(spec);
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let mut in_hand = tokio::task::JoinSet::new();
    let mut pull_backoff = crate::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut window = crate::fair::Window::<Delivery>::default();
    // The pull being read, if any; a new one is asked for when it ends and
    // the window has room.
    let mut batch: Option<async_nats::jetstream::consumer::pull::Batch> = None;
    let mut retry_pull_at: Option<tokio::time::Instant> = None;
    let mut report = tokio::time::interval(spec.heartbeat());
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    crate::metrics::running(&spec.service, true);
    tracing::info!(service = %spec.service, filter = %spec.filter_subject, window = spec.fair.window, "consumer running, owners served in turn");
    loop {
        // Start work for every free worker, owners in turn; then, with
        // every worker busy, for owners with nothing in hand (guests).
        while !window.is_empty() {
            let (lane, delivery, place) = if let Ok(p) = permits.clone().try_acquire_owned() {
                let Some((lane, d)) = window.pop() else { break };
                (lane, d, p)
            } else if let Some(lane) = window.idle_lane(&lanes_busy) {
                let Ok(g) = guests.clone().try_acquire_owned() else {
                    break;
                };
                let Some(d) = window.pop_from(&lane) else {
                    break;
                };
                (lane, d, g)
            } else {
                break;
            };
            let runtime = match &spec.fair.express {
                Some(express) if window.is_express(&lane, &lanes_busy) => {
                    tracing::debug!(service = %spec.service, seq = delivery.stream_sequence, "express: beside another owner's work");
                    Some(express)
                }
                _ => None,
            };
            let work = Work {
                handler: &handler,
                spec: &spec,
                bus,
                stopping: &stopping,
            };
            let place = (place, lanes_busy.start(&lane));
            work.start_on(runtime, delivery, place, &mut in_hand);
        }
        while in_hand.try_join_next().is_some() {}
        // Room for more: what the free workers and the window can take.
        let room = permits.available_permits()
            + if window.has_room(&spec.fair) {
                spec.fair.window
            } else {
                0
            };
        let wanted = room.saturating_sub(window.len());
        let may_pull = retry_pull_at.is_none_or(|at| tokio::time::Instant::now() >= at);
        if batch.is_none() && wanted > 0 && may_pull {
            match consumer
                .batch()
                .max_messages(wanted)
                .expires(PULL_WAIT)
                .messages()
                .await
            {
                Ok(b) => {
                    tracing::trace!(service = %spec.service, wanted, held = window.len(), "pulling");
                    batch = Some(b);
                    retry_pull_at = None;
                }
                Err(e) => {
                    let delay = pull_backoff.next_delay().unwrap_or(PULL_WAIT);
                    tracing::warn!(service = %spec.service, error = %e, ?delay, "cannot pull; retrying");
                    retry_pull_at = Some(tokio::time::Instant::now() + delay);
                }
            }
        }
        let pull_idle = batch.is_none();
        let has_waiting = !window.is_empty();
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            next = async {
                match batch.as_mut() {
                    Some(b) => b.next().await,
                    None => std::future::pending().await,
                }
            } => match next {
                Some(Ok(m)) => {
                    pull_backoff.reset();
                    match Delivery::new(m, bus.keys.clone()) {
                        // Not for this service: acknowledged now, so the
                        // window holds only work.
                        Ok(d) if !handler.wants(&d) => d.ack_unwanted().await,
                        Ok(d) => {
                            tracing::trace!(service = %spec.service, seq = d.stream_sequence, "held");
                            window.hold(d);
                        }
                        Err(e) => tracing::error!(error = %e, "dropping a non-JetStream message"),
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(service = %spec.service, error = %e, "pull ended");
                    batch = None;
                }
                None => {
                    tracing::trace!(service = %spec.service, held = window.len(), "pull done");
                    batch = None;
                }
            },
            // A worker finishing frees a place for the window's next.
            Some(_) = in_hand.join_next(), if has_waiting => {}
            _ = async {
                match retry_pull_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            }, if pull_idle => {}
            _ = report.tick() => {
                window.report_held(spec.heartbeat()).await;
                crate::metrics::held(&spec.service, window.len());
                report_state(&mut consumer, &spec).await;
                report_dead_letters(bus).await;
            }
        }
    }
    // Held and still arriving: handed back at once.
    let mut unstarted: Vec<Message> = window
        .drain()
        .into_iter()
        .map(Delivery::into_message)
        .collect();
    if let Some(b) = batch.as_mut() {
        while let Some(Some(Ok(m))) = b.next().now_or_never() {
            unstarted.push(m);
        }
    }
    stop(&spec, stopping_tx, unstarted, in_hand).await;
    Ok(())
}

/// What a worker needs to handle a message.
struct Work<'a, H> {
    handler: &'a Arc<H>,
    spec: &'a Arc<ConsumerSpec>,
    bus: &'a Bus,
    stopping: &'a tokio::sync::watch::Receiver<bool>,
}

impl<H: Handler> Work<'_, H> {
    /// Handles `delivery` in a task of `in_hand`, holding `place` (a
    /// worker's permit, and what else counts the work) until it is
    /// acknowledged.
    fn start(
        self,
        delivery: Delivery,
        place: impl Send + 'static,
        in_hand: &mut tokio::task::JoinSet<()>,
    ) {
        self.start_on(None, delivery, place, in_hand);
    }

    /// [`Self::start`], the task on `runtime` if given (the express
    /// runtime, [`crate::fair`]).
    fn start_on(
        self,
        runtime: Option<&tokio::runtime::Handle>,
        delivery: Delivery,
        place: impl Send + 'static,
        in_hand: &mut tokio::task::JoinSet<()>,
    ) {
        let task = handle_delivery(
            delivery,
            self.handler.clone(),
            self.spec.clone(),
            self.bus.clone(),
            self.stopping.clone(),
        );
        let task = async move {
            let _place = place;
            task.await;
        };
        match runtime {
            Some(runtime) => in_hand.spawn_on(task, runtime),
            None => in_hand.spawn(task),
        };
    }
}

/// The end of [`run`]: tells the workers, hands back what was never
/// started, and waits (at most an ack wait) for the work in hand.
async fn stop(
    spec: &ConsumerSpec,
    stopping_tx: tokio::sync::watch::Sender<bool>,
    unstarted: Vec<Message>,
    mut in_hand: tokio::task::JoinSet<()>,
) {
    let _ = stopping_tx.send(true);
    // Messages pulled but never started are handed back now, so the next
    // run (or another copy) gets them at once, not after their ack wait.
    let mut handed_back = 0;
    for m in unstarted {
        if m.ack_with(AckKind::Nak(None)).await.is_ok() {
            handed_back += 1;
        }
    }
    if handed_back > 0 {
        tracing::debug!(service = %spec.service, handed_back, "unstarted messages handed back");
    }
    // Graceful stop: finish what is in hand — but not forever: work still
    // running after an ack wait is abandoned (JetStream redelivers it).
    let drained = tokio::time::timeout(spec.ack_wait, async {
        while in_hand.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(service = %spec.service, left = in_hand.len(), "stopping with work unfinished; it will be redelivered");
        in_hand.abort_all();
    }
    crate::metrics::running(&spec.service, false);
    tracing::info!(service = %spec.service, "consumer stopped");
}

/// One delivery, from the handler to its acknowledgement.
async fn handle_delivery<H: Handler>(
    delivery: Delivery,
    handler: Arc<H>,
    spec: Arc<ConsumerSpec>,
    bus: Bus,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "deliver",
        service = %spec.service,
        seq = delivery.stream_sequence,
        delivered = delivery.delivered,
        event_id = delivery
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(crate::envelope::EVENT_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
    );
    // The delivery is a step of the trace its event carries: what the
    // handler appends carries this span on (`caused_metadata`).
    crate::trace::continue_trace(
        &span,
        delivery
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(crate::envelope::TRACEPARENT))
            .map(|v| v.as_str()),
    );
    async move {
        let started = std::time::Instant::now();
        let mut outage = crate::Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
            .with_jitter();
        let outcome = loop {
            // The consumer allows one delivery more than we use: a message
            // whose last attempt never finished (the service crashed or
            // stalled past the ack wait) comes back once more, only to be
            // given up on here — so it still gets its `give_up` and dead letter.
            let outcome = if delivery.delivered > spec.max_deliver {
                Outcome::Reject {
                    reason: format!(
                        "the last attempt never finished: the service stopped, crashed or stalled while handling it (delivery {})",
                        delivery.delivered
                    ),
                }
            } else if !handler.wants(&delivery) {
                Outcome::Done
            } else {
                handler.handle(&delivery).await
            };
            let Outcome::Unavailable { reason } = outcome else {
                break outcome;
            };
            if *stopping.borrow() {
                break Outcome::Unavailable { reason };
            }
            // Not an attempt: wait (keeping the message this copy's) and
            // try again, for as long as it takes or until the stop.
            let delay = outage.next_delay().unwrap_or(Duration::from_secs(10));
            tracing::warn!(seq = delivery.stream_sequence, %reason, ?delay, "a dependency is unavailable; trying again (not counted as an attempt)");
            let wait = heartbeat(&delivery, spec.heartbeat(), tokio::time::sleep(delay));
            tokio::select! {
                _ = wait => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        };
        let ack = match outcome {
            Outcome::Done => AckKind::Ack,
            // Stopping during an outage: hand it back for the next run.
            Outcome::Unavailable { .. } => AckKind::Nak(None),
            Outcome::Retry { reason } if delivery.delivered < spec.max_deliver => {
                let delay = spec.delay_after(delivery.delivered);
                tracing::warn!(seq = delivery.stream_sequence, delivered = delivery.delivered, %reason, ?delay, "retrying");
                AckKind::Nak(Some(delay))
            }
            Outcome::Retry { reason } | Outcome::Reject { reason } => {
                let reason = if delivery.delivered >= spec.max_deliver {
                    format!("gave up after {} attempts: {reason}", delivery.delivered)
                } else {
                    reason
                };
                tracing::error!(seq = delivery.stream_sequence, %reason, "giving up");
                handler.give_up(&delivery, &reason).await;
                let origin = crate::dlq::Origin {
                    subject: &delivery.subject,
                    stream_sequence: delivery.stream_sequence,
                    deliveries: delivery.delivered,
                    headers: delivery.message.headers.as_ref(),
                    payload: &delivery.message.payload,
                };
                crate::dlq::publish(&bus.jetstream, &bus.namespace, &spec.service, &origin, &reason)
                    .await;
                AckKind::Term
            }
        };
        let result = match &ack {
            AckKind::Ack => "done",
            AckKind::Nak(Some(_)) => "retried",
            AckKind::Term => "dead_lettered",
            _ => "handed_back",
        };
        crate::metrics::handled(&spec.service, result, started.elapsed());
        // A success is acknowledged with confirmation: once `run`
        // returns, JetStream knows every finished message is done.
        let acked = match ack {
            AckKind::Ack => delivery.message.double_ack().await,
            other => delivery.message.ack_with(other).await,
        };
        if let Err(e) = acked {
            tracing::warn!(error = %e, seq = delivery.stream_sequence, "ack failed; JetStream will redeliver");
        }
    }
    .instrument(span)
    .await
}

/// Appends a service's result for a delivered event. `Ok` once appended,
/// and also when the aggregate refuses it as moot
/// ([`mnemo_domain::Refusal::is_moot`], e.g. because the run it belongs to
/// was cancelled or superseded): the result is dropped with a log line.
pub async fn append<A>(
    executor: &crate::CommandExecutor<A>,
    aggregate: &str,
    command: A::Command,
    metadata: &std::collections::HashMap<String, String>,
) -> Result<(), crate::ExecuteError<A::Error>>
where
    A: cqrs_es::Aggregate + Clone + 'static,
    A::Event: crate::upcast::Upcast,
    A::Command: Clone,
    A::Error: mnemo_domain::Refusal,
{
    use mnemo_domain::Refusal;
    match executor.execute(aggregate, command, metadata).await {
        Ok(_) => Ok(()),
        Err(crate::ExecuteError::Refused(e)) if e.is_moot() => {
            tracing::info!(aggregate, reason = %e, "result dropped: the run was cancelled or superseded");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// What a failed [`append`] means for the delivery: a refusal will never
/// be taken (`Reject`: give up now); a conflict or the bus failing is not
/// the input's fault (`Unavailable`: try again, not counted).
pub fn append_outcome<E: std::error::Error>(e: &crate::ExecuteError<E>) -> Outcome {
    match e {
        crate::ExecuteError::Refused(_) => Outcome::Reject {
            reason: e.to_string(),
        },
        crate::ExecuteError::Bus(b) => bus_outcome(b),
        crate::ExecuteError::Conflict { .. } => Outcome::Unavailable {
            reason: e.to_string(),
        },
    }
}

/// A bus error said as what to do with the delivery: the owner erased is
/// `Done` (nothing of theirs is processed again); anything else is an
/// outage, waited out.
pub fn bus_outcome(e: &BusError) -> Outcome {
    match e.kind() {
        BusErrorKind::Erased => Outcome::Done,
        _ => Outcome::Unavailable {
            reason: e.to_string(),
        },
    }
}

/// [`append`], said as what to do with the delivery: `Done` once appended
/// (or moot), else [`append_outcome`].
pub async fn append_result<A>(
    executor: &crate::CommandExecutor<A>,
    aggregate: &str,
    command: A::Command,
    metadata: &std::collections::HashMap<String, String>,
) -> Outcome
where
    A: cqrs_es::Aggregate + Clone + 'static,
    A::Event: crate::upcast::Upcast,
    A::Command: Clone,
    A::Error: mnemo_domain::Refusal,
{
    match append(executor, aggregate, command, metadata).await {
        Ok(()) => Outcome::Done,
        Err(e) => append_outcome(&e),
    }
}

/// For [`Handler::give_up`]: appends the failure command that `fail` builds
/// from the delivered events (the first event it applies to), caused by the
/// delivered message. Errors are logged: giving up must not fail.
pub async fn append_failure<A>(
    executor: &crate::CommandExecutor<A>,
    delivery: &Delivery,
    fail: impl Fn(&A::Event) -> Option<A::Command>,
) where
    A: cqrs_es::Aggregate + Clone + 'static,
    A::Event: crate::upcast::Upcast,
    A::Command: Clone,
{
    let Ok(Decoded::Events(stored)) = delivery.decode::<A::Event>().await else {
        return;
    };
    let Some(command) = stored.events.iter().find_map(fail) else {
        return;
    };
    let md = stored.envelope.caused_metadata();
    if let Err(e) = executor
        .execute(&stored.envelope.aggregate_id, command, &md)
        .await
    {
        tracing::error!(aggregate = %stored.envelope.aggregate_id, error = %e, "could not record the failure");
    }
}

/// A fresh name for an ordered reader (`<purpose>_<random>`). Named, its
/// creation carries the filter in the request subject, which nats-server
/// checks and `nats.conf` grants per role; an unnamed one would not.
pub fn ordered_reader_name(purpose: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{purpose}_{}", &id[..16])
}
