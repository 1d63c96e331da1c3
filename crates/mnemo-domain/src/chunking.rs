//! Cutting a document's text into chunks an embedding model can take whole.
//!
//! Every chunk must fit the model's maximum sequence length *as the model's
//! own tokenizer counts it, special tokens included* (256 word-pieces for
//! all-MiniLM-L6-v2): a longer chunk would be silently truncated and its end
//! never searchable. The tokenizer is passed in as a [`TokenCounter`], so
//! this module stays pure and is tested with a simple counter.
//!
//! Cuts fall, in order of preference, between paragraphs, between sentences,
//! and — only for a sentence too long on its own — between words. Each chunk
//! remembers the pages its text comes from (for citations), and consecutive
//! chunks share up to `overlap_tokens` — whole sentences when they fit, else
//! the last words of the sentence before the cut — so a fact cut in two is
//! still found. Chunk ids are stable: the same text of the same
//! document at the same position always gets the same id.
//!
//! Memory and time stay bounded by the chunk size, not by the input: no
//! text longer than [`ChunkParams::max_bytes`] is ever given to the
//! tokenizer (a longer sentence is first cut at whitespace, or at a
//! character, into pieces of that size), no chunk's text is longer than
//! that either (tokenizers count an over-long "word" as one unknown
//! token, so tokens alone would not bound it), and splitting sentences
//! looks at each character a bounded number of times.

use sha2::{Digest, Sha256};

/// Counts tokens the way the embedding model will see them.
pub trait TokenCounter {
    /// Tokens of `text` including the model's special tokens ([CLS], [SEP]).
    fn count(&self, text: &str) -> usize;
}

/// How chunks are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// Hard limit: no chunk is longer (the model's max sequence length).
    pub max_tokens: usize,
    /// A chunk that has reached this size ends at the next paragraph break.
    pub target_tokens: usize,
    /// Text repeated from the end of one chunk at the start of the next, up
    /// to this many tokens (whole sentences if any fit, else words).
    pub overlap_tokens: usize,
}

/// Bytes a chunk may hold per token it may hold: far above real text
/// (English runs at 4–6 bytes a token, CJK at ~3), so only input that is
/// not text as the model reads it (one endless "word") meets this limit.
pub const MAX_BYTES_PER_TOKEN: usize = 16;

impl ChunkParams {
    /// The longest text, in bytes, a chunk — or one tokenizer call — may have.
    pub fn max_bytes(&self) -> usize {
        self.max_tokens.saturating_mul(MAX_BYTES_PER_TOKEN)
    }
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            target_tokens: 200,
            overlap_tokens: 32,
        }
    }
}

/// One page of extracted text (pages are numbered from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageText {
    pub number: u32,
    pub text: String,
}

/// A chunk before it gets its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDraft {
    pub ordinal: u32,
    pub text: String,
    pub page_start: u32,
    pub page_end: u32,
    pub tokens: u32,
}

/// Why text could not be chunked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("max_tokens {0} leaves no room for text")]
    NoRoom(usize),
    #[error("the word starting {0:?} alone exceeds max_tokens")]
    WordTooLong(String),
}

/// A piece of text that is never split further by the packer.
#[derive(Debug, Clone)]
struct Unit {
    text: String,
    page: u32,
    /// Starts a paragraph (a preferred place to cut).
    paragraph_start: bool,
    /// Tokens of the text alone (without the model's special tokens).
    tokens: usize,
}

/// Stable chunk id: document, ordinal and a hash of the text.
pub fn chunk_id(document_id: &str, ordinal: u32, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{document_id}-{ordinal:05}-{short}")
}

/// Cuts pages into chunks; see the module docs for the rules.
pub fn chunk_pages(
    pages: &[PageText],
    counter: &impl TokenCounter,
    params: ChunkParams,
) -> Result<Vec<ChunkDraft>, ChunkError> {
    let empty = counter.count("");
    if params.max_tokens <= empty {
        return Err(ChunkError::NoRoom(params.max_tokens));
    }
    let mut units = Vec::new();
    for page in pages {
        for paragraph in paragraphs(&page.text) {
            for (j, sentence) in sentences(&paragraph).into_iter().enumerate() {
                for (p, part) in byte_pieces(&sentence, params.max_bytes())
                    .into_iter()
                    .enumerate()
                {
                    for (k, piece) in fit(part, counter, params.max_tokens)?
                        .into_iter()
                        .enumerate()
                    {
                        let tokens = counter.count(&piece).saturating_sub(empty);
                        units.push(Unit {
                            text: piece,
                            page: page.number,
                            paragraph_start: j == 0 && p == 0 && k == 0,
                            tokens,
                        });
                    }
                }
            }
        }
    }
    Ok(pack(&units, counter, params))
}

/// Paragraphs: separated by blank lines; lines inside one are joined, and a
/// word hyphenated across a line break is rejoined.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if current.ends_with('-')
            && current
                .chars()
                .rev()
                .nth(1)
                .is_some_and(char::is_alphabetic)
            && line.chars().next().is_some_and(char::is_lowercase)
        {
            current.pop();
        } else if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Sentences: a `.`, `!` or `?` (optionally followed by closing quotes or
/// brackets) then whitespace then an uppercase letter, digit or opening
/// quote. Single capital letters before the dot ("J. Smith") and a few common
/// abbreviations do not end a sentence. Works on byte offsets (no copy of
/// the paragraph), and looks back at most a few bytes for the word before
/// a dot, so a paragraph of any length is split in linear time.
fn sentences(paragraph: &str) -> Vec<String> {
    const ABBREVIATIONS: [&str; 12] = [
        "e.g.", "i.e.", "etc.", "vs.", "Fig.", "fig.", "al.", "Dr.", "Mr.", "Mrs.", "No.", "cf.",
    ];
    /// Longer than any abbreviation above: a word before a dot is looked
    /// for within this many bytes.
    const WORD_WINDOW: usize = 8;
    let next_char = |at: usize| paragraph.get(at..).and_then(|rest| rest.chars().next());
    let skip = |mut at: usize, keep: &dyn Fn(char) -> bool| {
        while let Some(c) = next_char(at).filter(|&c| keep(c)) {
            at += c.len_utf8();
        }
        at
    };
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(c) = next_char(i) {
        let pos = i;
        i += c.len_utf8();
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let j = skip(i, &|d| matches!(d, '"' | '\'' | ')' | ']' | '”' | '’'));
        let spaced = next_char(j).is_some_and(char::is_whitespace);
        let k = skip(j, &|d| d.is_whitespace());
        let next_starts = next_char(k).is_some_and(|d| {
            d.is_uppercase() || d.is_ascii_digit() || matches!(d, '"' | '“' | '(' | '[')
        });
        let mut window = pos.saturating_sub(WORD_WINDOW);
        while !paragraph.is_char_boundary(window) {
            window += 1;
        }
        // The word ending at the dot, if it starts within the window.
        let word_start = match paragraph[window..pos].rfind(char::is_whitespace) {
            Some(w) => Some(window + w + 1),
            None if window == 0 => Some(0),
            None => None,
        };
        let word = word_start.map(|w| &paragraph[w..pos + c.len_utf8()]);
        let initial =
            word.is_some_and(|w| w.len() == 2 && w.chars().next().is_some_and(char::is_uppercase));
        let abbreviation =
            c == '.' && (initial || word.is_some_and(|w| ABBREVIATIONS.contains(&w)));
        if spaced && next_starts && !abbreviation {
            out.push(paragraph[start..j].trim().to_owned());
            start = k;
            i = k;
        }
    }
    let rest = paragraph[start..].trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// Pieces of `text` of at most `max` bytes, cut at the last whitespace
/// before the limit, else at a character boundary: what is longer than a
/// chunk can hold is never tokenized whole.
fn byte_pieces(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while rest.len() > max {
        let mut cut = max;
        while cut > 0 && !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            // `max` is smaller than one character: take the character.
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        // A word ending exactly at the limit stays whole.
        let at = if rest[cut..].starts_with(char::is_whitespace) {
            cut
        } else {
            rest[..cut]
                .rfind(char::is_whitespace)
                .filter(|&w| w > 0)
                .unwrap_or(cut)
        };
        out.push(rest[..at].trim_end());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Splits a sentence that is too long on its own at word boundaries.
///
/// Words are counted once each (WordPiece splits on whitespace before it
/// splits words, so a text's tokens are the sum of its words'), which keeps
/// this linear in the sentence; every piece is then checked with one exact
/// count and halved again in the rare case a tokenizer is not additive.
fn fit(sentence: &str, counter: &impl TokenCounter, max: usize) -> Result<Vec<String>, ChunkError> {
    if counter.count(sentence) <= max {
        return Ok(vec![sentence.to_owned()]);
    }
    let specials = counter.count("");
    let mut pieces = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut tokens = specials;
    for word in sentence.split_whitespace() {
        let t = counter.count(word).saturating_sub(specials);
        if t + specials > max {
            // One "word" longer than a chunk (e.g. a base64 blob): cut it
            // by characters rather than fail the document.
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current).join(" "));
                tokens = specials;
            }
            pieces.extend(split_long_word(word, counter, max)?);
            continue;
        }
        if tokens + t > max && !current.is_empty() {
            pieces.push(std::mem::take(&mut current).join(" "));
            tokens = specials;
        }
        current.push(word);
        tokens += t;
    }
    if !current.is_empty() {
        pieces.push(current.join(" "));
    }
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        halve_until_it_fits(piece, counter, max, &mut out);
    }
    Ok(out)
}

/// Pushes `piece`, or its halves (by words) until each fits `max`.
fn halve_until_it_fits(
    piece: String,
    counter: &impl TokenCounter,
    max: usize,
    out: &mut Vec<String>,
) {
    let words: Vec<&str> = piece.split_whitespace().collect();
    if words.len() < 2 || counter.count(&piece) <= max {
        out.push(piece);
        return;
    }
    let mid = words.len() / 2;
    halve_until_it_fits(words[..mid].join(" "), counter, max, out);
    halve_until_it_fits(words[mid..].join(" "), counter, max, out);
}

/// Cuts one over-long word into the longest prefixes that fit (found by
/// binary search, so a long blob costs a few counts per piece).
fn split_long_word(
    word: &str,
    counter: &impl TokenCounter,
    max: usize,
) -> Result<Vec<String>, ChunkError> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let piece = |end: usize| chars[start..end].iter().collect::<String>();
        // Largest end with piece(end) fitting; at least one character must.
        let (mut lo, mut hi) = (start, chars.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if counter.count(&piece(mid)) <= max {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo == start {
            return Err(ChunkError::WordTooLong(word.chars().take(20).collect()));
        }
        out.push(piece(lo));
        start = lo;
    }
    Ok(out)
}

/// The last words of `unit` that fit `budget` tokens: the overlap carried
/// into the next chunk when not even one whole sentence fits the budget.
fn tail(unit: &Unit, counter: &impl TokenCounter, budget: usize) -> Option<Unit> {
    let specials = counter.count("");
    let mut words: Vec<&str> = Vec::new();
    let mut tokens = 0;
    for word in unit.text.split_whitespace().rev() {
        let t = counter.count(word).saturating_sub(specials);
        if tokens + t > budget {
            break;
        }
        tokens += t;
        words.push(word);
    }
    // A tail as long as the unit is the unit: whole units were tried first.
    if words.is_empty() || tokens >= unit.tokens {
        return None;
    }
    words.reverse();
    Some(Unit {
        text: words.join(" "),
        page: unit.page,
        paragraph_start: false,
        tokens,
    })
}

/// Greedy packing of units into chunks, with overlap: whole trailing
/// sentences when they fit the overlap budget, else the last words of the
/// last sentence.
fn pack(units: &[Unit], counter: &impl TokenCounter, params: ChunkParams) -> Vec<ChunkDraft> {
    let mut chunks: Vec<ChunkDraft> = Vec::new();
    let mut start = 0;
    let specials = counter.count("");
    let max_bytes = params.max_bytes();
    // Words repeated from the end of the previous chunk.
    let mut carry: Option<Unit> = None;
    while start < units.len() {
        if carry.as_ref().is_some_and(|c| {
            specials + c.tokens + units[start].tokens > params.max_tokens
                || c.text.len() + 1 + units[start].text.len() > max_bytes
        }) {
            carry = None;
        }
        // Grow [start, end) while the joined text fits. Units are counted
        // once: for WordPiece (the pre-tokenizer splits on whitespace
        // first) the tokens of "a b" are those of "a" plus those of "b",
        // so the sum is exact; re-encoding every candidate would make
        // chunking quadratic in the sentences per chunk.
        let mut end = start + 1;
        let mut tokens = specials + carry.as_ref().map_or(0, |c| c.tokens) + units[start].tokens;
        let mut bytes = carry.as_ref().map_or(0, |c| c.text.len() + 1) + units[start].text.len();
        while end < units.len() {
            if tokens >= params.target_tokens && units[end].paragraph_start {
                break;
            }
            let candidate = tokens + units[end].tokens;
            let longer = bytes + 1 + units[end].text.len();
            if candidate > params.max_tokens || longer > max_bytes {
                break;
            }
            tokens = candidate;
            bytes = longer;
            end += 1;
        }
        // The guarantee is checked on the real text: a tokenizer that is
        // not additive makes the chunk shorter, never longer than allowed.
        let (text, exact) = loop {
            let mut parts: Vec<&str> = carry.iter().map(|c| c.text.as_str()).collect();
            parts.extend(units[start..end].iter().map(|u| u.text.as_str()));
            let text = parts.join(" ");
            let exact = counter.count(&text);
            if exact <= params.max_tokens || (end == start + 1 && carry.is_none()) {
                break (text, exact);
            }
            if end > start + 1 {
                end -= 1;
            } else {
                carry = None;
            }
        };
        let piece = &units[start..end];
        let pages = piece.iter().chain(carry.iter()).map(|u| u.page);
        chunks.push(ChunkDraft {
            ordinal: chunks.len() as u32,
            tokens: exact as u32,
            page_start: pages.clone().min().unwrap_or(1),
            page_end: pages.max().unwrap_or(1),
            text,
        });
        if end >= units.len() {
            break;
        }
        // Overlap: step back over whole trailing units that fit the budget,
        // but always move forward by at least one unit.
        let mut next = end;
        let mut overlap = 0;
        while next > start + 1 {
            let t = units[next - 1].tokens;
            if overlap + t > params.overlap_tokens {
                break;
            }
            overlap += t;
            next -= 1;
        }
        carry = if next == end && params.overlap_tokens > 0 {
            tail(&units[end - 1], counter, params.overlap_tokens)
        } else {
            None
        };
        start = next;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word, plus [CLS] and [SEP].
    struct Words;
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count() + 2
        }
    }

    fn page(number: u32, text: &str) -> PageText {
        PageText {
            number,
            text: text.to_owned(),
        }
    }

    /// A tokenizer that is not additive: every space costs a token too.
    struct Joints;

    impl TokenCounter for Joints {
        fn count(&self, text: &str) -> usize {
            let words = text.split_whitespace().count();
            words + words.saturating_sub(1) + 2
        }
    }

    #[test]
    fn a_non_additive_tokenizer_still_never_overflows() {
        let text = "One two three. Four five six. Seven eight nine. Ten eleven twelve.";
        let chunks = chunk_pages(&[page(1, text)], &Joints, params(12, 12, 0)).unwrap();
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(Joints.count(&c.text) <= 12, "{} is too long", c.text);
            assert_eq!(c.tokens as usize, Joints.count(&c.text));
        }
    }

    fn params(max: usize, target: usize, overlap: usize) -> ChunkParams {
        ChunkParams {
            max_tokens: max,
            target_tokens: target,
            overlap_tokens: overlap,
        }
    }

    #[test]
    fn sentences_split_at_real_ends_only() {
        let s = sentences("Cells divide. Dr. Smith et al. showed it in Fig. 2, e.g. in yeast. J. Watson agreed! Did he? \"Yes.\" Then 3 more.");
        assert_eq!(
            s,
            vec![
                "Cells divide.",
                "Dr. Smith et al. showed it in Fig. 2, e.g. in yeast.",
                "J. Watson agreed!",
                "Did he?",
                "\"Yes.\"",
                "Then 3 more."
            ]
        );
    }

    #[test]
    fn paragraphs_join_lines_and_hyphenation() {
        let p = paragraphs("The mito-\nchondria make\nATP.\n\nSecond para-\nGraph stays.");
        assert_eq!(
            p,
            vec!["The mitochondria make ATP.", "Second para- Graph stays."]
        );
    }

    #[test]
    fn no_chunk_exceeds_the_limit_and_nothing_is_lost() {
        let text = (0..200)
            .map(|i| format!("Sentence number {i} says something about cells."))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunk_pages(&[page(1, &text)], &Words, params(40, 30, 0)).unwrap();
        assert!(chunks.len() > 10);
        for c in &chunks {
            assert!(Words.count(&c.text) <= 40, "{}", c.text);
            assert_eq!(c.tokens as usize, Words.count(&c.text));
        }
        // Without overlap, the chunks are exactly the words of the text.
        let rejoined: Vec<&str> = chunks
            .iter()
            .flat_map(|c| c.text.split_whitespace())
            .collect();
        let original: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(rejoined, original);
        assert!(chunks.windows(2).all(|w| w[1].ordinal == w[0].ordinal + 1));
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_split_at_words() {
        let long = vec!["word"; 100].join(" ") + ".";
        let chunks = chunk_pages(&[page(1, &long)], &Words, params(30, 20, 0)).unwrap();
        assert!(chunks.iter().all(|c| Words.count(&c.text) <= 30));
        assert_eq!(
            chunks
                .iter()
                .map(|c| c.text.split_whitespace().count())
                .sum::<usize>(),
            100
        );
    }

    #[test]
    fn chunks_prefer_paragraph_breaks_once_big_enough() {
        let p1 = ["Alpha beta gamma delta."; 4].join(" ");
        let p2 = "Second paragraph starts here.";
        let chunks = chunk_pages(
            &[page(1, &format!("{p1}\n\n{p2}"))],
            &Words,
            params(100, 10, 0),
        )
        .unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].text, p2);
    }

    #[test]
    fn page_spans_follow_the_text_and_overlap_repeats_whole_sentences() {
        let pages = [
            page(1, "One two three. Four five six."),
            page(2, "Seven eight nine. Ten eleven twelve."),
            page(3, "Thirteen fourteen fifteen."),
        ];
        let chunks = chunk_pages(&pages, &Words, params(11, 11, 4)).unwrap();
        assert_eq!((chunks[0].page_start, chunks[0].page_end), (1, 2));
        assert_eq!(
            chunks[0].text,
            "One two three. Four five six. Seven eight nine."
        );
        // The next chunk starts with the last sentence of the previous one.
        assert!(
            chunks[1].text.starts_with("Seven eight nine."),
            "{}",
            chunks[1].text
        );
        assert_eq!((chunks[1].page_start, chunks[1].page_end), (2, 3));
        assert!(chunks.iter().all(|c| Words.count(&c.text) <= 11));
    }

    #[test]
    fn long_sentences_still_overlap_by_their_last_words() {
        // Sentences of 20 words against an overlap budget of 5 tokens.
        let text = (0..6)
            .map(|i| format!("{} end{i}.", vec![format!("w{i}"); 19].join(" ")))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunk_pages(&[page(1, &text)], &Words, params(50, 50, 5)).unwrap();
        assert!(chunks.len() >= 3);
        for w in chunks.windows(2) {
            let prev: Vec<&str> = w[0].text.split_whitespace().collect();
            let next: Vec<&str> = w[1].text.split_whitespace().collect();
            assert_eq!(
                &next[..5],
                &prev[prev.len() - 5..],
                "{} | {}",
                w[0].text,
                w[1].text
            );
        }
        assert!(chunks.iter().all(|c| Words.count(&c.text) <= 50));
        // Every word of the text is in some chunk, in order.
        let last = chunks.last().unwrap();
        assert!(last.text.ends_with("end5."), "{}", last.text);
    }

    #[test]
    fn a_long_blob_is_cut_into_pieces_that_fit() {
        /// One token per 3 characters of each word, plus two specials.
        struct Chars;
        impl TokenCounter for Chars {
            fn count(&self, text: &str) -> usize {
                text.split_whitespace()
                    .map(|w| w.len().div_ceil(3))
                    .sum::<usize>()
                    + 2
            }
        }
        let blob = "x".repeat(1000);
        let chunks = chunk_pages(
            &[page(1, &format!("Intro. {blob} Outro."))],
            &Chars,
            params(20, 20, 0),
        )
        .unwrap();
        assert!(chunks.iter().all(|c| Chars.count(&c.text) <= 20));
        let xs: usize = chunks.iter().map(|c| c.text.matches('x').count()).sum();
        assert_eq!(xs, 1000, "nothing of the blob is lost");
    }

    #[test]
    fn a_non_additive_tokenizer_never_overflows_inside_a_long_sentence() {
        let long = vec!["word"; 60].join(" ") + ".";
        let chunks = chunk_pages(&[page(1, &long)], &Joints, params(15, 15, 0)).unwrap();
        assert!(chunks.iter().all(|c| Joints.count(&c.text) <= 15));
        let words: usize = chunks
            .iter()
            .map(|c| c.text.split_whitespace().count())
            .sum();
        assert_eq!(words, 60);
    }

    #[test]
    fn chunk_ids_are_stable_and_distinct() {
        let a = chunk_id("doc", 0, "text");
        assert_eq!(a, chunk_id("doc", 0, "text"));
        assert_ne!(a, chunk_id("doc", 1, "text"));
        assert_ne!(a, chunk_id("doc", 0, "other"));
        assert_ne!(a, chunk_id("doc2", 0, "text"));
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn empty_text_gives_no_chunks_and_no_room_is_an_error() {
        assert!(
            chunk_pages(&[page(1, "  \n\n ")], &Words, ChunkParams::default())
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            chunk_pages(&[page(1, "x")], &Words, params(2, 2, 0)),
            Err(ChunkError::NoRoom(2))
        );
    }

    /// Counts like BERT's WordPiece does for text it cannot read: a word
    /// over 100 characters is one unknown token. Refuses (panics) to be
    /// asked about more than `limit` bytes at once.
    struct Bounded {
        limit: usize,
    }
    impl TokenCounter for Bounded {
        fn count(&self, text: &str) -> usize {
            assert!(
                text.len() <= self.limit,
                "tokenized {} bytes at once (limit {})",
                text.len(),
                self.limit
            );
            2 + text
                .split_whitespace()
                .map(|w| {
                    if w.chars().count() > 100 {
                        1
                    } else {
                        w.len().div_ceil(4)
                    }
                })
                .sum::<usize>()
        }
    }

    #[test]
    fn pathological_text_is_cut_without_ever_tokenizing_more_than_a_chunk() {
        let params = params(64, 48, 8);
        let counter = Bounded {
            limit: params.max_bytes(),
        };
        let inputs = [
            // One endless word, no break of any kind.
            "x".repeat(300_000),
            // One endless sentence of ordinary words.
            "word ".repeat(60_000),
            // Dots everywhere and no whitespace (the word-before-a-dot
            // look-back must stay short).
            "a.".repeat(150_000),
            // Multi-byte characters with no break.
            "é".repeat(100_000),
        ];
        for text in inputs {
            let chunks = chunk_pages(&[page(1, &text)], &counter, params).unwrap();
            assert!(!chunks.is_empty());
            for c in &chunks {
                assert!(c.text.len() <= params.max_bytes(), "{} bytes", c.text.len());
                assert!(c.tokens as usize <= params.max_tokens);
            }
            // Nothing is lost: every character of the input is in a chunk
            // (overlap may repeat some).
            let kept: usize = chunks
                .iter()
                .map(|c| c.text.split_whitespace().map(str::len).sum::<usize>())
                .sum();
            let input: usize = text.split_whitespace().map(str::len).sum();
            assert!(kept >= input, "{kept} < {input}");
        }
    }

    #[test]
    fn byte_pieces_cut_at_whitespace_and_character_boundaries() {
        assert_eq!(byte_pieces("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
        assert_eq!(byte_pieces("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(byte_pieces("ééé", 3), vec!["é", "é", "é"]);
        assert_eq!(byte_pieces("  short  ", 64), vec!["short"]);
        assert!(byte_pieces("   ", 4).is_empty());
    }
}
