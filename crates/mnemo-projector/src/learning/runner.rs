//! The live learning projector: reads `<ns>.ev.learn.>` in stream order
//! with an ordered consumer from its own checkpoint (`<ns>_learning`) and
//! applies each batch together with the checkpoint in one transaction.
//!
//! Like the document projector ([`crate::runner`]): nothing is
//! acknowledged, the checkpoint *is* the position, and after any failure
//! the read starts again from it, so no event is skipped or applied twice.
//! Copies take an advisory lock on the checkpoint's name (one active, the
//! others standbys). An undecodable event is dead-lettered
//! (`<ns>.dlq.projector-learning`) and stepped over.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use mnemo_bus::{Bus, Namespace};
use tokio_postgres::{Client, GenericClient};

use super::{decode, store, LearningMessage};
use crate::{batch, runner, Feed, ProjectorConfig, ProjectorError};

/// Dead letters of this runner go to `<ns>.dlq.<DLQ_SERVICE>`.
pub const DLQ_SERVICE: &str = "projector-learning";

/// Name of the learning checkpoint: `<ns>_learning`.
pub fn checkpoint_name(ns: &Namespace) -> String {
    ns.consumer("learning")
}

/// Stream sequence the learning read model reflects (every learning event
/// at or below it is applied).
pub async fn checkpoint(
    client: &impl GenericClient,
    ns: &Namespace,
) -> Result<u64, ProjectorError> {
    batch::checkpoint(client, &checkpoint_name(ns)).await
}

/// Waits until the learning read model has applied `sequence` (polling the
/// checkpoint, bounded by `timeout`); returns the checkpoint reached.
pub async fn wait_for(
    client: &impl GenericClient,
    ns: &Namespace,
    sequence: u64,
    timeout: Duration,
) -> Result<u64, ProjectorError> {
    batch::wait_for(client, &checkpoint_name(ns), sequence, timeout).await
}

/// Applies `messages` above the checkpoint and moves it to `through`, in
/// one transaction. Returns the events folded.
pub async fn apply(
    client: &mut Client,
    key: &str,
    messages: &[LearningMessage],
    through: u64,
) -> Result<u64, ProjectorError> {
    let tx = client.transaction().await?;
    let at = batch::lock_checkpoint(&tx, key).await?;
    let fresh: Vec<&LearningMessage> = messages.iter().filter(|m| m.sequence > at).collect();
    let events = if fresh.is_empty() {
        0
    } else {
        store::fold_and_flush(&tx, &fresh).await?
    };
    if through > at {
        batch::set_checkpoint(&tx, key, through).await?;
    }
    tx.commit().await?;
    Ok(events)
}

/// Runs the learning projector until `shutdown` resolves.
pub async fn run(
    bus: Bus,
    config: ProjectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProjectorError> {
    let first = runner::prepare(&config).await?;
    tokio::pin!(shutdown);
    let mut client = Some(first);
    let mut delay = Duration::from_millis(100);
    loop {
        let mut c = match client.take() {
            Some(c) if !c.is_closed() => c,
            _ => match runner::prepare(&config).await {
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
        match follow(&bus, &config, &mut c, &mut shutdown).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, ?delay, "learning projector interrupted; resuming from the checkpoint");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                client = Some(c);
            }
        }
    }
    tracing::info!("learning projector stopped");
    Ok(())
}

/// One read from the checkpoint until shutdown (Ok) or a failure (Err).
async fn follow(
    bus: &Bus,
    config: &ProjectorConfig,
    client: &mut Client,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(), ProjectorError> {
    let ns = &config.namespace;
    let key = checkpoint_name(ns);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key];
    let lock = client.execute("SELECT pg_advisory_lock(hashtext($1))", &params);
    tokio::select! {
        _ = &mut *shutdown => return Ok(()),
        r = lock => { r?; }
    }
    let from = checkpoint(&*client, ns).await? + 1;
    let mut messages = batch::read_from(bus, Feed::Learning, from).await?;
    tracing::info!(checkpoint = %key, from, "learning projector running");
    loop {
        let first = tokio::select! {
            _ = &mut *shutdown => return Ok(()),
            next = messages.next() => next,
        };
        let Some(first) = first else {
            return Err(ProjectorError::Consumer("the event stream ended".into()));
        };
        let raw = crate::batch::fill(&mut messages, first, config.batch_size).await;
        let mut decoded = Vec::with_capacity(raw.len());
        let mut through = 0;
        for m in raw {
            let m = m.map_err(|e| ProjectorError::Consumer(e.to_string()))?;
            let seq = m
                .info()
                .map_err(|e| ProjectorError::Consumer(e.to_string()))?
                .stream_sequence;
            through = seq;
            match decode(ns, &m.subject, seq, m.headers.as_ref(), &m.payload) {
                Ok(d) => decoded.push(d),
                Err(e) => {
                    tracing::error!(error = %e, seq, subject = %m.subject, "dead-lettering an undecodable learning event");
                    let origin = mnemo_bus::dlq::Origin {
                        subject: &m.subject,
                        stream_sequence: seq,
                        deliveries: 1,
                        headers: m.headers.as_ref(),
                        payload: &m.payload,
                    };
                    mnemo_bus::dlq::publish(
                        &bus.jetstream,
                        ns,
                        DLQ_SERVICE,
                        &origin,
                        &e.to_string(),
                    )
                    .await;
                }
            }
        }
        apply(client, &key, &decoded, through).await?;
    }
}
