//! Event schema versions: which older versions of an event type can still be
//! read, and how (upcasters, cqrs-es's `EventUpcaster`).
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
