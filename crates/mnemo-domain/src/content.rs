//! What kind of study material a stream of bytes is.
//!
//! mnemo accepts PDF, plain text and Markdown. The bytes decide, not the file
//! name: a PDF is `%PDF-` within the first 1024 bytes (as readers accept it);
//! text is valid UTF-8 without NUL bytes over the *whole* file; Markdown is
//! text whose name or declared type says so, or whose first lines look like
//! Markdown. Anything else is refused with a reason a person can act on.
//!
//! [`Sniffer`] is incremental so an upload is classified while it streams,
//! without holding the whole file.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of material mnemo can process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    Pdf,
    PlainText,
    Markdown,
}

impl ContentType {
    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::PlainText => "text/plain",
            Self::Markdown => "text/markdown",
        }
    }

    /// Parses a declared MIME type (parameters such as `; charset=utf-8` ignored).
    pub fn from_mime(mime: &str) -> Option<Self> {
        let base = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/pdf" | "application/x-pdf" => Some(Self::Pdf),
            "text/plain" => Some(Self::PlainText),
            "text/markdown" | "text/x-markdown" => Some(Self::Markdown),
            _ => None,
        }
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("the file is empty")]
    Empty,
    #[error("unsupported content: {0}; mnemo accepts PDF, plain text (UTF-8) and Markdown")]
    Unsupported(String),
    #[error("declared content type '{0}' is not one mnemo accepts (application/pdf, text/plain, text/markdown)")]
    UnsupportedDeclared(String),
    #[error("declared as {declared} but the bytes are {actual}")]
    Mismatch {
        declared: ContentType,
        actual: String,
    },
}

/// How many leading bytes decide "is it a PDF" and feed the Markdown heuristic.
const HEAD_LEN: usize = 64 * 1024;

/// Incremental classifier for an upload.
#[derive(Debug)]
pub struct Sniffer {
    filename: String,
    declared: Option<ContentType>,
    head: Vec<u8>,
    total: u64,
    /// Up to 3 bytes of a UTF-8 sequence cut by a chunk boundary.
    carry: Vec<u8>,
    utf8_ok: bool,
    has_nul: bool,
}

impl Sniffer {
    /// `declared` is the client's MIME type, if it gave one.
    pub fn new(filename: &str, declared: Option<&str>) -> Result<Self, ContentError> {
        let declared = match declared.map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => Some(
                ContentType::from_mime(d)
                    .ok_or_else(|| ContentError::UnsupportedDeclared(d.to_owned()))?,
            ),
        };
        Ok(Self {
            filename: filename.to_owned(),
            declared,
            head: Vec::new(),
            total: 0,
            carry: Vec::new(),
            utf8_ok: true,
            has_nul: false,
        })
    }

    /// Feeds the next piece of the file.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        if !self.utf8_ok {
            return;
        }
        if bytes.contains(&0) {
            self.has_nul = true;
            self.utf8_ok = false;
            return;
        }
        // Validate carry + bytes; keep an incomplete trailing sequence.
        let mut buf;
        let data: &[u8] = if self.carry.is_empty() {
            bytes
        } else {
            buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(bytes);
            &buf
        };
        match std::str::from_utf8(data) {
            Ok(_) => self.carry.clear(),
            Err(e) if e.error_len().is_none() => {
                // Truncated sequence at the end: wait for the next piece.
                self.carry = data[e.valid_up_to()..].to_vec();
            }
            Err(_) => self.utf8_ok = false,
        }
    }

    /// Classifies the whole file once it has been fed completely.
    pub fn finish(self) -> Result<ContentType, ContentError> {
        if self.total == 0 {
            return Err(ContentError::Empty);
        }
        let head = &self.head[..self.head.len().min(1024)];
        let actual = if contains(head, b"%PDF-") {
            ContentType::Pdf
        } else if self.utf8_ok && self.carry.is_empty() && !self.has_nul {
            if self.declared == Some(ContentType::Markdown)
                || has_markdown_extension(&self.filename)
                || looks_like_markdown(&self.head)
            {
                ContentType::Markdown
            } else {
                ContentType::PlainText
            }
        } else {
            return Err(match self.declared {
                Some(declared) => ContentError::Mismatch {
                    declared,
                    actual: describe_binary(&self.head),
                },
                None => ContentError::Unsupported(describe_binary(&self.head)),
            });
        };
        match self.declared {
            // Plain text declared, Markdown detected (or the reverse) is the
            // same material: keep what the bytes and name say.
            Some(ContentType::Pdf) if actual != ContentType::Pdf => Err(ContentError::Mismatch {
                declared: ContentType::Pdf,
                actual: "text, not a PDF".to_owned(),
            }),
            Some(d) if d != ContentType::Pdf && actual == ContentType::Pdf => {
                Err(ContentError::Mismatch {
                    declared: d,
                    actual: "a PDF".to_owned(),
                })
            }
            _ => Ok(actual),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn has_markdown_extension(filename: &str) -> bool {
    let lower = filename.to_ascii_lowercase();
    [".md", ".markdown", ".mdown", ".mkd"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// A few unmistakable Markdown constructs near the top of the file.
fn looks_like_markdown(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut signals = 0;
    for line in text.lines().take(200) {
        let t = line.trim_start();
        let heading = t.starts_with('#') && {
            let hashes = t.bytes().take_while(|&b| b == b'#').count();
            hashes <= 6 && t[hashes..].starts_with(' ')
        };
        if heading || t.starts_with("```") || (t.contains("](") && t.contains('[')) {
            signals += 1;
        }
    }
    signals >= 2
}

/// Names a binary format from its magic bytes, for error messages.
fn describe_binary(head: &[u8]) -> String {
    let kinds: &[(&[u8], &str)] = &[
        (b"\x89PNG", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (
            b"PK\x03\x04",
            "a ZIP archive (DOCX, EPUB, XLSX and ODT are ZIPs too)",
        ),
        (b"\x1f\x8b", "a gzip archive"),
        (b"\x7fELF", "an executable"),
        (b"\xd0\xcf\x11\xe0", "a legacy Office document"),
        (b"{\\rtf", "an RTF document"),
        (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
        (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
    ];
    kinds
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| "binary data that is neither PDF nor UTF-8 text".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff(
        name: &str,
        declared: Option<&str>,
        pieces: &[&[u8]],
    ) -> Result<ContentType, ContentError> {
        let mut s = Sniffer::new(name, declared)?;
        for p in pieces {
            s.feed(p);
        }
        s.finish()
    }

    #[test]
    fn recognises_the_three_accepted_kinds() {
        assert_eq!(
            sniff("a.pdf", None, &[b"%PDF-1.7\n..."]),
            Ok(ContentType::Pdf)
        );
        assert_eq!(
            sniff("notes", None, &[b"just some notes\n"]),
            Ok(ContentType::PlainText)
        );
        assert_eq!(
            sniff("notes.md", None, &[b"just some notes\n"]),
            Ok(ContentType::Markdown)
        );
        assert_eq!(
            sniff("x", None, &[b"# Title\n\nSome [link](http://x)\n"]),
            Ok(ContentType::Markdown)
        );
    }

    #[test]
    fn utf8_split_across_pieces_is_still_text() {
        let s = "café ünïcødé".as_bytes();
        let (a, b) = s.split_at(4); // inside 'é'
        assert_eq!(sniff("t.txt", None, &[a, b]), Ok(ContentType::PlainText));
    }

    #[test]
    fn refuses_binary_with_a_reason() {
        let err = sniff("img.pdf", None, &[b"\x89PNG\r\n\x1a\n\0\0"]).unwrap_err();
        assert!(err.to_string().contains("PNG"), "{err}");
        assert_eq!(sniff("e", None, &[]), Err(ContentError::Empty));
        let err = sniff("t.txt", None, &[b"abc", b"\xc3"]).unwrap_err();
        assert!(matches!(err, ContentError::Unsupported(_)), "{err}");
    }

    #[test]
    fn declared_type_must_agree_with_the_bytes() {
        assert!(matches!(
            sniff("a", Some("application/pdf"), &[b"hello"]),
            Err(ContentError::Mismatch { .. })
        ));
        assert!(matches!(
            sniff("a", Some("image/png"), &[b"hello"]),
            Err(ContentError::UnsupportedDeclared(_))
        ));
        assert_eq!(
            sniff("a", Some("text/markdown; charset=utf-8"), &[b"hello"]),
            Ok(ContentType::Markdown)
        );
    }
}
