//! From placed glyphs to page text: lines, words, columns.
//!
//! 1. Glyphs are grouped into *lines* by baseline (within a third of the
//!    font size) and sorted left to right.
//! 2. A line is cut into *segments* where the gap between two glyphs is
//!    wider than a column gutter (1.5 × font size): two columns of a paper
//!    share baselines but never a segment.
//! 3. Inside a segment a space goes where the gap between glyphs exceeds
//!    0.15 × font size (real word spaces are ~0.25 em; kerning and
//!    tracking stay well below), unless the text already has one. A glyph
//!    drawn twice at the same place (fake bold) is kept once.
//! 4. Columns: when many segments start right of the page's middle, the
//!    page reads as two columns, left column first; otherwise top to bottom.
//! 5. Paragraphs: a blank line goes where the reading order jumps (to the
//!    next column, or back up the page) or where the gap down to the next
//!    line is clearly wider than the page's usual line spacing — what the
//!    chunker cuts at. Lines keep their order; only blank lines are added.

use crate::walker::Placed;

/// Fraction of the font size above which a gap is a word space.
const WORD_GAP: f32 = 0.15;
/// Fraction of the font size above which a gap separates columns.
const COLUMN_GAP: f32 = 1.5;
/// A drop to the next line this many times the usual line spacing (or
/// more) ends a paragraph: a `\parskip`, a space before a heading.
const PARAGRAPH_GAP: f32 = 1.4;
/// Line spacing assumed, per font size, when a page has too few lines to
/// measure its own.
const DEFAULT_LEADING: f32 = 1.2;

struct Segment {
    x: f32,
    x_end: f32,
    /// Baseline of the segment's line.
    y: f32,
    /// Largest glyph size in the segment.
    size: f32,
    /// Column in reading order (0 unless the page reads as two columns).
    column: u8,
    text: String,
}

/// The text of a page whose horizontal extent is `left..right`: upright
/// text first, then each rotated direction (table headers, margin notes).
pub fn page_text(glyphs: Vec<Placed>, left: f32, right: f32) -> String {
    let mut by_dir: [Vec<Placed>; 4] = Default::default();
    for g in glyphs {
        by_dir[usize::from(g.dir & 3)].push(g);
    }
    let [upright, rest @ ..] = by_dir;
    let mut out = direction_text(upright, Some((left, right)));
    for glyphs in rest {
        // Rotated text (labels, margins) is read without columns, as a
        // block of its own.
        let text = direction_text(glyphs, None);
        if !text.is_empty() && !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&text);
    }
    out
}

/// Text of glyphs sharing one baseline direction; `page` (left, right)
/// enables the two-column order.
fn direction_text(mut glyphs: Vec<Placed>, page: Option<(f32, f32)>) -> String {
    if glyphs.is_empty() {
        return String::new();
    }
    // Top to bottom, then left to right.
    glyphs.sort_by(|a, b| b.y.total_cmp(&a.y).then(a.x.total_cmp(&b.x)));
    let mut lines: Vec<Vec<Placed>> = Vec::new();
    for g in glyphs {
        match lines.last_mut() {
            Some(line)
                if line
                    .first()
                    .is_some_and(|f| (f.y - g.y).abs() <= f.size.min(g.size) / 3.0) =>
            {
                line.push(g)
            }
            _ => lines.push(vec![g]),
        }
    }
    let mut segments: Vec<Segment> = Vec::new();
    for mut line in lines {
        let line_y = line.first().map_or(0.0, |g| g.y);
        line.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.seq.cmp(&b.seq)));
        let mut current: Option<Segment> = None;
        let mut prev: Option<&Placed> = None;
        for g in &line {
            if let Some(p) = prev {
                // Fake bold / shadow: the same glyph again at (almost) the same spot.
                if p.text == g.text && (g.x - p.x).abs() < 0.2 * g.size {
                    continue;
                }
            }
            let gap = prev.map(|p| g.x - p.x_end);
            match (&mut current, gap) {
                (Some(seg), Some(gap)) if gap <= COLUMN_GAP * g.size.max(1.0) => {
                    let needs_space = gap > WORD_GAP * g.size
                        && !seg.text.ends_with(' ')
                        && !g.text.starts_with(' ');
                    if needs_space {
                        seg.text.push(' ');
                    }
                    seg.text.push_str(&g.text);
                    seg.x_end = seg.x_end.max(g.x_end);
                    seg.size = seg.size.max(g.size);
                }
                _ => {
                    if let Some(seg) = current.take() {
                        segments.push(seg);
                    }
                    current = Some(Segment {
                        x: g.x,
                        x_end: g.x_end,
                        y: line_y,
                        size: g.size,
                        column: 0,
                        text: g.text.clone(),
                    });
                }
            }
            prev = Some(g);
        }
        if let Some(seg) = current {
            segments.push(seg);
        }
    }
    if let Some((left, right)) = page {
        order_columns(&mut segments, left, right);
    }
    segments.retain(|s| !s.text.trim().is_empty());
    let leading = usual_leading(&segments);
    let mut out = String::new();
    // Breaks are judged against the last line of substance: a footnote
    // mark or a lone symbol between two lines of a paragraph is not one.
    let mut prev: Option<&Segment> = None;
    for s in &segments {
        let tiny = s.text.trim().chars().count() <= 3;
        if let Some(p) = prev {
            if (!tiny || s.column != p.column) && paragraph_break(p, s, leading) {
                out.push('\n');
            }
        }
        out.push_str(s.text.trim());
        out.push('\n');
        if !tiny || prev.is_none() {
            prev = Some(s);
        }
    }
    out
}

/// The page's usual drop from one line to the next: the median of the
/// drops between neighbours in reading order that look like line spacing
/// (under three font sizes), or `None` with too few lines to tell.
fn usual_leading(segments: &[Segment]) -> Option<f32> {
    let mut drops: Vec<f32> = segments
        .windows(2)
        .filter(|w| w[0].column == w[1].column && w[0].text.len() > 3 && w[1].text.len() > 3)
        .map(|w| (w[0].y - w[1].y, w[0].size.max(w[1].size)))
        .filter(|(drop, size)| *drop > 0.3 * size && *drop < 3.0 * size)
        .map(|(drop, _)| drop)
        .collect();
    if drops.len() < 3 {
        return None;
    }
    drops.sort_by(f32::total_cmp);
    Some(drops[drops.len() / 2])
}

/// Whether a paragraph ends between `prev` and `next` (in reading order).
fn paragraph_break(prev: &Segment, next: &Segment, leading: Option<f32>) -> bool {
    if next.column != prev.column {
        return true;
    }
    let drop = prev.y - next.y;
    let size = prev.size.max(next.size);
    // Same line (another cell of a table row), or a sub/superscript.
    if drop.abs() <= 0.3 * size {
        return false;
    }
    // Back up the page: a new block (a side box, a caption, a footnote
    // placed out of order).
    if drop < 0.0 {
        return true;
    }
    // A change of type size between lines: a heading and its text.
    if (prev.size - next.size).abs() > 0.2 * size {
        return true;
    }
    // Larger type than the page's usual needs at least its own size.
    let expected = leading.map_or(DEFAULT_LEADING * size, |l| l.max(size));
    drop > PARAGRAPH_GAP * expected
}

/// Reading order: two columns when enough segments live entirely on each
/// side of the middle; else top to bottom (already the order).
fn order_columns(segments: &mut [Segment], left: f32, right: f32) {
    let mid = (left + right) / 2.0;
    let in_left = segments.iter().filter(|s| s.x_end <= mid + 2.0).count();
    let in_right = segments.iter().filter(|s| s.x >= mid - 2.0).count();
    let n = segments.len();
    if n < 8 || in_left * 4 < n || in_right * 4 < n {
        return;
    }
    for s in segments.iter_mut() {
        s.column = u8::from(s.x >= mid - 2.0);
    }
    // Stable: keeps top-to-bottom inside each column.
    segments.sort_by_key(|s| s.column);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyphs(word_starts: &[(f32, f32, &str)], size: f32, advance: f32) -> Vec<Placed> {
        let mut out = Vec::new();
        let mut seq = 0;
        for (x0, y, word) in word_starts {
            let mut x = *x0;
            for c in word.chars() {
                seq += 1;
                out.push(Placed {
                    x,
                    y: *y,
                    x_end: x + advance,
                    size,
                    text: c.to_string(),
                    seq,
                    dir: 0,
                });
                x += advance;
            }
        }
        out
    }

    #[test]
    fn gaps_become_spaces_and_kerning_does_not() {
        // 10 pt, glyphs 5 wide: a 3-unit gap (0.3 em) is a space.
        let g = glyphs(&[(0.0, 700.0, "word"), (23.0, 700.0, "gap")], 10.0, 5.0);
        assert_eq!(page_text(g, 0.0, 600.0), "word gap\n");
        let g = glyphs(&[(0.0, 700.0, "ke"), (10.5, 700.0, "rn")], 10.0, 5.0);
        assert_eq!(page_text(g, 0.0, 600.0), "kern\n");
    }

    #[test]
    fn lines_go_top_to_bottom_and_fake_bold_counts_once() {
        let mut g = glyphs(&[(0.0, 688.0, "second"), (0.0, 700.0, "first")], 10.0, 5.0);
        g.extend(glyphs(&[(0.3, 700.0, "first")], 10.0, 5.0));
        assert_eq!(page_text(g, 0.0, 600.0), "first\nsecond\n");
    }

    #[test]
    fn a_wider_gap_is_a_blank_line() {
        // 12-unit line spacing; a 24-unit drop before the third line.
        let g = glyphs(
            &[
                (50.0, 700.0, "one"),
                (50.0, 688.0, "two"),
                (50.0, 664.0, "three"),
                (50.0, 652.0, "four"),
                (50.0, 640.0, "five"),
            ],
            10.0,
            5.0,
        );
        assert_eq!(page_text(g, 0.0, 600.0), "one\ntwo\n\nthree\nfour\nfive\n");
    }

    #[test]
    fn a_heading_is_a_paragraph_of_its_own() {
        let mut g = glyphs(&[(50.0, 700.0, "Heading")], 16.0, 8.0);
        g.extend(glyphs(
            &[(50.0, 682.0, "body"), (50.0, 670.0, "text")],
            10.0,
            5.0,
        ));
        assert_eq!(page_text(g, 0.0, 600.0), "Heading\n\nbody\ntext\n");
    }

    #[test]
    fn two_columns_read_left_column_first_with_a_blank_line_between() {
        let mut starts = Vec::new();
        for i in 0..6 {
            let y = 700.0 - 12.0 * i as f32;
            starts.push((50.0, y, "left"));
            starts.push((350.0, y, "right"));
        }
        let text = page_text(glyphs(&starts, 10.0, 5.0), 0.0, 600.0);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(&lines[..6], &["left"; 6]);
        assert_eq!(&lines[6..], &["right"; 6]);
        assert_eq!(text.matches("\n\n").count(), 1, "{text}");
        assert!(text.contains("left\n\nright"), "{text}");
    }
}
