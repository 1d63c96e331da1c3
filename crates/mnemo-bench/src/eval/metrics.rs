//! Retrieval metrics over ranked document lists, as BEIR reports them
//! (pytrec_eval): nDCG@k with the judged relevance as gain, and recall@k.

use std::collections::HashMap;

/// Relevance judgments of one query: document id → grade (> 0 relevant).
pub type Judged = HashMap<String, u32>;

/// nDCG@k of `ranked` (best first, each document once).
pub fn ndcg_at(ranked: &[String], judged: &Judged, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, d)| f64::from(judged.get(d).copied().unwrap_or(0)) / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<u32> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| f64::from(g) / (i as f64 + 2.0).log2())
        .sum();
    if idcg > 0.0 {
        dcg / idcg
    } else {
        0.0
    }
}

/// Share of the relevant documents found in the first `k`.
pub fn recall_at(ranked: &[String], judged: &Judged, k: usize) -> f64 {
    let relevant = judged.values().filter(|&&g| g > 0).count();
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| judged.get(*d).is_some_and(|&g| g > 0))
        .count();
    found as f64 / relevant as f64
}

/// Documents of a ranked list of hits, each once, in the order first seen
/// (a document with several matching chunks counts at its best chunk).
pub fn documents_once(hits: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    hits.into_iter()
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(ids: &[&str]) -> Judged {
        ids.iter().map(|d| ((*d).to_owned(), 1)).collect()
    }

    fn ranked(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn perfect_and_empty_rankings() {
        let j = judged(&["a", "b"]);
        assert!((ndcg_at(&ranked(&["a", "b", "c"]), &j, 10) - 1.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&ranked(&["x", "y"]), &j, 10), 0.0);
        assert_eq!(recall_at(&ranked(&["a", "x"]), &j, 100), 0.5);
    }

    #[test]
    fn ndcg_matches_a_hand_computation() {
        // One relevant document at rank 3: 1/log2(4) over the ideal 1/log2(2).
        let j = judged(&["c"]);
        let got = ndcg_at(&ranked(&["a", "b", "c"]), &j, 10);
        assert!((got - 0.5).abs() < 1e-12, "{got}");
        // Beyond the cut-off it counts nothing.
        assert_eq!(ndcg_at(&ranked(&["a", "b", "c"]), &j, 2), 0.0);
    }

    #[test]
    fn a_document_counts_once_at_its_best_chunk() {
        let docs = documents_once(ranked(&["a", "b", "a", "c", "b"]));
        assert_eq!(docs, ranked(&["a", "b", "c"]));
    }
}
