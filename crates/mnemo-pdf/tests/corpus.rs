//! pdf-rs text on real PDFs from ../shared/corpus/pdf, compared word by word
//! with poppler's `pdftotext` (bag-of-words F1), plus the hard cases:
//! encryption, a scan, a file that makes parsers loop.

use std::path::PathBuf;
use std::process::Command;

/// The shared corpus: `MNEMO_CORPUS_DIR`, else `../shared/corpus/pdf`
/// beside the repository (this crate is `<repo>/crates/mnemo-pdf`).
fn corpus(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("MNEMO_CORPUS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pdf"),
    };
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set MNEMO_CORPUS_DIR to the corpus)",
            path.display()
        )
    })
}

use mnemo_pdf::quality::{word_f1 as f1, words};

fn pdftotext(bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("mnemo-pdf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:x}.pdf", bytes.len()));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("pdftotext")
        .arg("-q")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn papers_read_like_pdftotext() {
    for (name, at_least) in [
        ("med_psychogeriatrics.pdf", 0.97),
        ("paper_tracemonkey_2col.pdf", 0.95),
        ("office_word2013_47p.pdf", 0.98),
        ("gov_federal_register_3col.pdf", 0.95),
        // Bitmap Type 3 fonts (dvips): widths through the FontMatrix.
        ("gs862_dvips_type3.pdf", 0.9),
    ] {
        let bytes = corpus(name);
        let ours = mnemo_pdf::extract(bytes.clone()).unwrap().join("\n");
        let score = f1(&ours, &pdftotext(&bytes));
        assert!(score >= at_least, "{name}: F1 {score:.3} < {at_least}");
    }
}

#[test]
fn encrypted_files_are_decrypted_with_the_empty_password() {
    for name in [
        // AES-128 (revision 4).
        "enc_r4_copy_protected.pdf",
        // AES-256 (revision 6) with 127-byte U and O entries.
        "enc_aes256_r6_qpdf.pdf",
        // RC4-128 with a malformed /OpenAction (an optional entry).
        "font_identity_cmap_enc.pdf",
    ] {
        let bytes = corpus(name);
        let text = mnemo_pdf::extract(bytes.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .join("\n");
        let score = f1(&text, &pdftotext(&bytes));
        assert!(score > 0.9, "{name}: F1 {score:.3}: {text:.200}");
    }
}

/// A well-formed one-page PDF (with its xref table) whose page draws nothing.
fn blank_pdf() -> Vec<u8> {
    let objects = [
        "<</Type/Catalog/Pages 2 0 R>>",
        "<</Type/Pages/Kids[3 0 R]/Count 1>>",
        "<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>",
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj{o}endobj\n", i + 1).bytes());
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        pdf.extend(format!("{o:010} 00000 n \n").bytes());
    }
    pdf.extend(
        format!(
            "trailer<</Size {}/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    pdf
}

#[test]
fn a_page_without_a_text_layer_has_no_text() {
    // What a scan without OCR looks like to a text extractor: a page that
    // draws no text at all (the extractor then reports "no text layer").
    let pages = mnemo_pdf::extract(blank_pdf()).unwrap();
    assert_eq!(pages.len(), 1);
    assert!(pages[0].trim().is_empty());
}

#[test]
fn broken_files_fail_with_a_reason() {
    for name in [
        "broken_truncated_sepsis_55pct.pdf",
        "broken_infinite_loop103.pdf",
    ] {
        match mnemo_pdf::extract(corpus(name)) {
            Err(mnemo_pdf::PdfError::Damaged(why)) => assert!(!why.is_empty()),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn word_spacing_comes_from_glyph_positions() {
    // Papers set with TeX position every word with TJ offsets, not spaces.
    let text = mnemo_pdf::extract(corpus("paper_acl2020_2col.pdf"))
        .unwrap()
        .join("\n");
    let bag = words(&text);
    for w in ["the", "of", "and", "we"] {
        assert!(
            bag.get(w).copied().unwrap_or(0) > 20,
            "'{w}' should be a word of its own"
        );
    }
}

#[test]
fn type3_glyph_widths_keep_words_whole() {
    // "Accelerato / r F acilit / y" when Type 3 widths were guessed.
    let text = mnemo_pdf::extract(corpus("gs862_dvips_type3.pdf"))
        .unwrap()
        .join("\n");
    assert!(
        text.contains("The Continuous Electron Beam Accelerator Facility"),
        "{:.600}",
        text
    );
}

#[test]
fn paragraphs_are_separated_by_blank_lines() {
    let pages = mnemo_pdf::extract(corpus("med_psychogeriatrics.pdf")).unwrap();
    let paragraphs: Vec<&str> = pages[0].split("\n\n").map(str::trim).collect();
    // The abstract's parts and the first section each start a paragraph.
    for start in [
        "ABSTRACT",
        "Background: The impact",
        "Methods: The study",
        "Introduction",
    ] {
        assert!(
            paragraphs.iter().any(|p| p.starts_with(start)),
            "no paragraph starts with {start:?}: {paragraphs:#?}"
        );
    }
    // A paragraph's lines stay together and in order.
    let methods = paragraphs
        .iter()
        .find(|p| p.starts_with("Methods:"))
        .unwrap();
    assert!(
        methods.ends_with("emotional\nadjustment were asked for."),
        "{methods}"
    );
}
