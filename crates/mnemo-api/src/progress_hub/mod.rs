//! The progress hub: one JetStream consumer per API process, fanned out to
//! every watcher.
//!
//! [`pump`] reads `<ns>.ev.doc.>` from the live point with one ordered
//! consumer and hands each event message, decoded once, to the hub. The hub
//! routes it by the owner token in its subject — a watcher only ever
//! receives events under its own owner's token — and, for document
//! watchers, by document, into each watcher's bounded queue.
//!
//! A new watcher first [`subscribe`](ProgressHub::subscribe)s, which tells it
//! the hub's *position*: every message above it will be queued for it, none
//! at or below it. It then reads the history up to that position itself
//! ([`history`]) and drains its queue: no gap and no duplicate, because
//! registering and fanning out happen under one lock.
//!
//! A watcher whose queue is full is dropped from the hub (it is told it
//! *lagged* and should resume from its last sequence), so a slow client
//! never stalls the pump or anyone else.
//!
//! The hub also keeps the history of owners who hold a watcher of all
//! their documents, once one such watcher has read it ([`ProgressHub::remember`]),
//! and appends what the pump fans out to them: the next following watcher of
//! that owner takes it from memory ([`Subscription::cached`]) instead of
//! reading the stream again. When many watchers arrive at once (clients
//! reconnecting after a restart, `mnemo-bench load`), each owner's history
//! is read from NATS about once, not once per watcher. The cache is dropped
//! with the owner's last watcher, and bounded: [`CACHED_PER_OWNER`]
//! messages per owner, [`CACHED_IN_ALL`] in all.

pub mod history;
pub mod pump;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mnemo_domain::{DocumentEvent, DocumentId};
use tokio::sync::mpsc;

/// One event message as watchers receive it (events slimmed: see
/// `mnemo_domain::progress::slim`).
#[derive(Debug, Clone, PartialEq)]
pub struct HubEvent {
    pub sequence: u64,
    pub document: DocumentId,
    pub events: Vec<DocumentEvent>,
}

/// Which of an owner's events a watcher wants from the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One document's.
    Document(DocumentId),
    /// All of them (batch and all-documents watchers fold and filter).
    Owner,
}

/// Why a watcher cannot subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    #[error("progress streams are not started yet")]
    NotStarted,
    #[error("the API is stopping")]
    Stopped,
    #[error("{0} progress streams are already open for this owner: close one first")]
    TooMany(usize),
}

/// Why a subscription's queue closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The watcher fell more than a queue behind and was dropped.
    Lagged,
    /// The hub stopped (the API is shutting down).
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotStarted,
    /// Every message up to this stream sequence has been fanned out.
    Live(u64),
    Stopped,
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<HubEvent>>,
    lagged: Arc<AtomicBool>,
}

impl Subscriber {
    /// Queues `event`; false when the subscriber is to be dropped.
    fn offer(&self, event: &Arc<HubEvent>) -> bool {
        match self.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Messages of one owner's history the hub keeps at most.
pub const CACHED_PER_OWNER: usize = 4_096;
/// Messages of all owners' histories the hub keeps at most.
pub const CACHED_IN_ALL: usize = 131_072;

#[derive(Default)]
struct OwnerRoutes {
    owner: Vec<Subscriber>,
    documents: HashMap<DocumentId, Vec<Subscriber>>,
    /// Sequence of the last message fanned out for this owner while it had
    /// watchers.
    last: u64,
    /// The owner's whole history through the hub's position, when kept.
    history: Option<Vec<Arc<HubEvent>>>,
}

impl OwnerRoutes {
    fn is_empty(&self) -> bool {
        self.owner.is_empty() && self.documents.is_empty()
    }
}

struct Registry {
    state: State,
    next_id: u64,
    /// By owner token.
    owners: HashMap<String, OwnerRoutes>,
    /// Messages kept in all owners' histories.
    cached: usize,
}

impl Registry {
    /// Forgets `owner_token`'s routes (and kept history) once it has no watcher.
    fn drop_if_unwatched(&mut self, owner_token: &str) {
        if self
            .owners
            .get(owner_token)
            .is_some_and(OwnerRoutes::is_empty)
        {
            if let Some(routes) = self.owners.remove(owner_token) {
                self.cached -= routes.history.map_or(0, |h| h.len());
            }
        }
    }
}

struct Inner {
    registry: Mutex<Registry>,
    queue: usize,
    /// Watchers one owner may have at once.
    max_per_owner: usize,
}

/// The fan-out point shared by every Watch call of one API process.
#[derive(Clone)]
pub struct ProgressHub {
    inner: Arc<Inner>,
}

impl ProgressHub {
    /// A hub whose watchers may each fall `queue` messages behind, with no
    /// cap on watchers per owner.
    pub fn new(queue: usize) -> Self {
        Self::with_limit(queue, usize::MAX)
    }

    /// A hub whose watchers may each fall `queue` messages behind, and
    /// where one owner may have at most `max_per_owner` watchers.
    pub fn with_limit(queue: usize, max_per_owner: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Mutex::new(Registry {
                    state: State::NotStarted,
                    next_id: 0,
                    owners: HashMap::new(),
                    cached: 0,
                }),
                queue: queue.max(1),
                max_per_owner: max_per_owner.max(1),
            }),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // Nothing under the lock can panic half-way through an update that
        // matters; a poisoned lock still holds a usable registry.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a watcher of `owner_token`'s events; with `kept`, the
    /// subscription carries the owner's history when the hub keeps it
    /// (for a [`Route::Owner`] watcher).
    pub fn subscribe(
        &self,
        owner_token: &str,
        route: Route,
        kept: bool,
    ) -> Result<Subscription, HubError> {
        let mut reg = self.registry();
        let position = match reg.state {
            State::NotStarted => return Err(HubError::NotStarted),
            State::Stopped => return Err(HubError::Stopped),
            State::Live(p) => p,
        };
        let held = reg.owners.get(owner_token).map_or(0, |r| {
            r.owner.len() + r.documents.values().map(Vec::len).sum::<usize>()
        });
        if held >= self.inner.max_per_owner {
            return Err(HubError::TooMany(self.inner.max_per_owner));
        }
        reg.next_id += 1;
        let id = reg.next_id;
        let (tx, rx) = mpsc::channel(self.inner.queue);
        let lagged = Arc::new(AtomicBool::new(false));
        let sub = Subscriber {
            id,
            tx,
            lagged: lagged.clone(),
        };
        let routes = reg.owners.entry(owner_token.to_owned()).or_default();
        let cached = match route {
            Route::Owner => {
                routes.owner.push(sub);
                if kept {
                    routes.history.clone()
                } else {
                    None
                }
            }
            Route::Document(d) => {
                routes.documents.entry(d).or_default().push(sub);
                None
            }
        };
        metrics::gauge!("mnemo_progress_watchers").increment(1.0);
        Ok(Subscription {
            position,
            cached,
            rx,
            lagged,
            hub: self.clone(),
            owner_token: owner_token.to_owned(),
            route,
            id,
        })
    }

    /// Offers `history`, the whole of the subscriber's owner's history up to
    /// its position, read from the stream: kept when nothing of that owner
    /// has been fanned out since (else it is already out of date) and it
    /// fits the bounds. True when kept.
    pub fn remember(&self, sub: &Subscription, history: &[Arc<HubEvent>]) -> bool {
        let mut reg = self.registry();
        let room = CACHED_IN_ALL.saturating_sub(reg.cached);
        let Some(routes) = reg.owners.get_mut(&sub.owner_token) else {
            return false;
        };
        // Still registered: then the owner's routes (and `last`) have
        // lasted since its position. A reader dropped as lagged may have
        // taken them with it, and a newer watcher started them afresh.
        let registered = routes.owner.iter().any(|s| s.id == sub.id);
        if !registered
            || routes.history.is_some()
            || routes.last > sub.position
            || history.len() > CACHED_PER_OWNER.min(room)
        {
            return false;
        }
        routes.history = Some(history.to_vec());
        reg.cached += history.len();
        true
    }

    /// Messages kept in owners' histories now.
    pub fn cached(&self) -> usize {
        self.registry().cached
    }

    /// The pump starts at `position`: everything up to it is history.
    pub(crate) fn go_live(&self, position: u64) {
        let mut reg = self.registry();
        if reg.state == State::NotStarted {
            reg.state = State::Live(position);
        }
    }

    /// The stream sequence fanned out so far (None: not live).
    pub fn position(&self) -> Option<u64> {
        match self.registry().state {
            State::Live(p) => Some(p),
            _ => None,
        }
    }

    /// Hands one message to the watchers of its owner. A message for nobody
    /// (`event` None: undecodable, or not a document subject) still moves the
    /// position, so that watchers never wait for it.
    pub(crate) fn publish(&self, sequence: u64, owner_token: &str, event: Option<HubEvent>) {
        let mut reg = self.registry();
        match reg.state {
            State::Live(p) if sequence > p => reg.state = State::Live(sequence),
            _ => return,
        }
        let Some(event) = event else { return };
        let Some(routes) = reg.owners.get_mut(owner_token) else {
            return;
        };
        let event = Arc::new(event);
        routes.last = sequence;
        routes.owner.retain(|s| s.offer(&event));
        if let Some(subs) = routes.documents.get_mut(&event.document) {
            subs.retain(|s| s.offer(&event));
            if subs.is_empty() {
                routes.documents.remove(&event.document);
            }
        }
        // A kept history grows with the owner's messages, within bounds.
        let mut cached = reg.cached;
        if let Some(routes) = reg.owners.get_mut(owner_token) {
            if let Some(history) = &mut routes.history {
                if history.len() < CACHED_PER_OWNER && cached < CACHED_IN_ALL {
                    history.push(event);
                    cached += 1;
                } else {
                    cached -= history.len();
                    routes.history = None;
                }
            }
        }
        reg.cached = cached;
        reg.drop_if_unwatched(owner_token);
    }

    /// Closes every subscription (their watchers end with "resume from …")
    /// and refuses new ones.
    pub fn stop(&self) {
        let mut reg = self.registry();
        reg.state = State::Stopped;
        reg.owners.clear();
        reg.cached = 0;
    }

    /// Watchers currently registered.
    pub fn watchers(&self) -> usize {
        self.registry()
            .owners
            .values()
            .map(|r| r.owner.len() + r.documents.values().map(Vec::len).sum::<usize>())
            .sum()
    }

    fn unsubscribe(&self, owner_token: &str, route: Route, id: u64) {
        let mut reg = self.registry();
        let Some(routes) = reg.owners.get_mut(owner_token) else {
            return;
        };
        match route {
            Route::Owner => routes.owner.retain(|s| s.id != id),
            Route::Document(d) => {
                if let Some(subs) = routes.documents.get_mut(&d) {
                    subs.retain(|s| s.id != id);
                    if subs.is_empty() {
                        routes.documents.remove(&d);
                    }
                }
            }
        }
        reg.drop_if_unwatched(owner_token);
    }
}

/// One watcher's place in the hub; leaves it when dropped.
pub struct Subscription {
    /// Every message above this sequence will be queued here; none at or below.
    pub position: u64,
    /// For a watcher of all the owner's documents: the owner's whole
    /// history up to `position`, when the hub keeps it.
    pub cached: Option<Vec<Arc<HubEvent>>>,
    rx: mpsc::Receiver<Arc<HubEvent>>,
    lagged: Arc<AtomicBool>,
    hub: ProgressHub,
    owner_token: String,
    route: Route,
    id: u64,
}

impl Subscription {
    /// The next message, or why there will be none.
    pub async fn recv(&mut self) -> Result<Arc<HubEvent>, Closed> {
        match self.rx.recv().await {
            Some(e) => Ok(e),
            None if self.lagged.load(Ordering::Acquire) => Err(Closed::Lagged),
            None => Err(Closed::Stopped),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("mnemo_progress_watchers").decrement(1.0);
        self.hub.unsubscribe(&self.owner_token, self.route, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sequence: u64, document: DocumentId) -> Option<HubEvent> {
        Some(HubEvent {
            sequence,
            document,
            events: Vec::new(),
        })
    }

    #[tokio::test]
    async fn an_owner_may_hold_only_so_many_watchers_and_others_are_unaffected() {
        let hub = ProgressHub::with_limit(8, 2);
        hub.go_live(1);
        let first = hub.subscribe("a", Route::Owner, false).unwrap();
        let _second = hub
            .subscribe("a", Route::Document(DocumentId::new()), false)
            .unwrap();
        assert_eq!(
            hub.subscribe("a", Route::Owner, false).err(),
            Some(HubError::TooMany(2))
        );
        assert!(
            hub.subscribe("b", Route::Owner, false).is_ok(),
            "another owner is unaffected"
        );
        drop(first);
        assert!(
            hub.subscribe("a", Route::Owner, false).is_ok(),
            "a closed stream frees its place"
        );
    }

    #[tokio::test]
    async fn watchers_get_what_follows_their_position_and_only_their_owners() {
        let hub = ProgressHub::new(8);
        assert_eq!(
            hub.subscribe("a", Route::Owner, false).err(),
            Some(HubError::NotStarted)
        );
        hub.go_live(10);
        let (d1, d2) = (DocumentId::new(), DocumentId::new());
        let mut alice = hub.subscribe("a", Route::Owner, false).unwrap();
        let mut one_doc = hub.subscribe("a", Route::Document(d1), false).unwrap();
        let mut bob = hub.subscribe("b", Route::Owner, false).unwrap();
        assert_eq!(alice.position, 10);
        hub.publish(10, "a", event(10, d1)); // at the position: history, not live
        hub.publish(11, "a", event(11, d1));
        hub.publish(12, "a", event(12, d2));
        hub.publish(13, "b", event(13, d1));
        hub.publish(14, "x", None);
        let late = hub.subscribe("a", Route::Owner, false).unwrap();
        assert_eq!(late.position, 14);
        assert_eq!(alice.recv().await.unwrap().sequence, 11);
        assert_eq!(alice.recv().await.unwrap().sequence, 12);
        assert_eq!(one_doc.recv().await.unwrap().sequence, 11);
        assert_eq!(bob.recv().await.unwrap().sequence, 13);
        hub.stop();
        assert_eq!(alice.recv().await.err(), Some(Closed::Stopped));
        assert_eq!(one_doc.recv().await.err(), Some(Closed::Stopped));
        assert_eq!(bob.recv().await.err(), Some(Closed::Stopped));
        assert_eq!(
            hub.subscribe("a", Route::Owner, false).err(),
            Some(HubError::Stopped)
        );
    }

    fn arc(sequence: u64, document: DocumentId) -> Arc<HubEvent> {
        Arc::new(event(sequence, document).unwrap())
    }

    fn sequences(kept: &Option<Vec<Arc<HubEvent>>>) -> Option<Vec<u64>> {
        kept.as_ref()
            .map(|h| h.iter().map(|e| e.sequence).collect())
    }

    #[tokio::test]
    async fn a_read_history_is_kept_for_the_owners_next_watchers_and_grows_with_the_live_events() {
        let hub = ProgressHub::new(8);
        hub.go_live(2);
        let d = DocumentId::new();
        let first = hub.subscribe("a", Route::Owner, true).unwrap();
        assert_eq!(first.cached, None, "nothing is kept before a read");
        assert!(hub.remember(&first, &[arc(1, d), arc(2, d)]));
        hub.publish(3, "a", event(3, d));
        hub.publish(4, "b", event(4, d));
        let second = hub.subscribe("a", Route::Owner, true).unwrap();
        assert_eq!(second.position, 4);
        assert_eq!(sequences(&second.cached), Some(vec![1, 2, 3]));
        assert_eq!(
            hub.subscribe("b", Route::Owner, true).unwrap().cached,
            None,
            "never another owner's"
        );
        assert_eq!(
            hub.subscribe("a", Route::Owner, false).unwrap().cached,
            None,
            "only handed to who asks"
        );
        assert_eq!(
            hub.subscribe("a", Route::Document(d), true).unwrap().cached,
            None,
            "a document watcher reads its own subject"
        );
        assert_eq!(hub.cached(), 3);
        drop((first, second));
        assert_eq!(hub.cached(), 0, "dropped with the owner's last watcher");
        assert_eq!(hub.subscribe("a", Route::Owner, true).unwrap().cached, None);
    }

    #[tokio::test]
    async fn a_history_that_missed_a_live_event_is_not_kept() {
        let hub = ProgressHub::new(8);
        hub.go_live(2);
        let d = DocumentId::new();
        let watcher = hub.subscribe("a", Route::Owner, true).unwrap();
        // Fanned out while the watcher read the stream up to 2.
        hub.publish(3, "a", event(3, d));
        assert!(!hub.remember(&watcher, &[arc(1, d), arc(2, d)]));
        assert_eq!(hub.subscribe("a", Route::Owner, true).unwrap().cached, None);
        // Another owner's event does not date it.
        let bob = hub.subscribe("b", Route::Owner, true).unwrap();
        hub.publish(4, "a", event(4, d));
        assert!(hub.remember(&bob, &[arc(1, d)]));
    }

    #[tokio::test]
    async fn a_reader_dropped_as_lagged_cannot_leave_its_history() {
        let hub = ProgressHub::new(1);
        hub.go_live(2);
        let d = DocumentId::new();
        let reader = hub.subscribe("a", Route::Owner, true).unwrap();
        // Its queue overflows while it reads: it is dropped, and with it
        // the owner's routes; a new watcher starts them afresh.
        hub.publish(3, "a", event(3, d));
        hub.publish(4, "a", event(4, d));
        let _newer = hub.subscribe("a", Route::Document(d), false).unwrap();
        assert!(!hub.remember(&reader, &[arc(1, d), arc(2, d)]));
        assert_eq!(hub.cached(), 0);
    }

    #[tokio::test]
    async fn kept_histories_stay_within_their_bounds() {
        let hub = ProgressHub::new(8);
        hub.go_live(0);
        let d = DocumentId::new();
        let watcher = hub.subscribe("a", Route::Owner, true).unwrap();
        let too_long: Vec<Arc<HubEvent>> =
            (0..=CACHED_PER_OWNER as u64).map(|s| arc(s, d)).collect();
        assert!(!hub.remember(&watcher, &too_long), "an owner's bound");
        assert!(hub.remember(&watcher, &too_long[..CACHED_PER_OWNER]));
        assert_eq!(hub.cached(), CACHED_PER_OWNER);
        // Growing past the bound forgets it (the next watcher reads again).
        let mut watcher = watcher;
        hub.publish(1, "a", event(1, d));
        assert_eq!(hub.cached(), 0);
        assert_eq!(hub.subscribe("a", Route::Owner, true).unwrap().cached, None);
        assert_eq!(
            watcher.recv().await.unwrap().sequence,
            1,
            "the live event still goes out"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_that_watcher_only() {
        let hub = ProgressHub::new(2);
        hub.go_live(0);
        let d = DocumentId::new();
        let mut slow = hub.subscribe("a", Route::Owner, false).unwrap();
        let mut fast = hub.subscribe("a", Route::Owner, false).unwrap();
        for seq in 1..=5 {
            hub.publish(seq, "a", event(seq, d));
            assert_eq!(fast.recv().await.unwrap().sequence, seq);
        }
        // The slow one still gets what was queued before it lagged.
        assert_eq!(slow.recv().await.unwrap().sequence, 1);
        assert_eq!(slow.recv().await.unwrap().sequence, 2);
        assert_eq!(slow.recv().await.err(), Some(Closed::Lagged));
        assert_eq!(hub.watchers(), 1);
        drop(fast);
        assert_eq!(hub.watchers(), 0);
    }
}
