//! Word-level bag-of-words F1 between two texts: how the pipeline issue
//! measures an extractor against a reference (`pdftotext`). Words are runs
//! of alphanumeric characters, lowercased; order does not matter, counts do.

use std::collections::HashMap;

/// Words of `text` with their counts.
pub fn words(text: &str) -> HashMap<String, usize> {
    let mut bag = HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *bag.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    bag
}

/// F1 of `ours` against `reference` (1.0 when both are empty).
pub fn word_f1(ours: &str, reference: &str) -> f64 {
    let (a, b) = (words(ours), words(reference));
    let (na, nb): (usize, usize) = (a.values().sum(), b.values().sum());
    if na == 0 && nb == 0 {
        return 1.0;
    }
    let common: usize = a
        .iter()
        .map(|(w, n)| (*n).min(b.get(w).copied().unwrap_or(0)))
        .sum();
    if common == 0 {
        return 0.0;
    }
    let (p, r) = (common as f64 / na as f64, common as f64 / nb as f64);
    2.0 * p * r / (p + r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_counts_words_not_order() {
        assert_eq!(word_f1("b a", "a b"), 1.0);
        assert_eq!(word_f1("", ""), 1.0);
        assert_eq!(word_f1("x", "y"), 0.0);
        // 2 of 3 words shared each way.
        assert!((word_f1("the cat sat", "The cat ran") - 2.0 / 3.0).abs() < 1e-12);
        // Merged words count as different words.
        assert!(word_f1("thecat", "the cat") < 0.01);
    }
}
