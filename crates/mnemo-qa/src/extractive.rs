//! The extractive answerer: the sentences of the retrieved chunks that best
//! match the question, each keeping the chunk it came from.
//!
//! Every sentence of every retrieved chunk is scored with BM25 over the
//! question's content terms (the sentences are the collection, so a term
//! found in every sentence weighs little), boosted by the rank retrieval
//! gave its chunk: `bm25 × (1 + RANK_WEIGHT / rank)`. The best few, without
//! repeats (overlapping chunks share sentences), are the answer, best
//! first. When no sentence shares a term with the question (retrieval
//! found the chunks by meaning), the top chunk's first sentence stands in,
//! marked as not matched.

use std::collections::{HashMap, HashSet};

use crate::text::{sentences, terms};
use crate::Passage;

/// BM25 parameters over sentences.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// How much the first retrieved chunk's sentences are preferred.
const RANK_WEIGHT: f64 = 0.5;
/// Sentences shorter than this (in words) are headings or fragments.
const MIN_WORDS: usize = 4;

/// One sentence of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSentence {
    pub text: String,
    /// Index of its passage in the retrieved list (citation `[source + 1]`).
    pub source: usize,
    pub score: f64,
}

/// The answer: its sentences, best first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtractiveAnswer {
    pub sentences: Vec<AnswerSentence>,
    /// False when no sentence shared a word with the question.
    pub matched: bool,
}

impl ExtractiveAnswer {
    /// Each sentence followed by its citation: `Text. [2] Other text. [1]`.
    pub fn text(&self) -> String {
        self.sentences
            .iter()
            .map(|s| format!("{} [{}]", s.text, s.source + 1))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

struct Candidate {
    text: String,
    source: usize,
    position: usize,
    terms: Vec<String>,
}

/// Answers `question` from `passages` (in retrieval rank order) with at most
/// `max_sentences` sentences.
pub fn answer(question: &str, passages: &[Passage], max_sentences: usize) -> ExtractiveAnswer {
    let mut query: Vec<String> = terms(question);
    query.sort();
    query.dedup();
    let candidates: Vec<Candidate> = passages
        .iter()
        .enumerate()
        .flat_map(|(source, p)| {
            sentences(&p.text)
                .into_iter()
                .enumerate()
                .filter(|(_, s)| s.text.split_whitespace().count() >= MIN_WORDS)
                .map(move |(position, s)| Candidate {
                    text: s.text.to_owned(),
                    source,
                    position,
                    terms: terms(s.text),
                })
        })
        .collect();
    if candidates.is_empty() || max_sentences == 0 {
        return ExtractiveAnswer::default();
    }
    let n = candidates.len() as f64;
    let avg_len = candidates.iter().map(|c| c.terms.len()).sum::<usize>() as f64 / n;
    let df: HashMap<&str, usize> = query
        .iter()
        .map(|t| {
            let df = candidates.iter().filter(|c| c.terms.contains(t)).count();
            (t.as_str(), df)
        })
        .collect();
    let mut scored: Vec<(f64, &Candidate)> = candidates
        .iter()
        .map(|c| {
            let len = c.terms.len() as f64;
            let bm25: f64 = query
                .iter()
                .map(|t| {
                    let tf = c.terms.iter().filter(|x| *x == t).count() as f64;
                    if tf == 0.0 {
                        return 0.0;
                    }
                    let df = df[t.as_str()] as f64;
                    let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                    idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg_len.max(1.0)))
                })
                .sum();
            (bm25 * (1.0 + RANK_WEIGHT / (c.source as f64 + 1.0)), c)
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.source.cmp(&b.1.source))
            .then(a.1.position.cmp(&b.1.position))
    });
    let mut seen = HashSet::new();
    let picked: Vec<AnswerSentence> = scored
        .iter()
        .filter(|(score, _)| *score > 0.0)
        .filter(|(_, c)| seen.insert(normalise(&c.text)))
        .take(max_sentences)
        .map(|(score, c)| AnswerSentence {
            text: c.text.clone(),
            source: c.source,
            score: *score,
        })
        .collect();
    if !picked.is_empty() {
        return ExtractiveAnswer {
            sentences: picked,
            matched: true,
        };
    }
    // Found by meaning only: the best chunk's opening sentence.
    let first = candidates
        .iter()
        .min_by_key(|c| (c.source, c.position))
        .map(|c| AnswerSentence {
            text: c.text.clone(),
            source: c.source,
            score: 0.0,
        });
    ExtractiveAnswer {
        sentences: first.into_iter().collect(),
        matched: false,
    }
}

fn normalise(s: &str) -> String {
    crate::text::words(s).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(n: u32, text: &str) -> Passage {
        Passage {
            chunk_id: format!("c-{n}"),
            document_id: uuid::Uuid::from_u128(1),
            title: "bio.md".into(),
            page_start: n,
            page_end: n,
            text: text.into(),
        }
    }

    fn cells() -> Vec<Passage> {
        vec![
            passage(
                1,
                "# Cell biology Cells are the basic unit of life. Mitochondria produce most of the \
                 cell's ATP through oxidative phosphorylation. The nucleus stores DNA.",
            ),
            passage(
                2,
                "Ribosomes translate messenger RNA into proteins. Proteins fold into shapes that \
                 decide what they do. Mitochondria produce most of the cell's ATP through \
                 oxidative phosphorylation.",
            ),
        ]
    }

    #[test]
    fn the_best_matching_sentences_come_first_with_their_chunk() {
        let a = answer("What do mitochondria produce?", &cells(), 3);
        assert!(a.matched);
        assert_eq!(
            a.sentences[0].text,
            "Mitochondria produce most of the cell's ATP through oxidative phosphorylation."
        );
        // From the first chunk (rank boost), and not repeated from the second.
        assert_eq!(a.sentences[0].source, 0);
        assert_eq!(a.sentences.len(), 1, "{a:?}");

        let a = answer("How are proteins made from RNA?", &cells(), 2);
        assert_eq!(
            a.sentences[0].text,
            "Ribosomes translate messenger RNA into proteins."
        );
        assert_eq!(a.sentences[0].source, 1);
        assert_eq!(
            a.text(),
            "Ribosomes translate messenger RNA into proteins. [2] Proteins fold into shapes that \
             decide what they do. [2]"
        );
    }

    #[test]
    fn no_shared_word_falls_back_to_the_top_chunk_unmatched() {
        let a = answer("Which organelle is the powerhouse?", &cells(), 3);
        assert!(!a.matched);
        assert_eq!(a.sentences.len(), 1);
        assert_eq!(a.sentences[0].source, 0);
        assert!(a.sentences[0].text.starts_with("Cell biology Cells are"));
        assert!(answer("anything", &[], 3).sentences.is_empty());
    }

    #[test]
    fn the_same_input_gives_the_same_answer() {
        let q = "mitochondria nucleus DNA ATP proteins";
        assert_eq!(answer(q, &cells(), 3), answer(q, &cells(), 3));
        assert_eq!(answer(q, &cells(), 3).sentences.len(), 3);
    }
}
