//! The content-stream walker: runs a page's operators the way a renderer
//! would, but instead of painting glyphs it records where each one lands.
//!
//! State kept (PDF 32000-1 §9.3, §9.4): the graphics-state stack (`q`/`Q`)
//! with the CTM (`cm`) and the text state (`Tf` font and size, `Tc`, `Tw`,
//! `Tz`, `TL`, `Ts`), and inside `BT`/`ET` the text and line matrices
//! (`Tm`, `Td`, `TD`, `T*`). Text-showing operators (`Tj`, `TJ`, `'`, `"`;
//! pdf-rs turns the last two into a newline plus a show) advance the text
//! matrix by each glyph's width, so glyph positions — and therefore word
//! gaps — come from the font's own metrics. Form XObjects (`Do`) are
//! walked with their matrix and resources, a few levels deep at most.

use std::collections::HashMap;
use std::rc::Rc;

use pdf::content::{Matrix, Op, TextDrawAdjusted};
use pdf::object::{Resolve, Resources, XObject};
use pdf::primitive::Name;

use crate::fonts::FontDecoder;

/// Form XObjects inside form XObjects deeper than this are skipped (a
/// self-referencing form would otherwise never end).
const MAX_FORM_DEPTH: usize = 8;

/// One glyph as placed on the page (device space, y grows upwards).
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub x: f32,
    pub y: f32,
    /// Where the glyph's advance ends (x of the next glyph if no spacing).
    pub x_end: f32,
    /// Effective font size on the page.
    pub size: f32,
    pub text: String,
    /// Order in the content stream (ties and reading-order hints).
    pub seq: u32,
    /// Baseline direction in quarter turns (0 = left to right; 1 = bottom
    /// to top…). `x`/`y` are already rotated so the baseline runs along x.
    pub dir: u8,
}

/// 2-D affine matrix `[a b c d e f]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct M([f32; 6]);

impl M {
    const IDENTITY: M = M([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn from(m: &Matrix) -> M {
        M([m.a, m.b, m.c, m.d, m.e, m.f])
    }

    /// `self × other` (apply self, then other), as PDF concatenates.
    fn then(&self, o: &M) -> M {
        let [a, b, c, d, e, f] = self.0;
        let [oa, ob, oc, od, oe, of] = o.0;
        M([
            a * oa + b * oc,
            a * ob + b * od,
            c * oa + d * oc,
            c * ob + d * od,
            e * oa + f * oc + oe,
            e * ob + f * od + of,
        ])
    }

    fn translate(tx: f32, ty: f32) -> M {
        M([1.0, 0.0, 0.0, 1.0, tx, ty])
    }
}

#[derive(Clone)]
struct TextState {
    font: Option<Rc<FontDecoder>>,
    size: f32,
    char_space: f32,
    word_space: f32,
    horiz_scale: f32,
    leading: f32,
    rise: f32,
}

impl Default for TextState {
    fn default() -> Self {
        Self {
            font: None,
            size: 0.0,
            char_space: 0.0,
            word_space: 0.0,
            horiz_scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        }
    }
}

#[derive(Clone)]
struct GState {
    ctm: M,
    text: TextState,
}

/// Walks one page (or form) and collects its placed glyphs.
pub struct Walker<'r, R: Resolve> {
    resolve: &'r R,
    out: Vec<Placed>,
    seq: u32,
    /// Decoders by font object identity, shared across forms of a page.
    fonts: HashMap<*const pdf::font::Font, Rc<FontDecoder>>,
}

impl<'r, R: Resolve> Walker<'r, R> {
    pub fn new(resolve: &'r R) -> Self {
        Self {
            resolve,
            out: Vec::new(),
            seq: 0,
            fonts: HashMap::new(),
        }
    }

    /// Everything placed so far.
    pub fn finish(self) -> Vec<Placed> {
        self.out
    }

    /// Runs `ops` with `resources` under `ctm`.
    pub fn run(&mut self, ops: &[Op], resources: Option<&Resources>, ctm: [f32; 6], depth: usize) {
        let mut gs = GState {
            ctm: M(ctm),
            text: TextState::default(),
        };
        let mut stack: Vec<GState> = Vec::new();
        let mut tm = M::IDENTITY;
        let mut tlm = M::IDENTITY;
        for op in ops {
            match op {
                Op::Save => stack.push(gs.clone()),
                Op::Restore => {
                    if let Some(g) = stack.pop() {
                        gs = g;
                    }
                }
                Op::Transform { matrix } => gs.ctm = M::from(matrix).then(&gs.ctm),
                Op::BeginText => {
                    tm = M::IDENTITY;
                    tlm = M::IDENTITY;
                }
                Op::EndText => {}
                Op::CharSpacing { char_space } => gs.text.char_space = *char_space,
                Op::WordSpacing { word_space } => gs.text.word_space = *word_space,
                Op::TextScaling { horiz_scale } => gs.text.horiz_scale = *horiz_scale / 100.0,
                Op::Leading { leading } => gs.text.leading = *leading,
                Op::TextRise { rise } => gs.text.rise = *rise,
                Op::TextFont { name, size } => {
                    gs.text.size = *size;
                    gs.text.font = self.font(resources, name);
                }
                Op::MoveTextPosition { translation } => {
                    tlm = M::translate(translation.x, translation.y).then(&tlm);
                    tm = tlm;
                }
                Op::SetTextMatrix { matrix } => {
                    tlm = M::from(matrix);
                    tm = tlm;
                }
                Op::TextNewline => {
                    tlm = M::translate(0.0, -gs.text.leading).then(&tlm);
                    tm = tlm;
                }
                Op::TextDraw { text } => self.show(&gs, &mut tm, text.as_bytes()),
                Op::TextDrawAdjusted { array } => {
                    for item in array {
                        match item {
                            TextDrawAdjusted::Text(t) => self.show(&gs, &mut tm, t.as_bytes()),
                            TextDrawAdjusted::Spacing(n) => {
                                let tx = -n / 1000.0 * gs.text.size * gs.text.horiz_scale;
                                tm = M::translate(tx, 0.0).then(&tm);
                            }
                        }
                    }
                }
                Op::XObject { name } if depth < MAX_FORM_DEPTH => {
                    self.form(resources, name, gs.ctm, depth);
                }
                _ => {}
            }
        }
    }

    fn font(&mut self, resources: Option<&Resources>, name: &Name) -> Option<Rc<FontDecoder>> {
        let lazy = resources?.fonts.get(name)?;
        let font = lazy.load(self.resolve).ok()?;
        // Same object → same decoder (forms reuse the page's fonts; the
        // cached resolver hands out the same font object each time).
        let key: *const pdf::font::Font = &*font;
        if let Some(d) = self.fonts.get(&key) {
            return Some(d.clone());
        }
        let decoder = Rc::new(FontDecoder::new(&font, self.resolve));
        self.fonts.insert(key, decoder.clone());
        Some(decoder)
    }

    fn form(&mut self, resources: Option<&Resources>, name: &Name, ctm: M, depth: usize) {
        let Some(r) = resources.and_then(|r| r.xobjects.get(name)) else {
            return;
        };
        let Ok(xobject) = self.resolve.get(*r) else {
            return;
        };
        let XObject::Form(form) = &*xobject else {
            return;
        };
        let Ok(ops) = form.operations(self.resolve) else {
            return;
        };
        let dict = form.dict();
        let matrix = dict.matrix.as_ref().map(M::from).unwrap_or(M::IDENTITY);
        let ctm = matrix.then(&ctm);
        let own = dict.resources.as_deref();
        self.run(&ops, own.or(resources), ctm.0, depth + 1);
    }

    /// Shows a string: one [`Placed`] per glyph, advancing `tm`.
    fn show(&mut self, gs: &GState, tm: &mut M, bytes: &[u8]) {
        let Some(font) = gs.text.font.clone() else {
            return;
        };
        let t = &gs.text;
        for glyph in font.decode(bytes) {
            let trm = M([t.size * t.horiz_scale, 0.0, 0.0, t.size, 0.0, t.rise])
                .then(tm)
                .then(&gs.ctm);
            let mut tx = glyph.advance * t.size + t.char_space;
            if glyph.is_space_code {
                tx += t.word_space;
            }
            tx *= t.horiz_scale;
            let next = M::translate(tx, 0.0).then(tm);
            if !glyph.text.is_empty() {
                let end = M([t.size * t.horiz_scale, 0.0, 0.0, t.size, 0.0, t.rise])
                    .then(&next)
                    .then(&gs.ctm);
                let [a, b, c, d, x, y] = trm.0;
                let size = (c * c + d * d).sqrt() * font.size_scale();
                // Rotate into the baseline's frame so layout only ever sees
                // left-to-right text.
                let dir = quarter_turns(a, b);
                let (rx, ry) = rotate(dir, x, y);
                let (rx_end, _) = rotate(dir, end.0[4], end.0[5]);
                self.seq += 1;
                self.out.push(Placed {
                    x: rx,
                    y: ry,
                    x_end: rx_end,
                    size: if size.is_finite() && size > 0.0 {
                        size
                    } else {
                        1.0
                    },
                    text: glyph.text,
                    seq: self.seq,
                    dir,
                });
            }
            *tm = next;
        }
    }
}

/// The baseline direction `(a, b)` as quarter turns counter-clockwise.
fn quarter_turns(a: f32, b: f32) -> u8 {
    if a.abs() >= b.abs() {
        if a >= 0.0 {
            0
        } else {
            2
        }
    } else if b > 0.0 {
        1
    } else {
        3
    }
}

/// A point in the frame where a `dir` baseline runs left to right.
fn rotate(dir: u8, x: f32, y: f32) -> (f32, f32) {
    match dir {
        1 => (y, -x),
        2 => (-x, -y),
        3 => (-y, x),
        _ => (x, y),
    }
}
