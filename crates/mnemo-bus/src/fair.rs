//! Fair sharing between owners (issue 18): a service reads ahead of its
//! workers and serves owners in turn, so one owner's 1,000-document batch
//! does not make another owner's single upload wait behind it.
//!
//! How: [`crate::consumer::run`] with [`FairShare`] pulls up to
//! `window` messages (and at most `max_bytes` of payload) beyond what its
//! workers hold, and keeps them in one queue per *lane* — the subject up to
//! its last token, which for document events (`<ns>.ev.doc.<owner>.<doc>`)
//! is the owner. A free worker takes the next message of the next lane in
//! turn; within a lane, stream order. An owner with nothing in hand does
//! not even wait for a worker to finish another owner's message: a few
//! *guest* places (half the workers) are kept for owners with no work in
//! hand, so a small upload starts at once beside a big batch instead of
//! waiting for one of the batch's documents to end. Messages no handler
//! wants ([`crate::Handler::wants`]) are acknowledged as they arrive and
//! never take a place in the window. Messages waiting in the window are
//! reported in progress every quarter of the ack wait, so they are not
//! redelivered while they wait; on stop they are handed back at once.
//!
//! *Express*: a message of an owner with nothing in hand and little
//! waiting ([`EXPRESS_BACKLOG`]), started while another owner's work is in
//! hand, runs on [`FairShare::express`] if one is given: `mnemo serve`
//! runs the extractor and chunker on threads niced below the API's, and
//! hands them its own runtime here, so a learner's upload beside another
//! owner's batch is read and cut at the process's priority (its
//! `spawn_blocking` work and the processes it starts too), as the
//! embedder's express session embeds it (`mnemo-bench fairness`).
//!
//! Owns: the window (bounded by count and bytes) and the turn order.
//! Must not: look into payloads (the lane comes from the subject), or
//! reorder one owner's messages.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How far a service reads ahead to share its workers fairly.
#[derive(Debug, Clone)]
pub struct FairShare {
    /// Messages held beyond the workers' (0 turns fair sharing off).
    pub window: usize,
    /// Payload bytes held beyond the workers'.
    pub max_bytes: usize,
    /// Where an owner's message beside another owner's work runs (see
    /// the module's doc); `None`: where the consumer runs.
    pub express: Option<tokio::runtime::Handle>,
}

impl Default for FairShare {
    fn default() -> Self {
        Self {
            window: 1_024,
            max_bytes: 32 * 1024 * 1024,
            express: None,
        }
    }
}

impl FairShare {
    /// No read-ahead: messages are taken in stream order as workers free up.
    pub const OFF: Self = Self {
        window: 0,
        max_bytes: 0,
        express: None,
    };

    /// Runs the messages of owners beside another's work on `runtime`.
    pub fn with_express(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.express = Some(runtime);
        self
    }
}

/// An owner with more than this many messages waiting in the window is
/// taking a batch in: its messages never run express.
pub const EXPRESS_BACKLOG: usize = 4;

/// The lane of a subject: everything before its last token (the owner, for
/// `<ns>.ev.<kind>.<owner>.<id>`).
pub fn lane_of(subject: &str) -> &str {
    subject.rsplit_once('.').map_or(subject, |(lane, _)| lane)
}

struct Waiting<T> {
    item: T,
    bytes: usize,
    /// When JetStream last heard that it is being held.
    reported: Instant,
}

/// The window: one FIFO per lane, lanes served in turn.
pub(crate) struct Window<T> {
    lanes: HashMap<String, VecDeque<Waiting<T>>>,
    /// Lanes with messages, in the order they are served next.
    turn: VecDeque<String>,
    len: usize,
    bytes: usize,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Self {
            lanes: HashMap::new(),
            turn: VecDeque::new(),
            len: 0,
            bytes: 0,
        }
    }
}

impl<T> Window<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the window has room for more, under `share`.
    pub(crate) fn has_room(&self, share: &FairShare) -> bool {
        self.len < share.window && self.bytes < share.max_bytes
    }

    pub(crate) fn push(&mut self, lane: &str, bytes: usize, item: T) {
        self.len += 1;
        self.bytes += bytes;
        let queue = self.lanes.entry(lane.to_owned()).or_default();
        if queue.is_empty() {
            self.turn.push_back(lane.to_owned());
        }
        queue.push_back(Waiting {
            item,
            bytes,
            reported: Instant::now(),
        });
    }

    /// The next item of the next lane, with its lane; that lane goes to
    /// the back of the turn if it has more.
    pub(crate) fn pop(&mut self) -> Option<(String, T)> {
        let lane = self.turn.front()?.clone();
        let item = self.pop_from(&lane)?;
        Some((lane, item))
    }

    /// The next item of `lane`; the lane goes to the back of the turn if it
    /// has more.
    pub(crate) fn pop_from(&mut self, lane: &str) -> Option<T> {
        let queue = self.lanes.get_mut(lane)?;
        let next = queue.pop_front()?;
        let more = !queue.is_empty();
        if !more {
            self.lanes.remove(lane);
        }
        self.turn.retain(|l| l != lane);
        if more {
            self.turn.push_back(lane.to_owned());
        }
        self.len -= 1;
        self.bytes -= next.bytes;
        Some(next.item)
    }

    /// Messages of `lane` waiting.
    pub(crate) fn waiting_in(&self, lane: &str) -> usize {
        self.lanes.get(lane).map_or(0, VecDeque::len)
    }

    /// Whether the next message of `lane` runs express: the lane has
    /// nothing in hand and little waiting, and another lane has work in
    /// hand.
    pub(crate) fn is_express(&self, lane: &str, in_hand: &InHand) -> bool {
        in_hand.is_idle(lane)
            && in_hand.others_busy(lane)
            && self.waiting_in(lane) <= EXPRESS_BACKLOG
    }

    /// The first lane in turn with nothing in hand, if any.
    pub(crate) fn idle_lane(&self, in_hand: &InHand) -> Option<String> {
        self.turn.iter().find(|l| in_hand.is_idle(l)).cloned()
    }

    /// The items held for `every` or longer, marked as reported now.
    pub(crate) fn due(&mut self, every: Duration) -> Vec<&T> {
        let now = Instant::now();
        self.lanes
            .values_mut()
            .flatten()
            .filter(|w| now.duration_since(w.reported) >= every)
            .map(|w| {
                w.reported = now;
                &w.item
            })
            .collect()
    }

    /// Everything held, for handing back.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.turn.clear();
        self.len = 0;
        self.bytes = 0;
        self.lanes
            .drain()
            .flat_map(|(_, q)| q.into_iter().map(|w| w.item))
            .collect()
    }
}

impl Window<crate::consumer::Delivery> {
    /// Holds a pulled delivery in its lane.
    pub(crate) fn hold(&mut self, delivery: crate::consumer::Delivery) {
        let lane = lane_of(&delivery.subject).to_owned();
        let bytes = delivery.payload().len();
        self.push(&lane, bytes, delivery);
    }

    /// Tells JetStream that deliveries held for `every` or longer are
    /// still waiting to be worked on (resets their ack wait).
    pub(crate) async fn report_held(&mut self, every: Duration) {
        for delivery in self.due(every) {
            if let Err(e) = delivery.in_progress().await {
                tracing::warn!(error = %e, "could not tell JetStream a held message waits");
            }
        }
    }
}

/// How many messages of each lane are being worked on; shared with the
/// tasks doing the work (each holds a [`LaneWork`]).
#[derive(Clone, Default)]
pub(crate) struct InHand(Arc<Mutex<HashMap<String, usize>>>);

impl InHand {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Every change is one increment or decrement: consistent after a panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `lane` has nothing in hand.
    pub(crate) fn is_idle(&self, lane: &str) -> bool {
        !self.counts().contains_key(lane)
    }

    /// Whether a lane other than `lane` has work in hand.
    pub(crate) fn others_busy(&self, lane: &str) -> bool {
        self.counts().keys().any(|l| l != lane)
    }

    /// Counts one message of `lane` in hand until the guard drops.
    pub(crate) fn start(&self, lane: &str) -> LaneWork {
        *self.counts().entry(lane.to_owned()).or_default() += 1;
        LaneWork {
            in_hand: self.clone(),
            lane: lane.to_owned(),
        }
    }
}

/// One message of a lane in hand (see [`InHand`]).
pub(crate) struct LaneWork {
    in_hand: InHand,
    lane: String,
}

impl Drop for LaneWork {
    fn drop(&mut self) {
        let mut counts = self.in_hand.counts();
        if let Some(n) = counts.get_mut(&self.lane) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.lane);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_is_the_subject_without_its_last_token() {
        assert_eq!(lane_of("ns.ev.doc.OWNER.doc-1"), "ns.ev.doc.OWNER");
        assert_eq!(lane_of("plain"), "plain");
    }

    #[test]
    fn lanes_are_served_in_turn_and_each_in_order() {
        let mut w = Window::default();
        for i in 0..5 {
            w.push("a", 10, format!("a{i}"));
        }
        w.push("b", 10, "b0".to_string());
        w.push("a", 10, "a5".to_string());
        w.push("b", 10, "b1".to_string());
        w.push("c", 10, "c0".to_string());
        assert_eq!(w.len(), 9);
        let order: Vec<String> = std::iter::from_fn(|| w.pop().map(|(_, x)| x)).collect();
        assert_eq!(
            order,
            ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4", "a5"]
        );
        assert!(w.is_empty());
    }

    #[test]
    fn the_window_is_bounded_by_count_and_bytes() {
        let share = FairShare {
            window: 3,
            max_bytes: 100,
            express: None,
        };
        let mut w = Window::default();
        w.push("a", 60, 1);
        assert!(w.has_room(&share));
        w.push("a", 60, 2);
        assert!(!w.has_room(&share), "120 bytes held");
        assert_eq!(w.pop(), Some(("a".to_string(), 1)));
        assert!(w.has_room(&share));
        w.push("b", 1, 3);
        w.push("b", 1, 4);
        assert!(!w.has_room(&share), "3 held");
        assert_eq!(w.drain().len(), 3);
        assert!(w.is_empty() && w.has_room(&share));
    }

    #[test]
    fn an_idle_lane_is_found_and_its_work_counted_until_done() {
        let in_hand = InHand::default();
        let mut w = Window::default();
        w.push("big", 1, 1);
        w.push("big", 1, 2);
        w.push("small", 1, 3);
        let busy = in_hand.start("big");
        assert_eq!(w.idle_lane(&in_hand).as_deref(), Some("small"));
        assert_eq!(w.pop_from("small"), Some(3));
        let small = in_hand.start("small");
        assert_eq!(w.idle_lane(&in_hand), None, "both lanes have work in hand");
        drop(busy);
        assert_eq!(w.idle_lane(&in_hand).as_deref(), Some("big"));
        drop(small);
        assert!(in_hand.is_idle("small"));
        assert_eq!(w.pop(), Some(("big".to_string(), 1)));
    }

    #[test]
    fn only_a_small_owner_beside_anothers_work_is_express() {
        let in_hand = InHand::default();
        let mut w = Window::default();
        w.push("small", 1, 0);
        assert!(!w.is_express("small", &in_hand), "nothing else in hand");
        for i in 0..=EXPRESS_BACKLOG {
            w.push("big", 1, i);
        }
        let big = in_hand.start("big");
        assert!(w.is_express("small", &in_hand), "beside the batch");
        assert!(!w.is_express("big", &in_hand), "its own work in hand");
        let small = in_hand.start("small");
        drop(big);
        assert!(
            !w.is_express("big", &in_hand),
            "a batch is never express, even with nothing in hand"
        );
        assert!(!w.is_express("small", &in_hand), "one message at a time");
        drop(small);
    }

    #[tokio::test(start_paused = true)]
    async fn only_items_held_long_enough_are_due() {
        let mut w = Window::default();
        w.push("a", 1, 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        w.push("a", 1, 2);
        assert_eq!(w.due(Duration::from_secs(5)), vec![&1]);
        assert!(w.due(Duration::from_secs(5)).is_empty(), "just reported");
    }
}
