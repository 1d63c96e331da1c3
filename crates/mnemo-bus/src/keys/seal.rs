//! One owner's data key, and what it seals: event payloads, blob names and
//! blob bytes. AES-256-GCM with a random 96-bit nonce per message or
//! segment (a data key seals far fewer than the 2^32 messages that bound
//! random nonces).
//!
//! - An event payload is `nonce ‖ ciphertext ‖ tag`, bound to the event id,
//!   subject, types and versions (`event_store::event_aad`): a payload
//!   copied under another event, subject or type does not open.
//! - A blob's name is `<owner token>.<HMAC(name key, sha256)>`: owners no
//!   longer share bytes (nor learn, by timing, that another holds them),
//!   and an erased owner's leftover names say nothing.
//! - A blob's bytes are a header (`MNB1`) then segments of
//!   [`SEGMENT`] plaintext bytes, each `nonce ‖ ciphertext ‖ tag` with the
//!   blob's name and the segment's index as associated data, so segments
//!   cannot be reordered or moved between blobs; the SHA-256 of the
//!   plaintext, checked on every read, catches a truncated blob.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{BusError, BusErrorKind};

/// Plaintext bytes per blob segment.
pub const SEGMENT: usize = 64 * 1024;
/// Nonce and tag around each sealed piece.
pub const OVERHEAD: usize = 12 + 16;
/// The first bytes of every sealed blob.
pub const BLOB_MAGIC: &[u8; 4] = b"MNB1";

/// An owner's data key, ready to use (cheap to clone).
#[derive(Clone)]
pub struct OwnerKey {
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    cipher: Aes256Gcm,
    name_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnerKey({})", self.inner.token)
    }
}

impl OwnerKey {
    /// The owner `token`'s key from its 32 secret bytes.
    pub fn new(token: &str, dek: &[u8; 32]) -> Self {
        let mut name_key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, dek)
            .expand(b"mnemo/blob-names/v1", &mut name_key[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self {
            inner: Arc::new(Inner {
                token: token.to_owned(),
                cipher: Aes256Gcm::new(&(*dek).into()),
                name_key,
            }),
        }
    }

    /// The owner's subject token.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// Seals an event message's payload, bound to `aad` (the event id,
    /// subject, types and versions: `event_store::event_aad`).
    pub fn seal_event(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, BusError> {
        self.seal(plain, aad)
    }

    /// Opens what [`Self::seal_event`] sealed with the same `aad`; a wrong
    /// key, other associated data or a changed byte is
    /// [`BusErrorKind::Corrupt`].
    pub fn open_event(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, BusError> {
        self.open(sealed, aad)
            .ok_or_else(|| corrupt("an event does not open with its owner's key".to_owned()))
    }

    /// The object name of this owner's blob with plaintext `sha256_hex`.
    pub fn blob_name(&self, sha256_hex: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.name_key[..])
            .expect("HMAC takes a key of any length");
        mac.update(sha256_hex.as_bytes());
        format!(
            "{}.{}",
            self.inner.token,
            hex::encode(&mac.finalize().into_bytes()[..20])
        )
    }

    /// Seals segment `index` of blob `name`.
    pub fn seal_segment(&self, name: &str, index: u64, plain: &[u8]) -> Result<Vec<u8>, BusError> {
        self.seal(plain, &segment_aad(name, index))
    }

    /// Opens segment `index` of blob `name`.
    pub fn open_segment(&self, name: &str, index: u64, sealed: &[u8]) -> Result<Vec<u8>, BusError> {
        self.open(sealed, &segment_aad(name, index))
            .ok_or_else(|| corrupt(format!("blob {name}: segment {index} does not open")))
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, BusError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .inner
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| BusError::new(BusErrorKind::Rejected, "cannot seal"))?;
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < OVERHEAD {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        self.inner
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
            .ok()
    }
}

fn segment_aad(name: &str, index: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(name.len() + 8);
    aad.extend_from_slice(name.as_bytes());
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

fn corrupt(message: String) -> BusError {
    BusError::new(BusErrorKind::Corrupt, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_opens_only_with_its_key_and_its_id() {
        let alice = OwnerKey::new("aaaa", &[1; 32]);
        let bob = OwnerKey::new("bbbb", &[2; 32]);
        let sealed = alice.seal_event(b"e1", b"[{\"type\":\"X\"}]").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"type"));
        assert_eq!(
            alice.open_event(b"e1", &sealed).unwrap(),
            b"[{\"type\":\"X\"}]"
        );
        assert!(
            alice.open_event(b"e2", &sealed).is_err(),
            "another event id"
        );
        assert!(
            bob.open_event(b"e1", &sealed).is_err(),
            "another owner's key"
        );
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(
            alice.open_event(b"e1", &flipped).unwrap_err().kind(),
            BusErrorKind::Corrupt
        );
        assert!(alice.open_event(b"e1", &sealed[..10]).is_err());
    }

    #[test]
    fn blob_names_are_per_owner_and_segments_keep_their_place() {
        let alice = OwnerKey::new("aaaa", &[1; 32]);
        let bob = OwnerKey::new("bbbb", &[2; 32]);
        let sha = "ab".repeat(32);
        let name = alice.blob_name(&sha);
        assert!(name.starts_with("aaaa."));
        assert!(!name.contains(&sha));
        assert_ne!(name, bob.blob_name(&sha));
        assert_eq!(name, alice.blob_name(&sha));
        let s0 = alice.seal_segment(&name, 0, b"first").unwrap();
        assert_eq!(alice.open_segment(&name, 0, &s0).unwrap(), b"first");
        assert!(alice.open_segment(&name, 1, &s0).is_err(), "moved");
        assert!(
            alice.open_segment("aaaa.other", 0, &s0).is_err(),
            "another blob"
        );
    }
}
