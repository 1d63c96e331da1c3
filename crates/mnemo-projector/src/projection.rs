//! The projections: named sets of read-model tables, each folded from the
//! document events and each rebuildable on its own
//! (`mnemo projections rebuild NAME`).

use std::fmt;

/// One projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    /// `documents`: one row per document (state, counts, runs).
    Documents,
    /// `chunks` and `chunk_embeddings`: chunk text, pages, vectors per model.
    Chunks,
    /// `stage_timings`: when each run entered and left each stage.
    StageTimings,
}

impl Projection {
    /// Every projection, in the order a batch writes them.
    pub const ALL: [Projection; 3] = [Self::Documents, Self::Chunks, Self::StageTimings];

    pub fn name(self) -> &'static str {
        match self {
            Self::Documents => "documents",
            Self::Chunks => "chunks",
            Self::StageTimings => "stage_timings",
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
    }
}
