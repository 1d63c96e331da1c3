//! Event schema versions: which older versions of an event type can still be
//! read, and how (upcasters, cqrs-es's `EventUpcaster`); and [`EventKind`],
//! an event type's name as consumers filter on it.
//!
//! The event store (`mnemo-bus`) asks an event type for its upcasters through
//! [`Upcast`] and runs them on every message whose headers name an older
//! version. Each aggregate's upcasters live next to its events
//! (e.g. [`crate::document::upcast`]).

use cqrs_es::persist::EventUpcaster;

/// Event types whose older schema versions may still be on the stream.
pub trait Upcast {
    /// Upcasters, oldest change first (empty: every version is current).
    fn upcasters() -> &'static [Box<dyn EventUpcaster>];
}

impl Upcast for crate::document::DocumentEvent {
    fn upcasters() -> &'static [Box<dyn EventUpcaster>] {
        crate::document::upcast::upcasters()
    }
}

/// One event type of an aggregate, without its payload: what a consumer
/// filters on. Its [`name`](EventKind::name) is the string written in the
/// `Mnemo-Event-Type` header and in the payload's `type` tag, so services
/// name the events they want through the domain's enum rather than by a
/// string literal that could drift from it (the bus matches the header
/// against these names without decoding the payload).
pub trait EventKind {
    /// The type's name on the wire (header and payload tag).
    fn name(&self) -> &'static str;
}

impl EventKind for crate::document::DocumentEventKind {
    fn name(&self) -> &'static str {
        crate::document::DocumentEventKind::name(*self)
    }
}
