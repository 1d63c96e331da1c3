//! A new watcher's catch-up: the scope's messages up to the hub position it
//! subscribed at, read with direct gets (no consumer per watcher).
//!
//! The scope's subjects come from one stream-info call with a subject
//! filter (the document's own subject, or `<ns>.ev.doc.<owner token>.>`),
//! which also says how many messages each holds. Each subject is then walked
//! with `next_by_subj` direct gets, a few subjects at a time; for a batch the
//! walk stops after a subject's first message unless its `DocumentUploaded`
//! names the batch. Messages above the position are not returned (the live
//! queue has them) but are remembered in [`History::newest`], so that a
//! watcher does not call a scope finished while it knows more is coming.
//!
//! The per-subject counts also guard against a lagging replica: with
//! `allow_direct` on a replicated stream any replica may answer a direct
//! get, so a walk that ends before it has seen as many messages as the
//! leader counted is retried instead of taken as the end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::DirectGetErrorKind;
use futures::{StreamExt, TryStreamExt};
use mnemo_bus::{Bus, BusError, BusErrorKind};
use mnemo_domain::document::aggregate_id;
use mnemo_domain::progress_set::Scope;
use mnemo_domain::{DocumentId, OwnerId};

use super::pump::{decode, split_subject};
use super::HubEvent;

/// Subjects walked at once.
const PARALLEL_WALKS: usize = 8;
/// Retries of a walk that ended short (a replica behind the leader).
const SHORT_WALK_RETRIES: u32 = 50;

/// What a watcher folds before it turns to its live queue.
#[derive(Debug, Default)]
pub struct History {
    /// The scope's messages up to the position, oldest first.
    pub messages: Vec<Arc<HubEvent>>,
    /// Documents found in scope (including ones whose events are all live).
    pub documents: usize,
    /// Highest sequence of a message in scope seen, above the position or not.
    pub newest: u64,
}

/// All of an owner's history as the hub keeps it (for a watcher of all
/// the owner's documents; see [`super::ProgressHub::remember`]).
pub fn kept(messages: Vec<Arc<HubEvent>>) -> History {
    let documents = messages
        .iter()
        .map(|m| m.document)
        .collect::<HashSet<_>>()
        .len();
    History {
        newest: messages.last().map_or(0, |m| m.sequence),
        messages,
        documents,
    }
}

/// Reads `owner`'s messages in `scope` up to stream sequence `position`.
pub async fn read(
    bus: &Bus,
    owner: &OwnerId,
    scope: &Scope,
    position: u64,
) -> Result<History, BusError> {
    let filter = match scope {
        Scope::Document(id) => bus
            .namespace
            .aggregate_subject("doc", &aggregate_id(owner, id)),
        Scope::Batch(_) | Scope::All => {
            format!("{}.{}.>", bus.namespace.events_of("doc"), owner.token())
        }
    };
    let subjects: Vec<(String, usize)> = bus
        .events
        .info_with_subjects(&filter)
        .await
        .map_err(|e| BusError::unavailable("cannot list the watched subjects", e))?
        .try_collect()
        .await
        .map_err(|e| BusError::unavailable("cannot list the watched subjects", e))?;
    let prefix = format!("{}.", bus.namespace.events_of("doc"));
    let walks = futures::stream::iter(subjects.into_iter().filter_map(|(subject, count)| {
        let (_, document) = split_subject(&prefix, &subject)?;
        Some(walk(bus, subject, count, document, scope, position))
    }))
    .buffer_unordered(PARALLEL_WALKS)
    .try_collect::<Vec<_>>()
    .await?;
    let mut history = History::default();
    for walk in walks.into_iter().flatten() {
        history.documents += 1;
        history.newest = history.newest.max(walk.newest);
        history.messages.extend(walk.messages);
    }
    history.messages.sort_unstable_by_key(|m| m.sequence);
    Ok(history)
}

struct Walk {
    messages: Vec<Arc<HubEvent>>,
    newest: u64,
}

/// One subject's messages up to `position`; None when the document is not
/// in scope.
async fn walk(
    bus: &Bus,
    subject: String,
    count: usize,
    document: DocumentId,
    scope: &Scope,
    position: u64,
) -> Result<Option<Walk>, BusError> {
    let mut out = Walk {
        messages: Vec::new(),
        newest: 0,
    };
    let (mut next, mut read, mut short) = (1, 0, 0);
    let mut admitted = false;
    while read < count {
        let msg = match bus
            .events
            .direct_get_next_for_subject(subject.as_str(), Some(next))
            .await
        {
            Ok(msg) => msg,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                short += 1;
                if short > SHORT_WALK_RETRIES {
                    return Err(BusError::new(
                        BusErrorKind::Unavailable,
                        format!("{subject}: read {read} of {count} messages; the stream replica is behind"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => return Err(BusError::unavailable(format!("cannot read {subject}"), e)),
        };
        read += 1;
        next = msg.sequence + 1;
        let Some(event) = decode(
            &bus.keys,
            &subject,
            msg.sequence,
            Some(&msg.headers),
            &msg.payload,
            document,
        )
        .await
        else {
            continue;
        };
        if !admitted {
            // The first readable message decides membership, as in the fold.
            match event.events.first() {
                Some(first) if scope.admits(&document, first) => admitted = true,
                _ => return Ok(None),
            }
        }
        out.newest = msg.sequence;
        if msg.sequence > position {
            break; // the rest is in the live queue
        }
        out.messages.push(Arc::new(event));
    }
    Ok(admitted.then_some(out))
}
