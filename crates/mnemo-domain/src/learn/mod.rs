//! The learner's history: topics, cards and their reviews. Everything a
//! learner does is an event on `<ns>.ev.learn.<owner>.<kind>.<id>`, so it
//! can be replayed and audited.
//!
//! ```text
//!  Topic: Create ─▶ TopicCreated, Rename ─▶ TopicRenamed,
//!         Attach/Detach ─▶ DocumentAttached / DocumentDetached
//!  Card:  Create ─▶ CardCreated ─▶ (Edit ─▶ CardEdited)*
//!         Review(rating, at, review id) ─▶ CardReviewed{schedule after}
//!         Suspend/Resume ─▶ CardSuspended / CardResumed, Delete ─▶ CardDeleted
//!  Question: Record(finished Q/A) ─▶ QuestionAsked{retrieved, answer, citations, produced_by}
//! ```
//!
//! A review event carries the schedule it produced (stability, difficulty,
//! state, due…), computed when the review was recorded by a [`Scheduler`]
//! (FSRS). Replaying the history therefore never re-runs the scheduler, and
//! changing its parameters later does not rewrite the past.
//!
//! - [`schedule`]: ratings, a card's schedule, the `Scheduler` trait.
//! - [`fsrs`]: FSRS-6, the production `Scheduler` (py-fsrs 6.3.2 semantics).
//! - [`card`]: the card aggregate (commands, events, decide/apply).
//! - [`topic`]: the topic aggregate.
//! - [`question`]: the question aggregate (a question, its sources, its answer).
//! - [`error`]: why a learning command was refused.

pub mod card;
pub mod error;
pub mod fsrs;
pub mod question;
pub mod schedule;
pub mod topic;

pub use card::{Card, CardCommand, CardEvent, CardSource};
pub use error::{LearnError, LearnErrorKind};
pub use fsrs::{Fsrs, FsrsConfig, FsrsConfigError};
pub use question::{
    AskedQuestion, Citation, ProducedBy, Question, QuestionCommand, QuestionEvent, RetrievedChunk,
};
pub use schedule::{CardState, Rating, Schedule, Scheduler};
pub use topic::{Topic, TopicCommand, TopicEvent};

use crate::owner::OwnerId;

/// The aggregate id of a learner's `kind` (`card`, `topic`…) with `id`:
/// `<owner token>.<kind>.<id>`, so the subject is
/// `<ns>.ev.learn.<owner token>.<kind>.<id>` and one owner's history is
/// `<ns>.ev.learn.<owner token>.>`.
pub fn aggregate_id(owner: &OwnerId, kind: &str, id: &uuid::Uuid) -> String {
    format!("{}.{kind}.{}", owner.token(), id.hyphenated())
}
