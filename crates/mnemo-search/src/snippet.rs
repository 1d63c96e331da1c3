//! Highlighted snippets: the passages of a hit's text that hold the query's
//! words, each query word between « and ».
//!
//! Made here, not by PostgreSQL's `ts_headline`, which parsed every hit's
//! whole text in the database on each search: with 200 searches a second
//! it was most of PostgreSQL's CPU and the largest part of a bystander's
//! search time (`mnemo-bench load`, docs/benchmarks.md *Load*). Here a
//! chunk's words are split off in one pass and only the words that could
//! be a query lexeme (same first letters) are stemmed.
//!
//! A word matches when its stem is one of the query's lexemes, which come
//! from PostgreSQL's `to_tsvector('english', query)` ([`crate::lexical::lexemes`]):
//! the same Snowball English stemmer as PostgreSQL's `english_stem`
//! (`a_words_stem_is_postgresqls_lexeme` in the e2e tests checks that they
//! agree on a real document), and stop words never match because the
//! query's lexemes have none.
//!
//! The shape: at most [`MAX_FRAGMENTS`] fragments of at most
//! [`FRAGMENT_WORDS`] words, each starting a few words before a match,
//! chosen for the most distinct query words, then the most matches; in
//! text order, joined by " … "; whitespace runs shown as one space. A text
//! with no match shows its first [`FRAGMENT_WORDS`] words.

use std::collections::HashSet;

use rust_stemmers::{Algorithm, Stemmer};

/// Fragments a snippet shows at most.
pub const MAX_FRAGMENTS: usize = 2;
/// Words a fragment shows at most.
pub const FRAGMENT_WORDS: usize = 30;
/// Words shown before a fragment's first match.
const LEAD_WORDS: usize = 4;
const DELIMITER: &str = " … ";
const START: char = '«';
const STOP: char = '»';

/// The query's lexemes, ready to match words against.
pub struct QueryWords {
    lexemes: HashSet<String>,
    /// The lexemes' first one or two characters: a word whose own do not
    /// appear here cannot stem to a lexeme, and is not stemmed (stemming
    /// changes endings; a stem keeps its word's first two letters).
    starts: HashSet<String>,
    stemmer: Stemmer,
}

impl QueryWords {
    /// From the query's lexemes (lower case, as PostgreSQL gives them).
    pub fn new(lexemes: &[String]) -> Self {
        Self {
            lexemes: lexemes.iter().cloned().collect(),
            starts: lexemes.iter().map(|l| start_of(l)).collect(),
            stemmer: Stemmer::create(Algorithm::English),
        }
    }

    /// Whether `word` (letters and digits only) stems to a query lexeme.
    pub fn matches(&self, word: &str) -> bool {
        self.lexeme_of(word).is_some()
    }

    /// The query lexeme `word` (letters and digits only) stems to, if any.
    fn lexeme_of(&self, word: &str) -> Option<&str> {
        if self.lexemes.is_empty() {
            return None;
        }
        let lower = word.to_lowercase();
        let one: String = lower.chars().take(1).collect();
        if !self.starts.contains(start_of(&lower).as_str()) && !self.starts.contains(&one) {
            return None;
        }
        self.lexemes
            .get(lower.as_str())
            .or_else(|| self.lexemes.get(self.stemmer.stem(&lower).as_ref()))
            .map(String::as_str)
    }
}

/// A lexeme's or word's first two characters (one if it has one).
fn start_of(s: &str) -> String {
    s.chars().take(2).collect()
}

/// One word of the text: its byte range and the query lexeme it matched.
struct Word<'q> {
    start: usize,
    end: usize,
    lexeme: Option<&'q str>,
}

impl Word<'_> {
    fn matched(&self) -> bool {
        self.lexeme.is_some()
    }
}

/// The words of `text`: maximal runs of letters and digits.
fn words<'q>(text: &str, query: &'q QueryWords) -> Vec<Word<'q>> {
    let mut out = Vec::new();
    let mut begun: Option<usize> = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), begun) {
            (true, None) => begun = Some(i),
            (false, Some(start)) => {
                out.push(Word {
                    start,
                    end: i,
                    lexeme: query.lexeme_of(&text[start..i]),
                });
                begun = None;
            }
            _ => {}
        }
    }
    out
}

/// The snippet of `text` for `query`.
pub fn snippet(text: &str, query: &QueryWords) -> String {
    let words = words(text, query);
    if words.is_empty() {
        return String::new();
    }
    let fragments = choose(&words);
    let mut out = String::new();
    for (i, (from, to)) in fragments.into_iter().enumerate() {
        if i > 0 {
            out.push_str(DELIMITER);
        }
        show(&mut out, text, &words[from..to]);
    }
    out
}

/// The fragments to show, as word ranges in text order.
fn choose(words: &[Word]) -> Vec<(usize, usize)> {
    let n = words.len();
    // A window of FRAGMENT_WORDS starting a few words before each match.
    let mut candidates: Vec<(usize, usize)> = words
        .iter()
        .enumerate()
        .filter(|(_, w)| w.matched())
        .map(|(p, _)| {
            let end = (p.saturating_sub(LEAD_WORDS) + FRAGMENT_WORDS).min(n);
            (end.saturating_sub(FRAGMENT_WORDS), end)
        })
        .collect();
    candidates.dedup();
    if candidates.is_empty() {
        return vec![(0, n.min(FRAGMENT_WORDS))];
    }
    // The distinct query lexemes a window shows.
    let stems = |(from, to): (usize, usize)| -> HashSet<&str> {
        words[from..to].iter().filter_map(|w| w.lexeme).collect()
    };
    let matches =
        |(from, to): (usize, usize)| words[from..to].iter().filter(|w| w.matched()).count();
    let mut chosen: Vec<(usize, usize)> = Vec::new();
    let mut shown: HashSet<&str> = HashSet::new();
    while chosen.len() < MAX_FRAGMENTS {
        // Most query words not shown yet, then most matches, then earliest.
        let best = candidates
            .iter()
            .copied()
            .filter(|c| chosen.iter().all(|d| c.1 <= d.0 || d.1 <= c.0))
            .map(|c| {
                let s = stems(c);
                let new = s.difference(&shown).count();
                ((new, s.len(), matches(c), std::cmp::Reverse(c.0)), c, s)
            })
            .max_by(|a, b| a.0.cmp(&b.0));
        match best {
            Some(((new, ..), c, s)) if chosen.is_empty() || new > 0 => {
                chosen.push(c);
                shown.extend(s);
            }
            _ => break,
        }
    }
    chosen.sort_unstable();
    chosen
}

/// Appends `words` as they stand in `text` (whitespace runs as one space,
/// with the punctuation that clings to the first and last), matches marked.
fn show(out: &mut String, text: &str, words: &[Word]) {
    let clings = |c: &char| !c.is_whitespace() && !c.is_alphanumeric();
    if let Some(first) = words.first() {
        let before: Vec<char> = text[..first.start]
            .chars()
            .rev()
            .take_while(clings)
            .collect();
        out.extend(before.into_iter().rev());
    }
    let mut last: Option<usize> = None;
    for w in words {
        if let Some(end) = last {
            let mut space = false;
            for c in text[end..w.start].chars() {
                if c.is_whitespace() {
                    space = true;
                } else {
                    if space {
                        out.push(' ');
                        space = false;
                    }
                    out.push(c);
                }
            }
            if space {
                out.push(' ');
            }
        }
        let word = &text[w.start..w.end];
        if w.matched() {
            out.push(START);
            out.push_str(word);
            out.push(STOP);
        } else {
            out.push_str(word);
        }
        last = Some(w.end);
    }
    if let Some(end) = last {
        out.extend(text[end..].chars().take_while(clings));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(lexemes: &[&str]) -> QueryWords {
        QueryWords::new(&lexemes.iter().map(|l| l.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn query_words_are_marked_whatever_their_ending_or_case() {
        let q = query(&["mitochondria", "produc", "energi"]);
        let s = snippet(
            "Mitochondria produce most of the cell's energy.\n\nThey are organelles.",
            &q,
        );
        assert_eq!(
            s,
            "«Mitochondria» «produce» most of the cell's «energy». They are organelles."
        );
    }

    #[test]
    fn a_text_without_a_match_shows_its_beginning() {
        let text: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
        let s = snippet(&text.join(" "), &query(&["absent"]));
        assert_eq!(s, text[..FRAGMENT_WORDS].join(" "));
        assert_eq!(snippet("   ", &query(&["x"])), "");
        assert_eq!(snippet("no lexemes here", &query(&[])), "no lexemes here");
    }

    #[test]
    fn a_fragment_starts_a_few_words_before_its_match() {
        let mut words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        words[60] = "treaty".into();
        let s = snippet(&words.join(" "), &query(&["treati"]));
        assert!(s.starts_with("w56 w57 w58 w59 «treaty» w61"), "{s}");
        assert_eq!(s.split(' ').count(), FRAGMENT_WORDS);
    }

    #[test]
    fn a_second_fragment_shows_query_words_the_first_does_not() {
        let mut words: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        words[10] = "alpha".into();
        words[12] = "alpha".into();
        words[100] = "alpha".into();
        words[150] = "beta".into();
        let s = snippet(&words.join(" "), &query(&["alpha", "beta"]));
        let parts: Vec<&str> = s.split(DELIMITER).collect();
        assert_eq!(parts.len(), 2, "{s}");
        // The first holds two matches of alpha; the second beta, not the
        // lone third alpha: it adds a word not shown yet.
        assert!(parts[0].contains("«alpha» w11 «alpha»"), "{s}");
        assert!(
            parts[1].contains("«beta»") && !parts[1].contains("alpha"),
            "{s}"
        );
    }

    #[test]
    fn one_fragment_when_the_rest_adds_nothing() {
        let mut words: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        words[10] = "alpha".into();
        words[100] = "alpha".into();
        let s = snippet(&words.join(" "), &query(&["alpha"]));
        assert!(!s.contains(DELIMITER), "{s}");
    }

    #[test]
    fn words_of_other_scripts_and_digits_are_words() {
        let q = query(&["2024", "straße"]);
        let s = snippet("In 2024, die Straße (ß) war nass.", &q);
        assert_eq!(s, "In «2024», die «Straße» (ß) war nass.");
    }
}
