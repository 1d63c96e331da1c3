//! Sentences and words of chunk text, as both the card generator and the
//! extractive answerer read them.
//!
//! Chunk text is the chunker's: paragraphs joined by single spaces, so a
//! sentence ends at `.`, `!` or `?` (or `:`/`;` never) followed by a space
//! and an upper-case letter, a digit or a quote. Abbreviations such as
//! "e.g." and "Dr." do not end one.

/// A sentence of a text, with its byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence<'a> {
    pub text: &'a str,
    pub start: usize,
}

const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "dr", "mr", "mrs", "ms", "prof", "st", "vs", "fig", "eq", "no", "vol",
    "cf", "al", "approx", "ca",
];

/// The sentences of `text`, trimmed, in order (markdown heading markers and
/// list bullets at their start removed).
pub fn sentences(text: &str) -> Vec<Sentence<'_>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if matches!(b, b'.' | b'!' | b'?') && ends_sentence(text, i) {
            push(&mut out, text, start, i + 1);
            start = i + 1;
        }
        i += 1;
    }
    push(&mut out, text, start, text.len());
    out
}

fn ends_sentence(text: &str, at: usize) -> bool {
    let rest = &text[at + 1..];
    // Closing quotes or brackets belong to the sentence.
    let rest = rest.trim_start_matches(['"', '\'', ')', ']', '”', '’']);
    let Some(after) = rest.strip_prefix(char::is_whitespace) else {
        return rest.is_empty();
    };
    let next = after.trim_start().chars().next();
    if !next.is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || "\"'“‘(#*-".contains(c))
    {
        return false;
    }
    if text.as_bytes()[at] != b'.' {
        return true;
    }
    // "e.g." / "Dr." / a single initial ("J. Smith") do not end a sentence.
    let word = text[..at]
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_lowercase();
    !(ABBREVIATIONS.contains(&word.as_str())
        || (word.chars().count() == 1 && word.chars().all(char::is_alphabetic)))
}

fn push<'a>(out: &mut Vec<Sentence<'a>>, text: &'a str, start: usize, end: usize) {
    let raw = &text[start..end];
    let lead = raw.len() - raw.trim_start().len();
    let mut s = raw.trim();
    let mut offset = start + lead;
    // Markdown heading markers and bullets are layout, not words.
    loop {
        let trimmed = s
            .trim_start_matches('#')
            .trim_start_matches(['*', '-', '•', '>'])
            .trim_start();
        if trimmed.len() == s.len() {
            break;
        }
        offset += s.len() - trimmed.len();
        s = trimmed;
    }
    // A heading joined to the paragraph under it that opens with the same
    // words ("Spaced repetition Spaced repetition is …"): keep the prose.
    let skip = repeated_opening(s);
    offset += skip;
    s = &s[skip..];
    if s.chars().any(char::is_alphanumeric) {
        out.push(Sentence {
            text: s,
            start: offset,
        });
    }
}

/// Bytes to skip when `s` opens with a run of 1..=8 words repeated at once
/// (the second copy stays); 0 otherwise.
fn repeated_opening(s: &str) -> usize {
    let words: Vec<(usize, &str)> = s
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - s.as_ptr() as usize, w))
        .take(17)
        .collect();
    (1..=8)
        .rev()
        .find(|&k| words.len() > 2 * k && (0..k).all(|i| words[i].1 == words[k + i].1))
        .map_or(0, |k| words[k].0)
}

/// Lower-case words (letters and digits; inner hyphens and apostrophes kept).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
        .map(|w| w.trim_matches(['-', '\'']))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// Content terms: words that are not stop words, crudely stemmed, so
/// "proteins" matches "protein" and "produces" matches "produce".
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop_word(w))
        .map(|w| stem(&w))
        .collect()
}

/// A light suffix stripper (plural and verb endings); enough to match a
/// question's words with a passage's, not a linguistic stemmer.
pub fn stem(word: &str) -> String {
    let w = word.strip_suffix("'s").unwrap_or(word);
    for (suffix, keep) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("es", "e"),
        ("s", ""),
    ] {
        if let Some(base) = w.strip_suffix(suffix) {
            if base.chars().count() >= 3 && !(suffix == "s" && base.ends_with('s')) {
                return format!("{base}{keep}");
            }
        }
    }
    w.to_owned()
}

const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "between", "both", "but", "by", "can",
    "could", "define", "describe", "did", "do", "does", "doing", "down", "during", "each",
    "explain", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her",
    "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself",
    "just", "many", "may", "me", "might", "more", "most", "much", "must", "my", "no", "nor", "not",
    "now", "of", "off", "on", "once", "one", "only", "or", "other", "our", "ours", "out", "over",
    "own", "same", "shall", "she", "should", "so", "some", "such", "tell", "than", "that", "the",
    "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
];

pub fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOP_WORDS);
    }

    #[test]
    fn a_heading_repeated_by_its_paragraph_is_dropped() {
        let t = "# Spaced repetition Spaced repetition is a technique. Very very good idea.";
        let s: Vec<&str> = sentences(t).iter().map(|s| s.text).collect();
        assert_eq!(
            s,
            vec!["Spaced repetition is a technique.", "Very very good idea."]
        );
        for s in sentences(t) {
            assert_eq!(&t[s.start..s.start + s.text.len()], s.text);
        }
    }

    #[test]
    fn sentences_end_at_punctuation_before_a_capital_not_at_abbreviations() {
        let t =
            "# Cells Mitochondria make ATP, e.g. in muscle. Dr. Smith said so! Is it? 3 more. end";
        let s: Vec<&str> = sentences(t).iter().map(|s| s.text).collect();
        assert_eq!(
            s,
            vec![
                "Cells Mitochondria make ATP, e.g. in muscle.",
                "Dr. Smith said so!",
                "Is it?",
                "3 more. end"
            ]
        );
        for s in sentences(t) {
            assert_eq!(&t[s.start..s.start + s.text.len()], s.text);
        }
    }

    #[test]
    fn terms_drop_stop_words_and_match_inflections() {
        assert_eq!(
            terms("What do the ribosomes produce? Proteins!"),
            vec!["ribosome", "produce", "protein"]
        );
        assert_eq!(stem("produces"), "produce");
        assert_eq!(stem("studies"), "study");
        assert_eq!(stem("glass"), "glass");
        assert_eq!(stem("cell's"), "cell");
    }
}
