//! Fonts: from the bytes of a text-showing string to characters and their
//! advance widths.
//!
//! The order of trust, as in every serious extractor:
//! 1. the font's `ToUnicode` CMap (simple and composite fonts);
//! 2. for simple fonts, the `Encoding`'s `Differences` (glyph names through
//!    the Adobe Glyph List, plus `uniXXXX` / `uXXXX[XX]` names), then its
//!    base encoding (WinAnsi, MacRoman, Standard, Symbol, ZapfDingbats),
//!    then the font's built-in choice (Standard for Type 1, WinAnsi for
//!    TrueType);
//! 3. for composite (Type0) fonts without `ToUnicode`, the code itself when
//!    it is printable (Identity-H with Unicode-ordered CIDs is common).
//!
//! Codes are one byte in simple fonts and two bytes in Type0 fonts (the
//! Identity-H/V CMaps; other predefined CMaps are rare in study material and
//! are read the same way). Widths come from `Widths`/`FirstChar` or the CID
//! `W` array, in thousandths of the text size; for Type 3 fonts (which
//! pdf-rs gives no widths) from their own `Widths` in glyph space, times
//! the `FontMatrix`, and the glyph size from those widths too (their
//! `FontBBox` is often a placeholder).

use std::collections::HashMap;

use pdf::encoding::BaseEncoding;
use pdf::font::{Font, FontData, FontType, ToUnicodeMap};
use pdf::object::Resolve;
use pdf::primitive::Primitive;
use pdf_encoding::{glyphname_to_unicode, Encoding as BuiltIn, ForwardMap};

/// One glyph shown: its text (may be several characters, e.g. a ligature
/// expanded, or empty for an unmapped code) and its advance in text-space
/// units per 1 of font size (i.e. width / 1000 for most fonts).
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    pub text: String,
    pub advance: f32,
    /// The single-byte code 32: word spacing (`Tw`) applies to it.
    pub is_space_code: bool,
}

/// A font ready to decode strings.
pub struct FontDecoder {
    two_byte: bool,
    to_unicode: Option<ToUnicodeMap>,
    /// Simple fonts: code → text from Differences or the base encoding.
    simple: Vec<Option<String>>,
    widths: Option<WidthTable>,
    /// Glyph-space to text-space scale for widths (Type3 `FontMatrix`).
    width_scale: f32,
    /// Width used when a code has none (average Latin glyph).
    default_advance: f32,
    /// Glyph size relative to the font size (1 except Type 3 fonts, whose
    /// `FontMatrix` may scale glyphs up or down).
    size_scale: f32,
}

impl FontDecoder {
    /// Builds the decoder; never fails (a broken part of a font only loses
    /// its own information).
    pub fn new(font: &Font, resolve: &impl Resolve) -> Self {
        let two_byte = matches!(font.data, FontData::Type0(_));
        let to_unicode = font.to_unicode(resolve).and_then(Result::ok).or_else(|| {
            // Type0: the ToUnicode may sit on the descendant font.
            match &font.data {
                FontData::Type0(t0) => t0
                    .descendant_fonts
                    .first()
                    .and_then(|d| d.to_unicode(resolve))
                    .and_then(Result::ok),
                _ => None,
            }
        });
        let simple = if two_byte {
            Vec::new()
        } else {
            simple_table(font)
        };
        let (widths, width_scale, size_scale) = if matches!(font.subtype, FontType::Type3) {
            let (a, d) = type3_matrix(font, resolve);
            // pdf-rs reads no widths for Type 3 fonts: ours, in glyph space.
            let widths = type3_widths(font, resolve);
            // The em in glyph space, estimated from the widths (an average
            // glyph is about half an em; FontBBox is often a placeholder
            // such as [0 0 1000 1000] for a font of 40-unit glyphs), and
            // brought to text space through the FontMatrix like the widths.
            let em = widths
                .as_ref()
                .and_then(WidthTable::median)
                .map(|m| 2.0 * m)
                .or_else(|| type3_bbox_height(font, resolve));
            let size = em.map(|e| e * d).unwrap_or(1.0);
            (widths, a, size.clamp(0.05, 20.0))
        } else {
            let widths = font.widths(resolve).ok().flatten().map(WidthTable::Pdf);
            (widths, 0.001, 1.0)
        };
        let default_advance = 0.5 * size_scale;
        Self {
            two_byte,
            to_unicode,
            simple,
            widths,
            width_scale,
            default_advance,
            size_scale,
        }
    }

    /// Glyph size relative to the font size set with `Tf`.
    pub fn size_scale(&self) -> f32 {
        self.size_scale
    }

    /// Decodes a string's bytes into glyphs.
    pub fn decode(&self, bytes: &[u8]) -> Vec<Glyph> {
        let mut out = Vec::with_capacity(bytes.len());
        if self.two_byte {
            for pair in bytes.chunks(2) {
                let code = match pair {
                    [hi, lo] => u16::from(*hi) << 8 | u16::from(*lo),
                    [b] => u16::from(*b),
                    _ => continue,
                };
                let text = match self.to_unicode.as_ref().and_then(|m| m.get(code)) {
                    Some(t) => clean(t),
                    None => char::from_u32(u32::from(code))
                        .filter(|c| !c.is_control() && !is_private(*c))
                        .map(String::from)
                        .unwrap_or_default(),
                };
                out.push(Glyph {
                    text,
                    advance: self.advance(u32::from(code)),
                    is_space_code: false,
                });
            }
        } else {
            for &b in bytes {
                let text = match self.to_unicode.as_ref().and_then(|m| m.get(u16::from(b))) {
                    Some(t) => clean(t),
                    None => self
                        .simple
                        .get(usize::from(b))
                        .cloned()
                        .flatten()
                        .unwrap_or_default(),
                };
                out.push(Glyph {
                    text,
                    advance: self.advance(u32::from(b)),
                    is_space_code: b == 32,
                });
            }
        }
        out
    }

    fn advance(&self, code: u32) -> f32 {
        match &self.widths {
            Some(w) => {
                let v = w.get(code);
                if v > 0.0 {
                    v * self.width_scale
                } else {
                    self.default_advance
                }
            }
            None => self.default_advance,
        }
    }
}

/// Text of a mapped code, with ligatures spelled out and controls dropped.
fn clean(t: &str) -> String {
    let mut s = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '\u{FB00}' => s.push_str("ff"),
            '\u{FB01}' => s.push_str("fi"),
            '\u{FB02}' => s.push_str("fl"),
            '\u{FB03}' => s.push_str("ffi"),
            '\u{FB04}' => s.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => s.push_str("st"),
            '\u{00A0}' => s.push(' '),
            '\u{00AD}' => s.push('-'),
            c if c.is_control() || c == '\u{FFFD}' => {}
            c => s.push(c),
        }
    }
    s
}

fn is_private(c: char) -> bool {
    ('\u{E000}'..='\u{F8FF}').contains(&c)
}

/// A glyph name as text: the Adobe Glyph List, `uniXXXX`, `uXXXX`, or
/// well-known suffixed names (`a.sc`, `f_i`).
pub fn glyph_name_text(name: &str) -> Option<String> {
    if let Some(u) = glyphname_to_unicode(name) {
        return Some(clean(u));
    }
    if let Some(hex) = name.strip_prefix("uni") {
        if hex.len() >= 4 && hex.len() % 4 == 0 {
            let mut s = String::new();
            for i in (0..hex.len()).step_by(4) {
                let c = u32::from_str_radix(hex.get(i..i + 4)?, 16)
                    .ok()
                    .and_then(char::from_u32)?;
                s.push(c);
            }
            return Some(clean(&s));
        }
    }
    if let Some(hex) = name.strip_prefix('u') {
        if (4..=6).contains(&hex.len()) {
            if let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                return Some(clean(&c.to_string()));
            }
        }
    }
    // `a.sc`, `one.oldstyle`: the part before the dot; `f_i`: the parts.
    if let Some((base, _)) = name.split_once('.') {
        if !base.is_empty() {
            return glyph_name_text(base);
        }
    }
    if name.contains('_') {
        let parts: Option<Vec<String>> = name.split('_').map(glyph_name_text).collect();
        return parts.map(|p| p.concat());
    }
    None
}

fn builtin(base: &BaseEncoding) -> Option<&'static ForwardMap> {
    let e = match base {
        BaseEncoding::StandardEncoding => BuiltIn::AdobeStandard,
        BaseEncoding::SymbolEncoding => BuiltIn::AdobeSymbol,
        BaseEncoding::MacRomanEncoding => BuiltIn::MacRomanEncoding,
        BaseEncoding::WinAnsiEncoding => BuiltIn::WinAnsiEncoding,
        BaseEncoding::MacExpertEncoding => BuiltIn::AdobeExpert,
        _ => return None,
    };
    e.forward_map()
}

/// Code → text for a simple font.
fn simple_table(font: &Font) -> Vec<Option<String>> {
    let base_name = font.name.as_ref().map(|n| n.as_str()).unwrap_or("");
    let is_symbol = base_name.contains("Symbol");
    let is_dingbats = base_name.contains("Dingbats");
    let encoding = font.encoding();
    let base = match encoding.map(|e| &e.base) {
        Some(b) if builtin(b).is_some() => builtin(b),
        _ if is_symbol => BuiltIn::AdobeSymbol.forward_map(),
        _ if is_dingbats => BuiltIn::AdobeZdingbat.forward_map(),
        _ if matches!(font.subtype, FontType::TrueType) => BuiltIn::WinAnsiEncoding.forward_map(),
        _ => BuiltIn::AdobeStandard.forward_map(),
    };
    let mut table: Vec<Option<String>> = (0..=255u8)
        .map(|b| match base.and_then(|m| m.get(b)) {
            Some(c) => Some(clean(&c.to_string())),
            // Fonts without a usable base still mostly show ASCII.
            None if (32..127).contains(&b) => Some((b as char).to_string()),
            None => None,
        })
        .collect();
    if let Some(enc) = encoding {
        let diffs: &HashMap<u32, _> = &enc.differences;
        for (code, name) in diffs {
            if let Some(slot) = table.get_mut(*code as usize) {
                // An unknown name (`g12`, `a31` from a subsetter) keeps what
                // the base encoding says, as poppler does.
                if let Some(text) = glyph_name_text(name.as_str()) {
                    *slot = Some(text);
                }
            }
        }
    }
    table
}

/// Advance widths by code: pdf-rs's for simple and CID fonts, ours for
/// Type 3 fonts (in glyph space).
enum WidthTable {
    Pdf(pdf::font::Widths),
    Type3 { first_char: u32, values: Vec<f32> },
}

impl WidthTable {
    fn get(&self, code: u32) -> f32 {
        match self {
            Self::Pdf(w) => w.get(code as usize),
            Self::Type3 { first_char, values } => code
                .checked_sub(*first_char)
                .and_then(|i| values.get(i as usize))
                .copied()
                .unwrap_or(0.0),
        }
    }

    /// The median of the non-zero widths (Type 3 only).
    fn median(&self) -> Option<f32> {
        let Self::Type3 { values, .. } = self else {
            return None;
        };
        let mut v: Vec<f32> = values
            .iter()
            .copied()
            .filter(|w| w.is_finite() && *w > 0.0)
            .collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

/// An array of numbers from a font dictionary entry, through one reference.
fn numbers(font: &Font, key: &str, resolve: &impl Resolve) -> Option<Vec<f32>> {
    let p = font._other.get(key)?;
    let resolved;
    let p = match p {
        Primitive::Reference(r) => {
            resolved = resolve.resolve(*r).ok()?;
            &resolved
        }
        p => p,
    };
    let a = p.as_array().ok()?;
    Some(a.iter().map(|p| p.as_number().unwrap_or(0.0)).collect())
}

fn type3_widths(font: &Font, resolve: &impl Resolve) -> Option<WidthTable> {
    let first_char = font
        ._other
        .get("FirstChar")
        .and_then(|p| p.as_u32().ok())
        .unwrap_or(0);
    let values = numbers(font, "Widths", resolve)?;
    Some(WidthTable::Type3 { first_char, values })
}

fn type3_bbox_height(font: &Font, resolve: &impl Resolve) -> Option<f32> {
    match numbers(font, "FontBBox", resolve)?.as_slice() {
        [_, lly, _, ury] if (ury - lly).abs() > 1e-6 => Some((ury - lly).abs()),
        _ => None,
    }
}

/// Type 3 glyphs live in glyph space: the `FontMatrix`'s `a` scales
/// widths, `|d|` the glyph height.
fn type3_matrix(font: &Font, resolve: &impl Resolve) -> (f32, f32) {
    let m = numbers(font, "FontMatrix", resolve).unwrap_or_default();
    let ok = |v: f32| v.is_finite() && v.abs() > 1e-9;
    match m.as_slice() {
        [a, _, _, d, ..] if ok(*a) && ok(*d) => (a.abs(), d.abs()),
        _ => (0.001, 0.001),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names_become_text() {
        assert_eq!(glyph_name_text("A").as_deref(), Some("A"));
        assert_eq!(glyph_name_text("fi").as_deref(), Some("fi"));
        assert_eq!(glyph_name_text("uni00E9").as_deref(), Some("é"));
        assert_eq!(glyph_name_text("u1F600").as_deref(), Some("😀"));
        assert_eq!(glyph_name_text("a.sc").as_deref(), Some("a"));
        assert_eq!(glyph_name_text("f_f_i").as_deref(), Some("ffi"));
        assert_eq!(glyph_name_text("g123"), None);
    }

    #[test]
    fn ligatures_and_controls_are_cleaned() {
        assert_eq!(clean("\u{FB01}nd\u{0001}"), "find");
        assert_eq!(clean("co\u{00AD}op"), "co-op");
    }
}
