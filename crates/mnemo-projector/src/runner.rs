//! The projector's consumer loop.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{AckKind, Message};
use futures::{FutureExt, StreamExt};
use std::collections::HashMap;

use mnemo_bus::envelope::Envelope;
use mnemo_bus::event_store::decode_message;
use mnemo_bus::{Bus, CommandExecutor, ExecuteError, JetStreamEventStore, Namespace, RetryPolicy};
use mnemo_domain::{Document, DocumentCommand, DocumentEvent};
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::{chunks, db, documents, migrations, stage_timings, ProjectorConfig, ProjectorError};

/// Name of the projector's durable consumer (and its checkpoint row).
pub fn consumer_name(ns: &Namespace) -> String {
    ns.consumer("projector")
}

/// Stream sequence the `documents` read model reflects.
pub async fn checkpoint(
    client: &impl GenericClient,
    ns: &Namespace,
) -> Result<u64, ProjectorError> {
    let row = client
        .query_opt(
            "SELECT last_sequence FROM projection_checkpoints WHERE consumer = $1",
            &[&consumer_name(ns)],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64).unwrap_or(0))
}

/// Waits until the read model has applied `sequence`, polling the checkpoint
/// until `timeout`. Returns the checkpoint reached.
pub async fn wait_for(
    client: &impl GenericClient,
    ns: &Namespace,
    sequence: u64,
    timeout: Duration,
) -> Result<u64, ProjectorError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let at = checkpoint(client, ns).await?;
        if at >= sequence || tokio::time::Instant::now() >= deadline {
            return Ok(at);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Prepares the schema; safe to call at every start.
pub async fn prepare(config: &ProjectorConfig) -> Result<Client, ProjectorError> {
    let mut client = db::connect(&config.database_url, &config.namespace).await?;
    migrations::apply(&mut client, &config.namespace).await?;
    Ok(client)
}

/// Runs the projector until `shutdown` resolves; finishes the batch in hand.
pub async fn run(
    bus: Bus,
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let mut client = prepare(&config).await?;
    let ns = &config.namespace;
    let executor = CommandExecutor::new(
        JetStreamEventStore::<Document>::new(&bus, "doc", 10_000),
        (),
        RetryPolicy::default(),
    );
    let name = consumer_name(ns);
    let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = bus
        .events
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                description: Some("mnemo projector: document events into PostgreSQL".into()),
                filter_subject: format!("{}.>", ns.events_of("doc")),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                // One batch in flight at a time keeps the stream order even
                // when several projector copies share this consumer.
                max_ack_pending: config.batch_size as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ProjectorError::Consumer(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| ProjectorError::Consumer(e.to_string()))?;
    tracing::info!(consumer = %name, "projector running");
    tokio::pin!(shutdown);
    loop {
        let first = tokio::select! {
            _ = &mut shutdown => break,
            next = messages.next() => next,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < config.batch_size {
            match messages.next().now_or_never() {
                Some(Some(m)) => batch.push(m),
                _ => break,
            }
        }
        let batch: Vec<Message> = batch
            .into_iter()
            .filter_map(|m| match m {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(error = %e, "consumer error");
                    None
                }
            })
            .collect();
        if batch.is_empty() {
            continue;
        }
        let applied = match apply_batch(&mut client, ns, &batch).await {
            Ok(candidates) => index_ready(&client, &executor, candidates).await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(()) => {
                for m in &batch {
                    if let Err(e) = m.ack().await {
                        tracing::warn!(error = %e, "ack failed; the event will be redelivered and skipped");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "projection batch failed; will retry");
                for m in &batch {
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
                if client.is_closed() {
                    client = reconnect(&config).await;
                }
            }
        }
    }
    tracing::info!("projector stopped");
    Ok(())
}

async fn reconnect(config: &ProjectorConfig) -> Client {
    let mut delay = Duration::from_millis(100);
    loop {
        match db::connect(&config.database_url, &config.namespace).await {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL unreachable, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Documents whose run may have become fully embedded in a batch, with the
/// envelope of the message that made it so (for causation/correlation).
type Candidates = HashMap<Uuid, (String, Envelope)>;

/// Applies a batch and the checkpoint in one transaction. Returns the
/// documents to check for indexing — also for messages already applied
/// before (a redelivery re-runs that check, never the writes).
async fn apply_batch(
    client: &mut Client,
    ns: &Namespace,
    batch: &[Message],
) -> Result<Candidates, ProjectorError> {
    let name = consumer_name(ns);
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO projection_checkpoints (consumer, last_sequence) VALUES ($1, 0)
         ON CONFLICT (consumer) DO NOTHING",
        &[&name],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT last_sequence FROM projection_checkpoints WHERE consumer = $1 FOR UPDATE",
            &[&name],
        )
        .await?;
    let mut at = row.get::<_, i64>(0) as u64;
    let prefix = format!("{}.", ns.events_of("doc"));
    let mut candidates = Candidates::new();
    for m in batch {
        let Ok(info) = m.info() else { continue };
        let seq = info.stream_sequence;
        let owner_token = m
            .subject
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.split('.').next())
            .unwrap_or_default()
            .to_owned();
        let stored = match decode_message::<DocumentEvent>(
            &m.subject,
            seq,
            m.headers.as_ref(),
            &m.payload,
        ) {
            Ok(stored) => stored,
            // An undecodable message can never succeed: record and move on
            // rather than stall every later event.
            Err(e) => {
                tracing::error!(error = %e, seq, subject = %m.subject, "skipping undecodable event");
                at = at.max(seq);
                continue;
            }
        };
        let document_id = documents::document_id_of(&stored.envelope);
        if stored.events.iter().any(|e| {
            matches!(
                e,
                DocumentEvent::ChunksEmbedded { .. } | DocumentEvent::DocumentChunked { .. }
            )
        }) {
            candidates.insert(document_id, (owner_token.clone(), stored.envelope.clone()));
        }
        if seq <= at {
            continue; // applied before, ack was lost
        }
        let span = tracing::debug_span!("project", event_id = %stored.envelope.event_id, document = %stored.envelope.aggregate_id, seq);
        let _e = span.enter();
        let when = stored.envelope.occurred_at;
        for event in &stored.events {
            let stage = documents::apply(&tx, &owner_token, &stored.envelope, seq, event).await?;
            chunks::apply(&tx, document_id, &owner_token, when, event).await?;
            stage_timings::record(&tx, document_id, &owner_token, event.run(), stage, when).await?;
        }
        at = seq;
    }
    tx.execute(
        "UPDATE projection_checkpoints SET last_sequence = $2, updated_at = now() WHERE consumer = $1",
        &[&name, &(at as i64)],
    )
    .await?;
    tx.commit().await?;
    Ok(candidates)
}

/// Declares indexed every candidate whose chunks are all stored with vectors.
async fn index_ready(
    client: &Client,
    executor: &CommandExecutor<Document>,
    candidates: Candidates,
) -> Result<(), ProjectorError> {
    if candidates.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = candidates.keys().copied().collect();
    for (document_id, owner_token, run) in chunks::ready_to_index(client, &ids).await? {
        let Some((_, cause)) = candidates.get(&document_id) else {
            continue;
        };
        let metadata = cause.caused_metadata();
        let aggregate = format!("{owner_token}.{document_id}");
        match executor
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
