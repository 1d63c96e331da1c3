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

use crate::walker::Placed;

/// Fraction of the font size above which a gap is a word space.
const WORD_GAP: f32 = 0.15;
/// Fraction of the font size above which a gap separates columns.
const COLUMN_GAP: f32 = 1.5;

struct Segment {
    x: f32,
    x_end: f32,
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
        // Rotated text (labels, margins) is read without columns.
        out.push_str(&direction_text(glyphs, None));
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
                }
                _ => {
                    if let Some(seg) = current.take() {
                        segments.push(seg);
                    }
                    current = Some(Segment {
                        x: g.x,
                        x_end: g.x_end,
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
    let mut out = String::new();
    for s in segments {
        let t = s.text.trim();
        if t.is_empty() {
            continue;
        }
        out.push_str(t);
        out.push('\n');
    }
    out
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
    // Stable: keeps top-to-bottom inside each column.
    segments.sort_by_key(|s| u8::from(s.x >= mid - 2.0));
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
        let mut g = glyphs(&[(0.0, 600.0, "second"), (0.0, 700.0, "first")], 10.0, 5.0);
        g.extend(glyphs(&[(0.3, 700.0, "first")], 10.0, 5.0));
        assert_eq!(page_text(g, 0.0, 600.0), "first\nsecond\n");
    }

    #[test]
    fn two_columns_read_left_column_first() {
        let mut starts = Vec::new();
        for i in 0..6 {
            let y = 700.0 - 12.0 * i as f32;
            starts.push((50.0, y, "left"));
            starts.push((350.0, y, "right"));
        }
        let text = page_text(glyphs(&starts, 10.0, 5.0), 0.0, 600.0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(&lines[..6], &["left"; 6]);
        assert_eq!(&lines[6..], &["right"; 6]);
    }
}
