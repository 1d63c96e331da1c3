//! Every encryption the pipeline issue names, decrypted with the empty user
//! password through pdf-rs (patched: vendor/pdf/PATCHES.md), on fixtures
//! this repository generates (tests/fixtures/encrypted/make.sh).

use std::path::PathBuf;

use mnemo_pdf::quality::words;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encrypted")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The words make.py writes on the page.
const TEXT: &str = "Mitochondria make ATP for the cell. Ribosomes read messenger RNA. \
                    Encrypted study notes still read well.";

fn assert_reads(name: &str) {
    let pages = mnemo_pdf::extract(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(pages.len(), 1, "{name}");
    assert_eq!(words(&pages[0]), words(TEXT), "{name}: {:?}", pages[0]);
}

#[test]
fn the_plain_page_reads() {
    assert_reads("plain.pdf");
}

#[test]
fn rc4_40_is_decrypted() {
    assert_reads("rc4_40.pdf");
}

#[test]
fn rc4_128_is_decrypted() {
    assert_reads("rc4_128.pdf");
}

#[test]
fn aes_128_is_decrypted() {
    assert_reads("aes_128.pdf");
}

#[test]
fn aes_256_is_decrypted() {
    assert_reads("aes_256.pdf");
}

#[test]
fn aes_256_with_encrypted_object_streams_is_decrypted() {
    assert_reads("aes_256_qpdf.pdf");
}

#[test]
fn aes_256_with_127_byte_u_and_o_is_decrypted() {
    assert_reads("aes_256_u127.pdf");
}

#[test]
fn a_user_password_is_a_clear_failure() {
    match mnemo_pdf::extract(fixture("user_password.pdf")) {
        Err(e) => {
            assert_eq!(e, mnemo_pdf::PdfError::NeedsPassword);
            assert_eq!(e.code(), "needs_password");
            assert!(e.to_string().contains("needs a password"), "{e}");
        }
        Ok(pages) => panic!("decrypted without the password: {pages:?}"),
    }
}
