//! The deployment's key file, and the keys it yields.
//!
//! One file of 32 random bytes (64 hex digits; mode 0600, like the NATS
//! seeds) is the root of every learner's data key: HKDF-SHA256 derives
//! from it the *key-encryption key* (KEK) that wraps each owner's data key,
//! and the *token key* that turns owner ids into subject tokens
//! ([`mnemo_domain::owner::TokenScheme`]). `mnemo keys init FILE` makes one.
//!
//! Losing the file loses every learner's data: a process that cannot read
//! it, or reads another one than the namespace's keys were wrapped with,
//! refuses to start ([`crate::keys::Keyring::open`]) rather than write or
//! read garbage.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{BusError, BusErrorKind};

/// A 256-bit secret that is wiped from memory when dropped.
pub type Secret = Zeroizing<[u8; 32]>;

/// What wraps and unwraps the owners' data keys: the key file's KEK here;
/// a KMS (its encrypt and decrypt calls) can sit behind the same trait.
#[async_trait::async_trait]
pub trait KeyEncryptionKey: Send + Sync {
    /// A short, stable, non-secret id: stored beside every wrapped key and
    /// in the namespace's keyring record, so another KEK is caught at start.
    fn id(&self) -> &str;
    /// Encrypts a data key; `context` is bound to it (the owner's token).
    async fn wrap(&self, key: &[u8; 32], context: &[u8]) -> Result<Vec<u8>, BusError>;
    /// Decrypts a data key wrapped with the same `context`.
    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Secret, BusError>;
}

/// The keys of one key file.
pub struct KeyFile {
    kek: FileKek,
    token_key: Secret,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile(kek {})", self.kek.id)
    }
}

impl KeyFile {
    /// Reads a key file: it must exist, be readable by its owner only, and
    /// hold 64 hex digits. Every failure says what to do.
    pub fn load(path: &Path) -> Result<Self, BusError> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            BusError::with_source(
                BusErrorKind::Config,
                format!(
                    "cannot read the key file {shown}: without it no learner's events or files can be read or written. \
                     Restore it from where you keep it safe; `mnemo keys init` makes a new one only for a new deployment"
                ),
                e,
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(BusError::config(format!(
                    "the key file {shown} is readable by others (mode {:o}): chmod 600 it",
                    meta.permissions().mode() & 0o777
                )));
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            BusError::with_source(
                BusErrorKind::Config,
                format!("cannot read the key file {shown}"),
                e,
            )
        })?);
        let mut master = Zeroizing::new([0u8; 32]);
        let hex_text = text.trim();
        if hex_text.len() != 64 || hex::decode_to_slice(hex_text, &mut master[..]).is_err() {
            return Err(BusError::config(format!(
                "the key file {shown} does not hold a key (64 hex digits expected)"
            )));
        }
        Ok(Self::from_master(&master))
    }

    /// The keys derived from a 32-byte master secret.
    pub fn from_master(master: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(None, master);
        let mut kek = Zeroizing::new([0u8; 32]);
        let mut token_key = Zeroizing::new([0u8; 32]);
        hk.expand(b"mnemo/key-encryption-key/v1", &mut kek[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        hk.expand(b"mnemo/owner-token-key/v1", &mut token_key[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&kek[..])
            .expect("HMAC takes a key of any length");
        mac.update(b"mnemo/kek-id");
        let id = hex::encode(&mac.finalize().into_bytes()[..8]);
        Self {
            kek: FileKek {
                cipher: Aes256Gcm::new(&(*kek).into()),
                id,
            },
            token_key,
        }
    }

    /// Makes a new key file at `path` (mode 0600) unless one is there;
    /// returns whether it made one.
    pub fn init(path: &Path) -> Result<bool, BusError> {
        if path.exists() {
            Self::load(path)?;
            return Ok(false);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                BusError::with_source(
                    BusErrorKind::Config,
                    format!("cannot create {}", dir.display()),
                    e,
                )
            })?;
        }
        let mut master = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(&mut master[..]);
        let text = Zeroizing::new(format!("{}\n", hex::encode(&master[..])));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            BusError::with_source(
                BusErrorKind::Config,
                format!("cannot create the key file {}", path.display()),
                e,
            )
        })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                BusError::with_source(
                    BusErrorKind::Config,
                    format!("cannot write the key file {}", path.display()),
                    e,
                )
            })?;
        Ok(true)
    }

    /// The key-encryption key.
    pub fn kek(&self) -> &FileKek {
        &self.kek
    }

    /// The owner-token key (HMAC-SHA256).
    pub fn token_key(&self) -> [u8; 32] {
        *self.token_key
    }
}

/// The KEK of a key file: AES-256-GCM, the owner's token as associated data.
#[derive(Clone)]
pub struct FileKek {
    cipher: Aes256Gcm,
    id: String,
}

#[async_trait::async_trait]
impl KeyEncryptionKey for FileKek {
    fn id(&self) -> &str {
        &self.id
    }

    async fn wrap(&self, key: &[u8; 32], context: &[u8]) -> Result<Vec<u8>, BusError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key,
                    aad: context,
                },
            )
            .map_err(|_| BusError::new(BusErrorKind::Rejected, "cannot wrap a data key"))?;
        Ok([&nonce[..], &sealed].concat())
    }

    async fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> Result<Secret, BusError> {
        let corrupt = || {
            BusError::new(
                BusErrorKind::Corrupt,
                format!(
                    "a data key does not unwrap under the key-encryption key {}: the key file is not the one it was wrapped with, or the record is damaged",
                    self.id
                ),
            )
        };
        if wrapped.len() < 12 {
            return Err(corrupt());
        }
        let (nonce, sealed) = wrapped.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| corrupt())?;
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: context,
                    },
                )
                .map_err(|_| corrupt())?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(corrupt());
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wrapped_key_unwraps_only_with_its_kek_and_context() {
        let one = KeyFile::from_master(&[1; 32]);
        let two = KeyFile::from_master(&[2; 32]);
        assert_ne!(one.kek().id(), two.kek().id());
        assert_ne!(one.token_key(), two.token_key());
        let dek = [42u8; 32];
        let wrapped = one.kek().wrap(&dek, b"owner-a").await.unwrap();
        assert_eq!(*one.kek().unwrap(&wrapped, b"owner-a").await.unwrap(), dek);
        assert!(one.kek().unwrap(&wrapped, b"owner-b").await.is_err());
        let err = two.kek().unwrap(&wrapped, b"owner-a").await.err().unwrap();
        assert_eq!(err.kind(), BusErrorKind::Corrupt);
    }

    #[test]
    fn a_key_file_is_made_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        assert!(KeyFile::init(&path).unwrap());
        assert!(!KeyFile::init(&path).unwrap(), "an existing file is kept");
        let a = KeyFile::load(&path).unwrap();
        let b = KeyFile::load(&path).unwrap();
        assert_eq!(a.kek().id(), b.kek().id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(KeyFile::load(&path)
                .unwrap_err()
                .to_string()
                .contains("chmod 600"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(KeyFile::load(&path)
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
        let missing = KeyFile::load(&dir.path().join("gone.key")).unwrap_err();
        assert_eq!(missing.kind(), BusErrorKind::Config);
        assert!(missing.to_string().contains("cannot read the key file"));
    }
}
