//! The learning read model: cards with their current schedule, reviews,
//! topics with their documents, and study sessions
//! (`projections/learning/`), folded from `<ns>.ev.learn.>`.
//!
//! It is fed beside the document read models by its own live runner
//! ([`crate::runner`] driving [`crate::handler::Learning`]) with its own
//! checkpoint (`<ns>_learning`, decision 014): each batch of events
//! and the checkpoint commit in one transaction (exactly-once effect), as
//! for the documents. The folds are the domain's
//! (`mnemo_domain::learn::learner`), the same ones audit replay runs, so
//! the read model and a rebuild from events agree by construction.
//! Must not: decide anything (the card aggregate already did, and recorded
//! the schedule in the event).
//!
//! # Layout
//! - [`decode`]: a learning message into events (by the subject's kind).
//! - [`store`]: loading and writing the rows a batch touches.
//! - [`queries`]: what the API reads (cards, due cards, reviews, topics).
//! - [`dead_letters`]: retrying the events the runner could not read.

pub mod dead_letters;
pub mod decode;
pub mod queries;
pub mod store;

pub use decode::{decode, DecodedEvent, LearningMessage};

use std::time::Duration;

use mnemo_bus::Namespace;
use tokio_postgres::{Client, GenericClient};

use crate::{batch, Feed, ProjectorError};

/// Dead letters of the learning runner go to `<ns>.dlq.<DLQ_SERVICE>`.
pub const DLQ_SERVICE: &str = "projector-learning";

/// Name of the learning checkpoint: `<ns>_learning`.
pub fn checkpoint_name(ns: &Namespace) -> String {
    Feed::Learning.checkpoint_name(ns)
}

/// Stream sequence the learning read model reflects.
pub async fn checkpoint(
    client: &impl GenericClient,
    ns: &Namespace,
) -> Result<u64, ProjectorError> {
    crate::runner::feed_checkpoint(client, ns, Feed::Learning).await
}

/// Waits until the learning read model has applied `sequence`.
pub async fn wait_for(
    client: &impl GenericClient,
    ns: &Namespace,
    sequence: u64,
    timeout: Duration,
) -> Result<u64, ProjectorError> {
    crate::runner::feed_wait_for(client, ns, Feed::Learning, sequence, timeout).await
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
