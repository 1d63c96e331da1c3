//! The offline card generator: a document's chunks → question cards from
//! definitions and cloze cards from key terms, each citing its chunk and
//! page.
//!
//! - *Definitions*: a sentence "X is/are a …", "X refers to …", "X is
//!   defined as …", "X means …" or "X: …" whose subject X is a short noun
//!   phrase (not a pronoun, no comma) → "What is X?" with the sentence as
//!   the answer.
//! - *Key terms*: capitalised multi-word names ("Treaty of Westphalia"),
//!   acronyms ("ATP") and lower-case two-word terms the document repeats
//!   ("oxidative phosphorylation"), ranked by how often the document uses
//!   them against how common their words are in English (a term of common
//!   words only is no key term) → a cloze of the term's best sentence.
//!
//! Output is deterministic (chunk order, then score, then text), without
//! repeats (same front, or a term already asked), at most
//! [`CardLimits::per_chunk`] cards per chunk and [`CardLimits::max`] in all.

use std::collections::{BTreeMap, HashSet};

use crate::text::{is_stop_word, sentences, words};
use crate::Passage;

/// What kind of card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKind {
    /// "What is X?" from a definition.
    Definition,
    /// A sentence with its key term blanked out.
    Cloze,
    /// Written by the LLM.
    Llm,
}

impl CardKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Definition => "definition",
            Self::Cloze => "cloze",
            Self::Llm => "llm",
        }
    }
}

/// A card the generator proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCard {
    pub kind: CardKind,
    pub front: String,
    pub back: String,
    /// The term the card is about.
    pub term: String,
    pub chunk_id: String,
    pub document_id: uuid::Uuid,
    pub page: u32,
}

/// How many cards.
#[derive(Debug, Clone, Copy)]
pub struct CardLimits {
    pub max: usize,
    pub per_chunk: usize,
}

impl Default for CardLimits {
    fn default() -> Self {
        Self {
            max: 20,
            per_chunk: 3,
        }
    }
}

/// The blank of a cloze card.
pub const BLANK: &str = "[…]";

const NOT_SUBJECTS: &[&str] = &[
    "it", "this", "that", "these", "those", "there", "they", "he", "she", "we", "you", "i",
    "which", "what", "who", "here", "one", "each", "such", "its", "his", "her", "their", "our",
    "another", "all", "some", "many", "most", "both", "if", "when", "where", "why", "how",
];
const NOT_LABELS: &[&str] = &[
    "note",
    "example",
    "examples",
    "warning",
    "tip",
    "figure",
    "table",
    "see",
    "source",
    "summary",
    "question",
    "answer",
    "chapter",
    "section",
    "step",
    "caution",
    "important",
    "definition",
];
/// Words so common that a term made only of them is no key term.
const COMMON: &[&str] = &[
    "first", "second", "new", "old", "good", "great", "small", "large", "long", "high", "low",
    "part", "parts", "way", "time", "year", "years", "people", "world", "day", "thing", "things",
    "number", "example", "case", "page", "chapter", "section", "figure", "table", "also",
];

/// Cards from `chunks` (one document's, in order).
pub fn generate_cards(chunks: &[Passage], limits: CardLimits) -> Vec<GeneratedCard> {
    let mut out = Vec::new();
    let mut fronts = HashSet::new();
    let mut terms_asked = HashSet::new();
    let mut per_chunk: BTreeMap<String, usize> = BTreeMap::new();
    let mut push = |card: GeneratedCard, out: &mut Vec<GeneratedCard>| {
        let n = per_chunk.entry(card.chunk_id.clone()).or_default();
        if out.len() >= limits.max
            || *n >= limits.per_chunk
            || !fronts.insert(words(&card.front).join(" "))
            || !terms_asked.insert(card.term.to_lowercase())
        {
            return;
        }
        *n += 1;
        out.push(card);
    };
    for chunk in chunks {
        for s in sentences(&chunk.text) {
            if let Some(card) = definition(s.text, chunk) {
                push(card, &mut out);
            }
        }
    }
    for (term, _) in key_terms(chunks) {
        if let Some(card) = cloze(&term, chunks) {
            push(card, &mut out);
        }
    }
    out
}

/// A definition card from one sentence, if it is one.
fn definition(sentence: &str, chunk: &Passage) -> Option<GeneratedCard> {
    const COPULAS: &[(&str, &str)] = &[
        (" is defined as ", "How is {} defined?"),
        (" are defined as ", "How are {} defined?"),
        (" refers to ", "What does {} refer to?"),
        (" refer to ", "What do {} refer to?"),
        (" means ", "What does {} mean?"),
        (" is a ", "What is {}?"),
        (" is an ", "What is {}?"),
        (" is the ", "What is {}?"),
        (" are ", "What are {}?"),
    ];
    let card = |term: &str, front: String, back: &str| GeneratedCard {
        kind: CardKind::Definition,
        front,
        back: back.to_owned(),
        term: term.to_owned(),
        chunk_id: chunk.chunk_id.clone(),
        document_id: chunk.document_id,
        page: chunk.page_start,
    };
    // "Term: what it is."
    if let Some((label, rest)) = sentence.split_once(": ") {
        let term = label.trim().trim_matches(['*', '_', '`']).trim();
        if subject(term, 5).is_some()
            && term.chars().next().is_some_and(char::is_uppercase)
            && !NOT_LABELS.contains(&term.to_lowercase().as_str())
            && rest.split_whitespace().count() >= 3
        {
            let back = capitalise(rest.trim());
            return Some(card(term, format!("What is {term}?"), &back));
        }
    }
    let (at, copula, template) = COPULAS
        .iter()
        .filter_map(|(c, t)| sentence.find(c).map(|at| (at, *c, *t)))
        .min_by_key(|(at, _, _)| *at)?;
    let term = subject(sentence[..at].trim().trim_matches(['*', '_', '`']), 6)?;
    let rest = &sentence[at + copula.len()..];
    if rest.split_whitespace().count() < 2 {
        return None;
    }
    let asked = lower_article(term);
    Some(card(
        strip_article(term),
        template.replacen("{}", &asked, 1),
        sentence,
    ))
}

/// `s` as the subject of a definition: 1..=`max_words` words, not a
/// pronoun or a clause.
fn subject(s: &str, max_words: usize) -> Option<&str> {
    let n = s.split_whitespace().count();
    let first = s.split_whitespace().next()?.to_lowercase();
    let ok = (1..=max_words).contains(&n)
        && !s.contains([',', ';', '(', ')', '"', '“'])
        && !NOT_SUBJECTS.contains(&first.as_str())
        && s.chars().any(char::is_alphabetic)
        && !strip_article(s).is_empty();
    ok.then_some(s)
}

fn strip_article(s: &str) -> &str {
    for a in ["The ", "the ", "A ", "a ", "An ", "an "] {
        if let Some(rest) = s.strip_prefix(a) {
            return rest;
        }
    }
    s
}

/// "The nucleus" → "the nucleus" (a name keeps its capital).
fn lower_article(s: &str) -> String {
    for a in ["The ", "A ", "An "] {
        if let Some(rest) = s.strip_prefix(a) {
            return format!("{}{rest}", a.to_lowercase());
        }
    }
    s.to_owned()
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The document's key terms, best first (score, then text).
fn key_terms(chunks: &[Passage]) -> Vec<(String, f64)> {
    let mut counts: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    let mut bigrams: BTreeMap<String, usize> = BTreeMap::new();
    for chunk in chunks {
        for s in sentences(&chunk.text) {
            let tokens: Vec<&str> = s
                .text
                .split_whitespace()
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-'))
                .filter(|w| !w.is_empty())
                .collect();
            for term in capitalised_runs(&tokens) {
                let weight = term.split_whitespace().count() as f64;
                let e = counts.entry(term).or_insert((0, weight));
                e.0 += 1;
            }
            for w in &tokens {
                if is_acronym(w) {
                    let e = counts.entry((*w).to_owned()).or_insert((0, 1.5));
                    e.0 += 1;
                }
            }
            // Lower-case word pairs (the sentence's first word may be
            // capitalised), counted case-insensitively.
            let plain = |i: usize| {
                let w = tokens[i];
                let l = w.to_lowercase();
                let shaped = w
                    .chars()
                    .skip(usize::from(i == 0))
                    .all(|c| c.is_lowercase() || c == '-');
                (shaped
                    && l.chars().count() >= 4
                    && !is_stop_word(&l)
                    && !COMMON.contains(&l.as_str()))
                .then_some(l)
            };
            for i in 1..tokens.len() {
                if let (Some(a), Some(b)) = (plain(i - 1), plain(i)) {
                    *bigrams.entry(format!("{a} {b}")).or_default() += 1;
                }
            }
        }
    }
    for (term, n) in bigrams {
        if n >= 2 {
            counts.insert(term, (n, 2.0));
        }
    }
    let mut ranked: Vec<(String, f64)> = counts
        .into_iter()
        .filter(|(t, _)| {
            !t.split_whitespace()
                .all(|w| COMMON.contains(&w.to_lowercase().as_str()))
        })
        .map(|(t, (n, weight))| (t, n as f64 * weight))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Runs of 2..=4 capitalised words ("of"/"the"/"and" may join them), without
/// a leading article or pronoun.
fn capitalised_runs(tokens: &[&str]) -> Vec<String> {
    const JOINERS: &[&str] = &["of", "the", "and", "de", "for", "on"];
    let capital =
        |w: &str| w.chars().next().is_some_and(char::is_uppercase) && !is_acronym(w) && w.len() > 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !capital(tokens[i]) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < tokens.len() && (capital(tokens[j]) || JOINERS.contains(&tokens[j])) {
            j += 1;
        }
        while j > i && JOINERS.contains(&tokens[j - 1]) {
            j -= 1;
        }
        let mut run: Vec<&str> = tokens[i..j].to_vec();
        // "The Treaty of Westphalia" → "Treaty of Westphalia".
        if run.first().is_some_and(|w| {
            let l = w.to_lowercase();
            is_stop_word(&l) || NOT_SUBJECTS.contains(&l.as_str())
        }) {
            run.remove(0);
        }
        if (2..=4).contains(&run.len()) {
            out.push(run.join(" "));
        }
        i = j.max(i + 1);
    }
    out
}

fn is_acronym(w: &str) -> bool {
    let letters = w.chars().filter(|c| c.is_alphabetic()).count();
    (2..=6).contains(&w.chars().count())
        && letters >= 2
        && w.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A cloze of `term`'s best sentence: the first one of 6..=40 words that
/// says more than the term.
fn cloze(term: &str, chunks: &[Passage]) -> Option<GeneratedCard> {
    for chunk in chunks {
        for s in sentences(&chunk.text) {
            let n = s.text.split_whitespace().count();
            let Some(at) = find_word(s.text, term) else {
                continue;
            };
            if !(6..=40).contains(&n) {
                continue;
            }
            let front = format!("{}{BLANK}{}", &s.text[..at], &s.text[at + term.len()..]);
            return Some(GeneratedCard {
                kind: CardKind::Cloze,
                front,
                back: term.to_owned(),
                term: term.to_owned(),
                chunk_id: chunk.chunk_id.clone(),
                document_id: chunk.document_id,
                page: chunk.page_start,
            });
        }
    }
    None
}

/// Where `term` occurs in `s` as whole words.
fn find_word(s: &str, term: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = s[from..].find(term) {
        let at = from + pos;
        let before = s[..at].chars().next_back();
        let after = s[at + term.len()..].chars().next();
        if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
            return Some(at);
        }
        from = at + term.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u32, text: &str) -> Passage {
        Passage {
            chunk_id: format!("doc-{n}"),
            document_id: uuid::Uuid::from_u128(5),
            title: "notes.md".into(),
            page_start: n + 1,
            page_end: n + 1,
            text: text.into(),
        }
    }

    fn notes() -> Vec<Passage> {
        vec![
            chunk(
                0,
                "Mitochondria are membrane-bound organelles that produce most of the cell's ATP. \
                 They do so through oxidative phosphorylation. It is a slow process. Oxidative \
                 phosphorylation needs oxygen, and ATP is the cell's energy currency.",
            ),
            chunk(
                1,
                "Osmosis: the movement of water across a semipermeable membrane. The Treaty of \
                 Westphalia ended the Thirty Years War in 1648. Historians date the modern state \
                 system from the Treaty of Westphalia.",
            ),
        ]
    }

    #[test]
    fn definitions_become_questions_citing_their_chunk_and_page() {
        let cards = generate_cards(&notes(), CardLimits::default());
        let mito = cards
            .iter()
            .find(|c| c.kind == CardKind::Definition && c.term == "Mitochondria")
            .expect("a definition card for mitochondria");
        assert_eq!(mito.front, "What are Mitochondria?");
        assert_eq!(
            mito.back,
            "Mitochondria are membrane-bound organelles that produce most of the cell's ATP."
        );
        assert_eq!((mito.chunk_id.as_str(), mito.page), ("doc-0", 1));
        let osmosis = cards.iter().find(|c| c.term == "Osmosis").expect("osmosis");
        assert_eq!(osmosis.front, "What is Osmosis?");
        assert_eq!(
            osmosis.back,
            "The movement of water across a semipermeable membrane."
        );
        assert_eq!((osmosis.chunk_id.as_str(), osmosis.page), ("doc-1", 2));
        // Pronoun subjects are not definitions.
        assert!(cards.iter().all(|c| !c.front.contains("What is It")));
    }

    #[test]
    fn key_terms_become_clozes() {
        let cards = generate_cards(&notes(), CardLimits::default());
        let treaty = cards
            .iter()
            .find(|c| c.kind == CardKind::Cloze && c.back == "Treaty of Westphalia")
            .expect("a cloze for the treaty");
        assert_eq!(treaty.front, "The […] ended the Thirty Years War in 1648.");
        assert_eq!(treaty.chunk_id, "doc-1");
        let ox = cards
            .iter()
            .find(|c| c.back == "oxidative phosphorylation")
            .expect("a repeated technical term");
        assert_eq!(ox.front, "They do so through […].");
        assert!(cards
            .iter()
            .any(|c| c.kind == CardKind::Cloze && c.back == "ATP"));
    }

    #[test]
    fn bounded_deduplicated_and_deterministic() {
        let mut chunks = notes();
        chunks.push(chunk(2, &chunks[0].text.clone()));
        let cards = generate_cards(&chunks, CardLimits::default());
        assert_eq!(cards, generate_cards(&chunks, CardLimits::default()));
        let mut fronts: Vec<&str> = cards.iter().map(|c| c.front.as_str()).collect();
        fronts.sort_unstable();
        let n = fronts.len();
        fronts.dedup();
        assert_eq!(fronts.len(), n, "no repeated card");
        for id in ["doc-0", "doc-1", "doc-2"] {
            assert!(cards.iter().filter(|c| c.chunk_id == id).count() <= 3);
        }
        let few = generate_cards(
            &chunks,
            CardLimits {
                max: 2,
                per_chunk: 1,
            },
        );
        assert_eq!(few.len(), 2);
        assert_ne!(few[0].chunk_id, few[1].chunk_id);
    }
}
