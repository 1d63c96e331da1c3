//! The projections: named sets of read-model tables, each folded from one
//! [`Feed`] of events (the document events or the learning events) and
//! each rebuildable on its own (`mnemo projections rebuild NAME`).

use std::fmt;

use mnemo_bus::Namespace;

/// One projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    /// `documents`: one row per document (state, counts, runs).
    Documents,
    /// `chunks` and `chunk_embeddings`: chunk text, pages, vectors per model.
    Chunks,
    /// `stage_timings`: when each run entered and left each stage.
    StageTimings,
    /// `learning_*`: cards with their schedule, reviews, topics, sessions.
    Learning,
}

/// The events a projection is folded from: one subject tree of the event
/// stream, read by its own live runner with its own checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    /// `<ns>.ev.doc.>`, folded by the document read models
    /// ([`crate::handler::Documents`]).
    Documents,
    /// `<ns>.ev.learn.>`, folded by the learning read model
    /// ([`crate::handler::Learning`]).
    Learning,
}

impl Feed {
    /// Both feeds, each with its own live runner.
    pub const ALL: [Feed; 2] = [Self::Documents, Self::Learning];

    /// The subject kind: the feed is `<ns>.ev.<kind>.>`.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Documents => "doc",
            Self::Learning => "learn",
        }
    }

    /// The live runner's checkpoint (and advisory lock) name:
    /// `<ns>_projector` for the documents (the name predates the learning
    /// feed), `<ns>_learning`.
    pub fn checkpoint_name(self, ns: &Namespace) -> String {
        match self {
            Self::Documents => ns.consumer("projector"),
            Self::Learning => ns.consumer("learning"),
        }
    }

    /// Where the live runner's dead letters go: `<ns>.dlq.<service>`.
    pub fn dlq_service(self) -> &'static str {
        match self {
            Self::Documents => "projector",
            Self::Learning => crate::learning::DLQ_SERVICE,
        }
    }

    /// The scratch schema a rebuild of this feed's projections builds in
    /// (`<ns>__rebuild`, `<ns>__rebuild_learning`: a namespace has no `__`).
    pub fn scratch_schema(self, ns: &Namespace) -> String {
        match self {
            Self::Documents => format!("{}__rebuild", ns.sql_schema()),
            Self::Learning => format!("{}__rebuild_learning", ns.sql_schema()),
        }
    }
}

impl Projection {
    /// Every projection.
    pub const ALL: [Projection; 4] = [
        Self::Documents,
        Self::Chunks,
        Self::StageTimings,
        Self::Learning,
    ];

    /// The projections folded from the document events, in the order a
    /// batch writes them.
    pub const OF_DOCUMENTS: [Projection; 3] = [Self::Documents, Self::Chunks, Self::StageTimings];

    pub fn name(self) -> &'static str {
        match self {
            Self::Documents => "documents",
            Self::Chunks => "chunks",
            Self::StageTimings => "stage_timings",
            Self::Learning => "learning",
        }
    }

    /// The events it is folded from.
    pub fn feed(self) -> Feed {
        match self {
            Self::Documents | Self::Chunks | Self::StageTimings => Feed::Documents,
            Self::Learning => Feed::Learning,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The tables the projection owns (swapped together on a rebuild).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Self::Documents => &["documents"],
            Self::Chunks => &["chunks", "chunk_embeddings"],
            Self::StageTimings => &["stage_timings"],
            Self::Learning => &[
                "learning_cards",
                "learning_reviews",
                "learning_topics",
                "learning_topic_documents",
                "learning_sessions",
            ],
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tables_are_disjoint() {
        let mut seen = std::collections::HashSet::new();
        for p in Projection::ALL {
            assert_eq!(Projection::parse(p.name()), Some(p));
            for t in p.tables() {
                assert!(seen.insert(*t), "{t} belongs to two projections");
            }
        }
        assert_eq!(Projection::parse("nope"), None);
        assert!(Projection::OF_DOCUMENTS
            .iter()
            .all(|p| p.feed() == Feed::Documents));
        assert_eq!(Projection::Learning.feed(), Feed::Learning);
    }
}
