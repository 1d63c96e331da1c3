//! `[n]` markers in an answer that arrives token by token.
//!
//! A model writes its citations into the text (`… ATP [2].`, or `[1, 3]`),
//! and a marker may be split across tokens (`[`, `2`, `]`). The tracker
//! keeps the text so far and reports, for each new piece, the source
//! numbers whose marker was completed by it, so each streamed delta can
//! carry the citations it finished.

/// Accumulates streamed text and finds completed citation markers.
#[derive(Debug, Default, Clone)]
pub struct CitationTracker {
    text: String,
    /// Byte offset up to which markers have been looked for.
    scanned: usize,
    /// Every number cited so far, in order of first appearance.
    cited: Vec<u32>,
    sources: u32,
}

impl CitationTracker {
    /// A tracker for an answer over `sources` sources (numbers 1..=sources
    /// count; others are ignored).
    pub fn new(sources: u32) -> Self {
        Self {
            sources,
            ..Default::default()
        }
    }

    /// Adds a piece of text; returns the valid numbers cited by markers it completed.
    pub fn push(&mut self, piece: &str) -> Vec<u32> {
        self.text.push_str(piece);
        let mut found = Vec::new();
        loop {
            let rest = &self.text[self.scanned..];
            let Some(open) = rest.find('[') else {
                self.scanned = self.text.len();
                break;
            };
            let after = &rest[open + 1..];
            match after.find(']') {
                Some(close) => {
                    let inside = &after[..close];
                    let numbers: Option<Vec<u32>> = inside
                        .split(',')
                        .map(|n| n.trim().parse::<u32>().ok())
                        .collect();
                    for n in numbers.unwrap_or_default() {
                        if (1..=self.sources).contains(&n) {
                            found.push(n);
                            if !self.cited.contains(&n) {
                                self.cited.push(n);
                            }
                        }
                    }
                    self.scanned += open + 1 + close + 1;
                }
                // An unfinished marker: wait for more text, unless it is
                // clearly no marker (too long).
                None if after.len() > 16 => self.scanned += open + 1,
                None => {
                    self.scanned += open;
                    break;
                }
            }
        }
        found
    }

    /// The whole text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every valid number cited, in order of first appearance.
    pub fn cited(&self) -> &[u32] {
        &self.cited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_split_across_tokens_are_reported_once_complete() {
        let mut t = CitationTracker::new(3);
        assert_eq!(t.push("Mitochondria make ATP "), Vec::<u32>::new());
        assert_eq!(t.push("["), Vec::<u32>::new());
        assert_eq!(t.push("2"), Vec::<u32>::new());
        assert_eq!(t.push("]. Ribosomes [1, 3] and"), vec![2, 1, 3]);
        assert_eq!(t.push(" [7] [x] [2]"), vec![2]);
        assert_eq!(t.cited(), &[2, 1, 3]);
        assert_eq!(
            t.text(),
            "Mitochondria make ATP [2]. Ribosomes [1, 3] and [7] [x] [2]"
        );
    }
}
