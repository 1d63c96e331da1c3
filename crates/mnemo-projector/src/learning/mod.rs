//! The learning read model: cards with their current schedule, reviews,
//! topics with their documents, and study sessions
//! (`projections/learning/`), folded from `<ns>.ev.learn.>`.
//!
//! It runs beside the document projector as its own ordered reader with
//! its own checkpoint (`<ns>_learning`, decision 014): each batch of events
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
//! - [`runner`]: the live loop (ordered reads from the checkpoint).
//! - [`queries`]: what the API reads (cards, due cards, reviews, topics).
//! - [`dead_letters`]: retrying the events the runner could not read.

pub mod dead_letters;
pub mod decode;
pub mod queries;
pub mod runner;
pub mod store;

pub use decode::{decode, DecodedEvent, LearningMessage};
