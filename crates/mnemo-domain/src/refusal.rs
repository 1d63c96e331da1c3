//! What a refused command means to a service that produced its result.

/// A command refusal, as a pipeline service sees it. Implemented by every
/// aggregate's error so the consumer loop (`mnemo_bus::consumer`) can tell
/// a moot result (drop it, acknowledge the delivery) from a real refusal
/// (give up on the event) without knowing the aggregate.
pub trait Refusal {
    /// The result is moot: its run was cancelled or superseded, or the
    /// aggregate has moved past the stage it is for.
    fn is_moot(&self) -> bool;
}

impl Refusal for crate::DocumentError {
    fn is_moot(&self) -> bool {
        crate::DocumentError::is_moot(self)
    }
}

impl Refusal for crate::learn::LearnError {
    /// Learning commands come from people, not from a pipeline: nothing
    /// they are refused for is moot.
    fn is_moot(&self) -> bool {
        false
    }
}
