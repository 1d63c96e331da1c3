//! cqrs-es's `EventStore` on a JetStream stream.
//!
//! One aggregate is one subject (`<ns>.ev.<kind>.<owner token>.<id>`); one
//! command is one message holding all its events (a JSON array), because
//! nats-server 2.9 cannot publish a batch atomically.
//!
//! *Appending* publishes with `Nats-Expected-Last-Subject-Sequence` set to the
//! subject sequence the command was decided on: if anyone appended in between,
//! JetStream refuses and the command is retried on fresh state (see
//! [`crate::commands`]). `Nats-Msg-Id` is the event id, so a publish retried
//! after a lost ack is deduplicated instead of doubled.
//!
//! *Loading* walks the subject with direct gets (`next_by_subj`): about a
//! tenth of a millisecond per message, where creating an ordered consumer per
//! load costs tens of milliseconds. Hot aggregates are cached with their last
//! subject sequence; a stale cache entry cannot corrupt anything because the
//! expected sequence check rejects the append, and the conflict evicts the
//! entry.
//!
//! *A read can be older than the event in hand.* A cached aggregate is as
//! old as this process's last look at it, and on a replicated stream a
//! direct get may be answered by a replica that lags the leader. A service
//! handling an event must decide on state that includes that event:
//! [`JetStreamEventStore::load_at_least`] reloads past the cache, then from
//! the stream leader, and says `Unavailable` (try again) rather than hand
//! back a state older than the event.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, RawMessageErrorKind, Stream};
use async_nats::jetstream::Context;
use bytes::Bytes;
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope, EventStore,
};
use time::format_description::well_known::Rfc3339;

use crate::envelope::{meta, Envelope};
use crate::error::{BusError, BusErrorKind};
use crate::namespace::{valid_aggregate_id, Namespace};

/// How many times a publish whose ack was lost is re-sent (same message id).
const PUBLISH_ATTEMPTS: u32 = 3;

/// Where an aggregate's messages are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Direct gets: any replica answers (fast; may lag the leader).
    AnyReplica,
    /// The stream leader's message-get API (never behind what was acknowledged).
    Leader,
}

/// The state a command is decided on: the aggregate, and where its history ended.
pub struct JetStreamContext<A> {
    pub aggregate_id: String,
    pub aggregate: A,
    /// Stream sequence of the aggregate's last message (0: no message yet).
    pub last_sequence: u64,
    /// Number of events folded into `aggregate`.
    pub version: u64,
    /// Whether the state came from the cache (and so may be stale).
    pub from_cache: bool,
}

impl<A: Aggregate> AggregateContext<A> for JetStreamContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

#[derive(Clone)]
struct Cached<A> {
    aggregate: A,
    last_sequence: u64,
    version: u64,
}

/// Bounded map of hot aggregates. Eviction is coarse (drop an arbitrary
/// eighth when full): correctness never depends on what is cached.
struct Cache<A> {
    entries: HashMap<String, Cached<A>>,
    capacity: usize,
}

impl<A> Cache<A> {
    fn insert(&mut self, id: String, entry: Cached<A>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            let drop: Vec<String> = self
                .entries
                .keys()
                .take((self.capacity / 8).max(1))
                .cloned()
                .collect();
            for k in drop {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(id, entry);
    }
}

/// cqrs-es event store for aggregate `A`, events under subject kind `kind`.
pub struct JetStreamEventStore<A: Aggregate> {
    js: Context,
    stream: Stream,
    namespace: Namespace,
    kind: &'static str,
    cache: Arc<Mutex<Cache<A>>>,
    keys: crate::keys::Keyring,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Clone for JetStreamEventStore<A> {
    fn clone(&self) -> Self {
        Self {
            js: self.js.clone(),
            stream: self.stream.clone(),
            namespace: self.namespace.clone(),
            kind: self.kind,
            cache: self.cache.clone(),
            keys: self.keys.clone(),
            _aggregate: PhantomData,
        }
    }
}

/// The decoded content of one event message.
#[derive(Debug, Clone)]
pub struct StoredEvents<E> {
    pub envelope: Envelope,
    pub stream_sequence: u64,
    pub subject: String,
    pub events: Vec<E>,
}

/// An event message whose owner was erased: its payload is not read (its
/// key is gone; a plaintext one from before keys is not read either).
/// Readers skip it and carry on; [`Tombstone::learner_erased`] marks the
/// `LearnerErased` message itself, on which they drop what they hold of
/// the owner.
#[derive(Debug, Clone)]
pub struct Tombstone {
    pub envelope: Envelope,
    pub stream_sequence: u64,
    pub subject: String,
    pub owner_token: String,
    pub learner_erased: bool,
}

/// What one event message holds for a reader.
#[derive(Debug, Clone)]
pub enum Decoded<E> {
    Events(StoredEvents<E>),
    Erased(Tombstone),
}

impl<E> Decoded<E> {
    /// The message's stream sequence.
    pub fn stream_sequence(&self) -> u64 {
        match self {
            Self::Events(s) => s.stream_sequence,
            Self::Erased(t) => t.stream_sequence,
        }
    }
}

/// Header on a sealed event message (its payload is `nonce ‖ AES-256-GCM`
/// under the owner's key, the event id as associated data). Messages
/// without it are plaintext, as every message was before keys.
pub const SEALED: &str = "Mnemo-Sealed";
/// [`SEALED`]'s one value so far.
pub const SEALED_V1: &str = "aes-256-gcm/v1";
/// The event type of the message an erasure appends (plaintext: only its
/// time; on `<ns>.ev.doc.<token>.erased` and
/// `<ns>.ev.learn.<token>.learner.erased`).
pub const LEARNER_ERASED: &str = "LearnerErased";

/// An event message's payload, opened with its owner's key.
pub enum Opened<'a> {
    Plain {
        envelope: Envelope,
        payload: std::borrow::Cow<'a, [u8]>,
    },
    Erased(Tombstone),
}

/// Opens an event message: its envelope, and its payload opened with the
/// owner's key (a plaintext one from before keys as it is). A message of
/// an erased owner is a [`Tombstone`]; the `LearnerErased` message itself
/// also tells this process's keyring the owner is gone.
pub async fn open_message<'a>(
    keys: &crate::keys::Keyring,
    subject: &str,
    stream_sequence: u64,
    headers: Option<&async_nats::HeaderMap>,
    payload: &'a [u8],
) -> Result<Opened<'a>, BusError> {
    let headers = headers.ok_or_else(|| {
        BusError::new(
            BusErrorKind::Corrupt,
            format!("event message {stream_sequence} has no headers"),
        )
    })?;
    let envelope = Envelope::from_headers(headers)?;
    let token = keys.namespace().owner_token_of(subject).ok_or_else(|| {
        BusError::new(
            BusErrorKind::Corrupt,
            format!("event message {stream_sequence}: '{subject}' names no owner"),
        )
    })?;
    let tombstone = |envelope: Envelope, learner_erased| {
        Opened::Erased(Tombstone {
            envelope,
            stream_sequence,
            subject: subject.to_owned(),
            owner_token: token.to_owned(),
            learner_erased,
        })
    };
    if envelope.event_types.iter().any(|t| t == LEARNER_ERASED) {
        // Only an erasure the keyring confirms (its marker, which only the
        // API and the operator may write) counts; a forged one is corrupt.
        if keys.confirm_erased(token).await? {
            return Ok(tombstone(envelope, true));
        }
        return Err(BusError::new(
            BusErrorKind::Corrupt,
            format!("event message {stream_sequence}: LearnerErased without its erasure marker"),
        ));
    }
    let sealed = headers.get(SEALED).is_some();
    let state = if sealed {
        keys.state_for_sealed(token).await?
    } else {
        keys.state(token).await?
    };
    if matches!(state, crate::keys::KeyState::Erased) {
        return Ok(tombstone(envelope, false));
    }
    if !sealed && stream_sequence >= keys.sealed_from() {
        // Every event since keys is sealed: an unsealed one was not
        // written by mnemo.
        return Err(BusError::new(
            BusErrorKind::Corrupt,
            format!("event message {stream_sequence} is unsealed where every event is sealed"),
        ));
    }
    let payload = match state {
        crate::keys::KeyState::Live(key) if sealed => {
            std::borrow::Cow::Owned(key.open_event(&event_aad(&envelope, subject), payload)?)
        }
        // Sealed with no key is `Unavailable` (state_for_sealed).
        _ => std::borrow::Cow::Borrowed(payload),
    };
    Ok(Opened::Plain { envelope, payload })
}

/// What a sealed payload is bound to: the event id, the subject, and the
/// types and versions the headers name. A payload replayed under another
/// event, subject or type does not open.
pub fn event_aad(envelope: &Envelope, subject: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(128);
    for part in [
        envelope.event_id.as_str(),
        subject,
        &envelope.event_types.join(","),
        &envelope.schema_versions.join(","),
    ] {
        aad.extend_from_slice(part.as_bytes());
        aad.push(0);
    }
    aad
}

/// An event message's headers and sealed payload, as every writer stores
/// them: `plain` (the JSON array) sealed with the owner's `key`.
pub fn seal_message(
    key: &crate::keys::OwnerKey,
    envelope: &Envelope,
    subject: &str,
    plain: &[u8],
) -> Result<(async_nats::HeaderMap, Bytes), BusError> {
    let payload = Bytes::from(key.seal_event(&event_aad(envelope, subject), plain)?);
    let mut headers = envelope.to_headers();
    headers.insert(SEALED, SEALED_V1);
    Ok((headers, payload))
}

/// Decodes an event message: [`open_message`], then the upcasters, and
/// checks it against its headers. A message of an erased owner is a
/// [`Tombstone`].
pub async fn decode_message<E: DomainEvent + crate::upcast::Upcast>(
    keys: &crate::keys::Keyring,
    subject: &str,
    stream_sequence: u64,
    headers: Option<&async_nats::HeaderMap>,
    payload: &[u8],
) -> Result<Decoded<E>, BusError> {
    let (envelope, plain) =
        match open_message(keys, subject, stream_sequence, headers, payload).await? {
            Opened::Plain { envelope, payload } => (envelope, payload),
            Opened::Erased(t) => return Ok(Decoded::Erased(t)),
        };
    // The serde error is left out: it may quote the opened payload, and
    // this message goes to logs and dead letters in the clear.
    let events: Vec<E> = crate::upcast::decode(&envelope, &plain).map_err(|e| {
        BusError::new(
            BusErrorKind::Corrupt,
            format!(
                "cannot decode event message {stream_sequence} ({}): line {}, column {}",
                envelope.event_types.join(","),
                e.line(),
                e.column()
            ),
        )
    })?;
    if events.len() != envelope.event_types.len() {
        return Err(BusError::new(
            BusErrorKind::Corrupt,
            format!(
                "event message {stream_sequence}: payload and headers disagree on the event count"
            ),
        ));
    }
    Ok(Decoded::Events(StoredEvents {
        envelope,
        stream_sequence,
        subject: subject.to_owned(),
        events,
    }))
}

impl<A> JetStreamEventStore<A>
where
    A: Aggregate + Clone,
    A::Event: crate::upcast::Upcast,
{
    /// A store over the namespace's event stream; `cache_capacity` 0 disables caching.
    pub fn new(bus: &crate::Bus, kind: &'static str, cache_capacity: usize) -> Self {
        Self {
            js: bus.jetstream.clone(),
            stream: bus.events.clone(),
            namespace: bus.namespace.clone(),
            kind,
            cache: Arc::new(Mutex::new(Cache {
                entries: HashMap::new(),
                capacity: cache_capacity,
            })),
            keys: bus.keys.clone(),
            _aggregate: PhantomData,
        }
    }

    /// The subject of an aggregate, after checking its id cannot escape it.
    pub fn subject(&self, aggregate_id: &str) -> Result<String, BusError> {
        if !valid_aggregate_id(aggregate_id) {
            return Err(BusError::config(format!(
                "invalid aggregate id '{aggregate_id}'"
            )));
        }
        Ok(self.namespace.aggregate_subject(self.kind, aggregate_id))
    }

    /// Every message of one aggregate, oldest first (direct gets: any
    /// replica may answer).
    pub async fn read_messages(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvents<A::Event>>, BusError> {
        self.read_messages_from(aggregate_id, Read::AnyReplica)
            .await
    }

    /// Every message of one aggregate, oldest first, read as `read` says.
    pub async fn read_messages_from(
        &self,
        aggregate_id: &str,
        read: Read,
    ) -> Result<Vec<StoredEvents<A::Event>>, BusError> {
        let subject = self.subject(aggregate_id)?;
        let unavailable = |e: &dyn std::fmt::Display| {
            BusError::new(
                BusErrorKind::Unavailable,
                format!("cannot read {subject}: {e}"),
            )
        };
        let mut out = Vec::new();
        let mut next = 1;
        loop {
            let (sequence, headers, payload) = match read {
                Read::AnyReplica => match self
                    .stream
                    .direct_get_next_for_subject(subject.as_str(), Some(next))
                    .await
                {
                    Ok(msg) => (msg.sequence, msg.headers, msg.payload),
                    Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(unavailable(&e)),
                },
                Read::Leader => match self
                    .stream
                    .get_first_raw_message_by_subject(subject.as_str(), next)
                    .await
                {
                    Ok(msg) => (msg.sequence, msg.headers, msg.payload),
                    Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(out),
                    Err(e) => return Err(unavailable(&e)),
                },
            };
            next = sequence + 1;
            match decode_message(&self.keys, &subject, sequence, Some(&headers), &payload).await? {
                Decoded::Events(stored) => out.push(stored),
                // An erased owner's aggregate is gone for good.
                Decoded::Erased(t) => return Err(crate::keys::erased(&t.owner_token)),
            }
        }
    }

    /// Loads the aggregate (from cache when hot) with its last stream sequence.
    pub async fn load(&self, aggregate_id: &str) -> Result<JetStreamContext<A>, BusError> {
        if let Some(hit) = self.cached(aggregate_id) {
            return Ok(JetStreamContext {
                aggregate_id: aggregate_id.to_owned(),
                aggregate: hit.aggregate,
                last_sequence: hit.last_sequence,
                version: hit.version,
                from_cache: true,
            });
        }
        self.load_uncached(aggregate_id, Read::AnyReplica).await
    }

    /// Loads the aggregate with at least the message at stream sequence
    /// `sequence` folded in — the state a service must decide on when it
    /// handles that message (an event of this aggregate). The cache and
    /// any replica are tried first; a state older than `sequence` is read
    /// again past the cache, then from the stream leader. Still older (the
    /// message is not there yet, which a leader never says of a message it
    /// delivered): `Unavailable`, so the caller tries again later and
    /// never acts on, or drops the message for, a stale state.
    pub async fn load_at_least(
        &self,
        aggregate_id: &str,
        sequence: u64,
    ) -> Result<JetStreamContext<A>, BusError> {
        let loaded = self.load(aggregate_id).await?;
        if loaded.last_sequence >= sequence {
            return Ok(loaded);
        }
        self.forget(aggregate_id);
        for read in [Read::AnyReplica, Read::Leader] {
            let loaded = self.load_uncached(aggregate_id, read).await?;
            if loaded.last_sequence >= sequence {
                return Ok(loaded);
            }
            tracing::info!(
                aggregate_id,
                ?read,
                at = loaded.last_sequence,
                wanted = sequence,
                "read older than the event in hand; reading again"
            );
        }
        Err(BusError::new(
            BusErrorKind::Unavailable,
            format!("{aggregate_id}: no read reaches stream sequence {sequence} yet"),
        ))
    }

    /// Every message of one aggregate up to at least stream sequence
    /// `sequence` (the event in hand), oldest first: from any replica, else
    /// from the leader, else `Unavailable` (see [`Self::load_at_least`]).
    pub async fn read_messages_at_least(
        &self,
        aggregate_id: &str,
        sequence: u64,
    ) -> Result<Vec<StoredEvents<A::Event>>, BusError> {
        for read in [Read::AnyReplica, Read::Leader] {
            let messages = self.read_messages_from(aggregate_id, read).await?;
            if messages
                .last()
                .is_some_and(|m| m.stream_sequence >= sequence)
            {
                return Ok(messages);
            }
        }
        Err(BusError::new(
            BusErrorKind::Unavailable,
            format!("{aggregate_id}: no read reaches stream sequence {sequence} yet"),
        ))
    }

    /// Folds the aggregate from its messages (read as `read` says) and
    /// caches it.
    async fn load_uncached(
        &self,
        aggregate_id: &str,
        read: Read,
    ) -> Result<JetStreamContext<A>, BusError> {
        let mut aggregate = A::default();
        let mut last_sequence = 0;
        let mut version = 0;
        for stored in self.read_messages_from(aggregate_id, read).await? {
            last_sequence = stored.stream_sequence;
            version = stored.envelope.aggregate_version;
            for event in stored.events {
                aggregate.apply(event);
            }
        }
        if last_sequence > 0 {
            self.remember(aggregate_id, &aggregate, last_sequence, version);
        }
        Ok(JetStreamContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            last_sequence,
            version,
            from_cache: false,
        })
    }

    /// Whether nothing was appended to the aggregate since `context` was
    /// loaded: one direct get of the subject's last message.
    pub async fn is_current(&self, context: &JetStreamContext<A>) -> Result<bool, BusError> {
        let subject = self.subject(&context.aggregate_id)?;
        match self
            .stream
            .direct_get_last_for_subject(subject.as_str())
            .await
        {
            Ok(msg) => Ok(msg.sequence == context.last_sequence),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(context.last_sequence == 0),
            Err(e) => Err(BusError::unavailable(format!("cannot read {subject}"), e)),
        }
    }

    /// Appends the events of one command; returns the stream sequence.
    /// Conflicts come back as `BusErrorKind::Conflict`.
    pub async fn append(
        &self,
        events: &[A::Event],
        context: &JetStreamContext<A>,
        metadata: &HashMap<String, String>,
    ) -> Result<(Envelope, u64), BusError> {
        let subject = self.subject(&context.aggregate_id)?;
        let version = context.version + events.len() as u64;
        let envelope = Envelope::for_commit(
            A::TYPE,
            &context.aggregate_id,
            version,
            events.iter().map(DomainEvent::event_type).collect(),
            events.iter().map(DomainEvent::event_version).collect(),
            metadata,
        );
        let plain = serde_json::to_vec(events).map_err(|e| {
            BusError::with_source(BusErrorKind::Rejected, "cannot encode events", e)
        })?;
        // Sealed with the owner's key (made on their first event): the
        // aggregate id starts with the owner's token.
        let token = context.aggregate_id.split('.').next().unwrap_or_default();
        let key = self.keys.for_writing(token).await?;
        let (headers, payload) = seal_message(&key, &envelope, &subject, &plain)?;
        let span = tracing::debug_span!("append", event_id = %envelope.event_id, aggregate_id = %context.aggregate_id);
        let _enter = span.enter();
        let mut attempt = 0;
        // The same message id each time: JetStream drops a duplicate.
        let mut backoff =
            crate::Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
        loop {
            attempt += 1;
            let message = PublishMessage::build()
                .headers(headers.clone())
                .expected_last_subject_sequence(context.last_sequence)
                .payload(payload.clone());
            let result = match self.js.send_publish(subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => {
                    if ack.duplicate {
                        // This event id was appended before: what we decided now
                        // may not be what was stored, so forget the cached state
                        // and let the next load read it. A retried command is
                        // fine; a *different* command reusing the id is not.
                        self.forget(&context.aggregate_id);
                        let stored = self.stored_envelope(ack.sequence).await?;
                        check_same_command(&stored, &envelope)?;
                        return Ok((stored, ack.sequence));
                    } else {
                        self.remember(
                            &context.aggregate_id,
                            &context.aggregate,
                            ack.sequence,
                            version,
                        );
                    }
                    return Ok((envelope, ack.sequence));
                }
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    self.forget(&context.aggregate_id);
                    return Err(BusError::with_source(
                        BusErrorKind::Conflict,
                        "aggregate changed concurrently",
                        e,
                    ));
                }
                Err(e)
                    if attempt < PUBLISH_ATTEMPTS
                        && matches!(
                            e.kind(),
                            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                        ) =>
                {
                    tracing::warn!(error = %e, attempt, "publish not acknowledged, re-sending with the same message id");
                    if let Some(delay) = backoff.next_delay() {
                        tokio::time::sleep(delay).await;
                    }
                }
                Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    return Err(BusError::with_source(
                        BusErrorKind::Rejected,
                        "event message too large",
                        e,
                    ));
                }
                Err(e) if crate::error::is_stream_full(&e) => {
                    self.forget(&context.aggregate_id);
                    return Err(BusError::with_source(
                        BusErrorKind::Full,
                        "the event log is at its size limit",
                        e,
                    ));
                }
                Err(e) => {
                    self.forget(&context.aggregate_id);
                    return Err(BusError::unavailable(
                        format!("cannot append to {subject}"),
                        e,
                    ));
                }
            }
        }
    }

    /// The envelope of the message at stream `sequence`.
    async fn stored_envelope(&self, sequence: u64) -> Result<Envelope, BusError> {
        let msg = self
            .stream
            .direct_get(sequence)
            .await
            .map_err(|e| BusError::unavailable(format!("cannot read message {sequence}"), e))?;
        Envelope::from_headers(&msg.headers)
    }

    fn cached(&self, id: &str) -> Option<Cached<A>> {
        self.cache.lock().ok()?.entries.get(id).cloned()
    }

    fn remember(&self, id: &str, aggregate: &A, last_sequence: u64, version: u64) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                id.to_owned(),
                Cached {
                    aggregate: aggregate.clone(),
                    last_sequence,
                    version,
                },
            );
        }
    }

    /// Drops a cached aggregate (after a conflict, or to force a reload).
    pub fn forget(&self, id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.entries.remove(id);
        }
    }

    fn envelopes(stored: &StoredEvents<A::Event>, aggregate_id: &str) -> Vec<EventEnvelope<A>> {
        let n = stored.events.len() as u64;
        let first = stored.envelope.aggregate_version.saturating_sub(n) + 1;
        stored
            .events
            .iter()
            .enumerate()
            .map(|(i, event)| EventEnvelope {
                aggregate_id: aggregate_id.to_owned(),
                sequence: (first + i as u64) as usize,
                payload: event.clone(),
                metadata: envelope_metadata(&stored.envelope, stored.stream_sequence),
            })
            .collect()
    }
}

/// The metadata map cqrs-es sees on loaded events.
fn envelope_metadata(env: &Envelope, stream_sequence: u64) -> HashMap<String, String> {
    HashMap::from([
        (meta::EVENT_ID.to_owned(), env.event_id.clone()),
        (
            meta::STREAM_SEQUENCE.to_owned(),
            stream_sequence.to_string(),
        ),
        (meta::CAUSATION_ID.to_owned(), env.causation_id.clone()),
        (meta::CORRELATION_ID.to_owned(), env.correlation_id.clone()),
        (meta::TRACEPARENT.to_owned(), env.traceparent.clone()),
        (
            meta::OCCURRED_AT.to_owned(),
            env.occurred_at.format(&Rfc3339).unwrap_or_default(),
        ),
    ])
}

fn to_aggregate_error<E: std::error::Error>(e: BusError) -> AggregateError<E> {
    match e.kind() {
        BusErrorKind::Conflict => AggregateError::AggregateConflict,
        BusErrorKind::Corrupt => AggregateError::DeserializationError(Box::new(e)),
        BusErrorKind::Unavailable => AggregateError::DatabaseConnectionError(Box::new(e)),
        _ => AggregateError::UnexpectedError(Box::new(e)),
    }
}

impl<A> EventStore<A> for JetStreamEventStore<A>
where
    A: Aggregate + Clone + 'static,
    A::Event: crate::upcast::Upcast,
{
    type AC = JetStreamContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let messages = self
            .read_messages(aggregate_id)
            .await
            .map_err(to_aggregate_error)?;
        Ok(messages
            .iter()
            .flat_map(|m| Self::envelopes(m, aggregate_id))
            .collect())
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        self.load(aggregate_id).await.map_err(to_aggregate_error)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let (envelope, sequence) = self
            .append(&events, &context, &metadata)
            .await
            .map_err(to_aggregate_error)?;
        let stored = StoredEvents {
            envelope,
            stream_sequence: sequence,
            subject: String::new(),
            events,
        };
        Ok(Self::envelopes(&stored, &context.aggregate_id))
    }
}

/// A publish JetStream deduplicated is a retry of the command that stored
/// `stored` only if it targets the same aggregate with the same event types;
/// anything else is a different command that reused a command id, and
/// accepting it would silently lose that command.
fn check_same_command(stored: &Envelope, ours: &Envelope) -> Result<(), BusError> {
    if stored.aggregate_id == ours.aggregate_id && stored.event_types == ours.event_types {
        return Ok(());
    }
    Err(BusError::new(
        BusErrorKind::Rejected,
        format!(
            "command id {} was already used for {} {} ({}); every command needs its own id",
            ours.event_id,
            stored.aggregate_type,
            stored.aggregate_id,
            stored.event_types.join(",")
        ),
    ))
}
