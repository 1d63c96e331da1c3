//! Reciprocal rank fusion (Cormack et al., 2009): a document's fused score
//! is Σ weight / (k + rank) over the ranked lists it appears in. Robust to
//! the lists' incomparable scores (ts_rank vs cosine), which is why it is
//! the standard way to merge lexical and vector retrieval.

use std::collections::HashMap;
use std::hash::Hash;

/// How the lists are fused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    /// The RRF constant: larger flattens the advantage of top ranks.
    pub k: f64,
    pub lexical_weight: f64,
    pub vector_weight: f64,
}

/// k = 10, tuned on SciFact's train split (docs/benchmarks.md, *Retrieval
/// quality*): with BM25 and MiniLM both strong, the top ranks carry the
/// signal and the customary 60 flattens them (hybrid nDCG@10 0.709 at 60,
/// 0.715 at 30, 0.721 at 10, 0.723 at 5).
impl Default for Fusion {
    fn default() -> Self {
        Self {
            k: 10.0,
            lexical_weight: 1.0,
            vector_weight: 1.0,
        }
    }
}

/// Which rank field of a [`Fused`] a list fills.
type RankOf<T> = fn(&mut Fused<T>) -> &mut u32;

/// A fused item: its score and its 1-based rank in each list (0 = absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Fused<T> {
    pub item: T,
    pub score: f64,
    pub lexical_rank: u32,
    pub vector_rank: u32,
}

impl Fusion {
    /// Fuses two best-first lists; best first, ties by lexical rank then
    /// vector rank (deterministic).
    pub fn fuse<T: Clone + Eq + Hash>(&self, lexical: &[T], vector: &[T]) -> Vec<Fused<T>> {
        let mut by_item: HashMap<T, Fused<T>> = HashMap::new();
        let lists: [(&[T], f64, RankOf<T>); 2] = [
            (lexical, self.lexical_weight, |f| &mut f.lexical_rank),
            (vector, self.vector_weight, |f| &mut f.vector_rank),
        ];
        for (list, weight, rank_of) in lists {
            for (i, item) in list.iter().enumerate() {
                let e = by_item.entry(item.clone()).or_insert_with(|| Fused {
                    item: item.clone(),
                    score: 0.0,
                    lexical_rank: 0,
                    vector_rank: 0,
                });
                let rank = rank_of(e);
                if *rank == 0 {
                    *rank = i as u32 + 1;
                    e.score += weight / (self.k + (i + 1) as f64);
                }
            }
        }
        let rank = |r: u32| if r == 0 { u32::MAX } else { r };
        let mut out: Vec<Fused<T>> = by_item.into_values().collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(rank(a.lexical_rank).cmp(&rank(b.lexical_rank)))
                .then(rank(a.vector_rank).cmp(&rank(b.vector_rank)))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_in_both_lists_beats_items_in_one() {
        let fusion = Fusion {
            k: 60.0,
            ..Default::default()
        };
        let f = fusion.fuse(&["a", "b", "c"], &["c", "d"]);
        assert_eq!(f[0].item, "c");
        assert_eq!((f[0].lexical_rank, f[0].vector_rank), (3, 1));
        assert!((f[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-12);
        // Also with the tuned default (k = 10).
        assert_eq!(
            Fusion::default().fuse(&["a", "b", "c"], &["c", "d"])[0].item,
            "c"
        );
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn weights_tilt_the_fusion_and_ties_are_stable() {
        let lexical_heavy = Fusion {
            lexical_weight: 2.0,
            ..Default::default()
        };
        assert_eq!(lexical_heavy.fuse(&["a"], &["b"])[0].item, "a");
        let vector_heavy = Fusion {
            vector_weight: 2.0,
            ..Default::default()
        };
        assert_eq!(vector_heavy.fuse(&["a"], &["b"])[0].item, "b");
        // Equal scores: the lexical list's order decides, every time.
        for _ in 0..10 {
            assert_eq!(Fusion::default().fuse(&["a"], &["b"])[0].item, "a");
        }
    }

    #[test]
    fn duplicates_in_a_list_count_once() {
        let f = Fusion::default().fuse(&["a", "a"], &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].lexical_rank, 1);
    }
}
