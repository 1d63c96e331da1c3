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
//!  Session: Start ─▶ SessionStarted, End ─▶ SessionEnded
//!  Access: Record(admin read another's data) ─▶ OwnerDataAccessed
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
//! - [`session`]: the study-session aggregate.
//! - [`access`]: an admin's read of another owner's data, recorded in that
//!   owner's history.
//! - [`stats`]: study statistics (retention, reviews per day, streak) from reviews.
//! - [`learner`]: a learner's state (cards, schedules, topics, sessions,
//!   reviews) folded from their events as of an instant — shared by the
//!   read model and audit replay.
//! - [`error`]: why a learning command was refused.

pub mod access;
pub mod card;
pub mod error;
pub mod fsrs;
pub mod learner;
pub mod question;
pub mod schedule;
pub mod session;
pub mod stats;
pub mod topic;

pub use access::{Access, AccessCommand, AccessEvent};
pub use card::{Card, CardCommand, CardEvent, CardSource};
pub use error::{LearnError, LearnErrorKind};
pub use fsrs::{Fsrs, FsrsConfig, FsrsConfigError};
pub use learner::{CardView, LearnerEvent, LearnerState, Recorded, SessionView, TopicView};
pub use question::{
    AskedQuestion, Citation, ProducedBy, Question, QuestionCommand, QuestionEvent, RetrievedChunk,
};
pub use schedule::{CardState, Rating, Schedule, Scheduler};
pub use session::{Session, SessionCommand, SessionEvent};
pub use stats::{ReviewFact, StudyStats};
pub use topic::{Topic, TopicCommand, TopicEvent};

use crate::owner::OwnerId;

/// The aggregate id of a learner's `kind` (`card`, `topic`…) with `id`:
/// `<owner token>.<kind>.<id>`, so the subject is
/// `<ns>.ev.learn.<owner token>.<kind>.<id>` and one owner's history is
/// `<ns>.ev.learn.<owner token>.>`.
pub fn aggregate_id(owner: &OwnerId, kind: &str, id: &uuid::Uuid) -> String {
    format!("{}.{kind}.{}", owner.token(), id.hyphenated())
}

/// Splits a learning aggregate id (`<owner token>.<kind>.<id>`, or the
/// subject's tail after `<ns>.ev.learn.`) into its parts.
pub fn parse_aggregate_id(aggregate_id: &str) -> Option<(&str, &str, uuid::Uuid)> {
    let mut parts = aggregate_id.splitn(3, '.');
    let (token, kind, id) = (parts.next()?, parts.next()?, parts.next()?);
    Some((token, kind, uuid::Uuid::parse_str(id).ok()?))
}
