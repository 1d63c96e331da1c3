//! Executing commands: load, decide, append — retried on conflict.
//!
//! This is cqrs-es's `CqrsFramework::execute_with_metadata` plus what mnemo
//! needs around it: a bounded retry when another writer appended first (the
//! aggregate is reloaded, never overwritten), and the appended message's
//! stream sequence and event id in the result, so the API can hand clients a
//! resume point for progress and read-your-writes on lists.

use std::collections::HashMap;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use crate::envelope::Envelope;
use crate::error::{BusError, BusErrorKind};
use crate::event_store::JetStreamEventStore;

/// How conflicts are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles after each, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(100),
        }
    }
}

/// Why a command did not append.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E: std::error::Error> {
    /// The aggregate refused the command (the domain's error).
    #[error(transparent)]
    Refused(E),
    /// Still conflicting after every attempt (gRPC `Aborted`).
    #[error("gave up after {attempts} attempts: the aggregate kept changing concurrently")]
    Conflict { attempts: u32 },
    /// The bus failed (unavailable, corrupt history, ...).
    #[error(transparent)]
    Bus(BusError),
}

/// What a command appended.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The aggregate after the command.
    pub aggregate: A,
    /// The events appended (empty when the command was a no-op, e.g. a redelivery).
    pub events: Vec<A::Event>,
    /// Envelope and stream sequence of the appended message, if any.
    pub appended: Option<(Envelope, u64)>,
    /// Stream sequence of the aggregate's last message after the command.
    pub last_sequence: u64,
}

/// Executes commands of aggregate `A` against a [`JetStreamEventStore`].
pub struct CommandExecutor<A: Aggregate> {
    store: JetStreamEventStore<A>,
    services: A::Services,
    retry: RetryPolicy,
}

impl<A> CommandExecutor<A>
where
    A: Aggregate + Clone + 'static,
    A::Event: crate::upcast::Upcast,
    A::Command: Clone,
{
    pub fn new(store: JetStreamEventStore<A>, services: A::Services, retry: RetryPolicy) -> Self {
        Self {
            store,
            services,
            retry,
        }
    }

    pub fn store(&self) -> &JetStreamEventStore<A> {
        &self.store
    }

    /// Executes `command` on `aggregate_id`; `metadata` feeds the envelope
    /// (see [`crate::envelope::meta`]).
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<A>, ExecuteError<A::Error>> {
        // Jittered: writers that conflicted on the same aggregate must not
        // reload and retry in lockstep. Half the initial delay plus jitter
        // of up to one delay: the first retry waits 0.5–1 × initial_backoff.
        let mut backoff =
            crate::Backoff::new(self.retry.initial_backoff / 2, self.retry.max_backoff / 2)
                .with_jitter();
        let mut attempt = 0;
        loop {
            let mut context = self
                .store
                .load(aggregate_id)
                .await
                .map_err(ExecuteError::Bus)?;
            let sink = EventSink::<A>::default();
            // `handle` mutates a copy: the context keeps the state it was
            // decided on until the append has succeeded.
            let mut decided = context.aggregate.clone();
            let outcome = decided.handle(command.clone(), &self.services, &sink).await;
            let events = sink.collect().await;
            // A refusal or a no-op decided on cached state is only as good
            // as the cache: an append protects itself (expected sequence),
            // a refusal must check that nothing happened meanwhile. The
            // reload is uncached, so this happens at most once per command.
            if (outcome.is_err() || events.is_empty())
                && context.from_cache
                && !self
                    .store
                    .is_current(&context)
                    .await
                    .map_err(ExecuteError::Bus)?
            {
                self.store.forget(aggregate_id);
                continue;
            }
            outcome.map_err(ExecuteError::Refused)?;
            if events.is_empty() {
                return Ok(Executed {
                    aggregate: decided,
                    events,
                    appended: None,
                    last_sequence: context.last_sequence,
                });
            }
            context.aggregate = decided;
            match self.store.append(&events, &context, metadata).await {
                Ok((envelope, sequence)) => {
                    return Ok(Executed {
                        aggregate: context.aggregate,
                        events,
                        appended: Some((envelope, sequence)),
                        last_sequence: sequence,
                    })
                }
                Err(e) if e.kind() == BusErrorKind::Conflict => {
                    attempt += 1;
                    tracing::debug!(aggregate_id, attempt, "conflict, reloading");
                    if attempt >= self.retry.max_attempts {
                        return Err(ExecuteError::Conflict { attempts: attempt });
                    }
                    if let Some(delay) = backoff.next_delay() {
                        tokio::time::sleep(delay).await;
                    }
                }
                Err(e) => return Err(ExecuteError::Bus(e)),
            }
        }
    }
}
