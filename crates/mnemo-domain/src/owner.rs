//! Owner ids and the token that stands for them in subjects.
//!
//! An owner id comes from a bearer token and is never pasted into a NATS
//! subject as is: `.`, `*`, `>` or a space would let one owner address
//! another's subjects (`ev.doc.alice.>` vs an owner called `alice.>`), and
//! subjects, object names and read-model keys outlive an erased learner
//! (the log is immutable). The subject token is therefore a keyed hash:
//! the lowercase, unpadded base32 of the first 20 bytes of
//! HMAC-SHA256(token key, owner id), made only of `[a-z2-7]`, one-way for
//! anyone without the deployment's key file (`mnemo_bus::keys`), so an
//! erased learner's events cannot be tied back to their id.
//!
//! Namespaces whose log predates keyed tokens keep the plain base32 of the
//! id (reversible; docs/security.md says what that leaves readable). The
//! scheme is a fact of the deployment, installed once per process by
//! `mnemo_bus::Bus::start` from the namespace's keyring record
//! ([`install_token_scheme`]); until then (unit tests) it is base32.

use std::fmt;
use std::sync::OnceLock;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Longest owner id accepted, in bytes.
pub const MAX_OWNER_LEN: usize = 128;

/// Why a string is not an acceptable owner id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("owner id is empty")]
    Empty,
    #[error("owner id is longer than {MAX_OWNER_LEN} bytes")]
    TooLong,
    #[error("owner id contains a control character")]
    ControlCharacter,
    #[error("this process already derives owner tokens under another scheme or key: one process serves one deployment")]
    SchemeConflict,
}

/// How owner ids become subject tokens in a deployment.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenScheme {
    /// The base32 of the id: namespaces whose log predates keyed tokens.
    Base32,
    /// HMAC-SHA256 under the deployment's token key (32 bytes).
    Keyed([u8; 32]),
}

impl fmt::Debug for TokenScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.write_str(match self {
            Self::Base32 => "Base32",
            Self::Keyed(_) => "Keyed(..)",
        })
    }
}

static SCHEME: OnceLock<TokenScheme> = OnceLock::new();

/// Sets this process's token scheme; installing the same one again is
/// fine, another one is [`OwnerError::SchemeConflict`] (a token derived
/// before would name another subject than one derived after).
pub fn install_token_scheme(scheme: TokenScheme) -> Result<(), OwnerError> {
    install_into(&SCHEME, scheme)
}

fn install_into(cell: &OnceLock<TokenScheme>, scheme: TokenScheme) -> Result<(), OwnerError> {
    let installed = cell.get_or_init(|| scheme.clone());
    if *installed == scheme {
        Ok(())
    } else {
        Err(OwnerError::SchemeConflict)
    }
}

/// The id of whoever owns a document or a learning history (a JWT `sub`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OwnerId(String);

impl OwnerId {
    /// Validates an owner id: 1..=128 bytes, no control characters.
    pub fn new(id: impl Into<String>) -> Result<Self, OwnerError> {
        let id = id.into();
        if id.is_empty() {
            return Err(OwnerError::Empty);
        }
        if id.len() > MAX_OWNER_LEN {
            return Err(OwnerError::TooLong);
        }
        if id.chars().any(char::is_control) {
            return Err(OwnerError::ControlCharacter);
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The subject-safe token for this owner (`[a-z2-7]+`), under the
    /// process's [`TokenScheme`].
    pub fn token(&self) -> String {
        self.token_under(SCHEME.get().unwrap_or(&TokenScheme::Base32))
    }

    /// The token under a given scheme.
    pub fn token_under(&self, scheme: &TokenScheme) -> String {
        match scheme {
            TokenScheme::Base32 => BASE32_NOPAD.encode(self.0.as_bytes()),
            TokenScheme::Keyed(key) => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC takes a key of any length");
                mac.update(self.0.as_bytes());
                BASE32_NOPAD.encode(&mac.finalize().into_bytes()[..20])
            }
        }
        .to_ascii_lowercase()
    }
}

impl TryFrom<String> for OwnerId {
    type Error = OwnerError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<OwnerId> for String {
    fn from(value: OwnerId) -> Self {
        value.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(token: &str) -> bool {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
    }

    #[test]
    fn hostile_ids_become_plain_tokens_under_both_schemes() {
        let keyed = TokenScheme::Keyed([7; 32]);
        for raw in ["alice", "alice.>", "*", "a b", "ünïcødé", ">"] {
            let owner = OwnerId::new(raw).unwrap();
            assert!(plain(&owner.token_under(&TokenScheme::Base32)));
            let token = owner.token_under(&keyed);
            assert!(plain(&token));
            assert_eq!(token.len(), 32, "20 bytes of HMAC in base32");
        }
        let (a, b) = (
            OwnerId::new("alice").unwrap(),
            OwnerId::new("alice.>").unwrap(),
        );
        assert_ne!(a.token_under(&keyed), b.token_under(&keyed));
    }

    #[test]
    fn a_keyed_token_depends_on_the_key_and_does_not_spell_the_id() {
        let alice = OwnerId::new("alice").unwrap();
        let one = alice.token_under(&TokenScheme::Keyed([1; 32]));
        assert_eq!(one, alice.token_under(&TokenScheme::Keyed([1; 32])));
        assert_ne!(one, alice.token_under(&TokenScheme::Keyed([2; 32])));
        let base32 = alice.token_under(&TokenScheme::Base32);
        assert_eq!(base32, "mfwgsy3f");
        assert!(!one.contains(&base32));
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(OwnerId::new(""), Err(OwnerError::Empty));
        assert_eq!(OwnerId::new("a\nb"), Err(OwnerError::ControlCharacter));
        assert_eq!(OwnerId::new("x".repeat(129)), Err(OwnerError::TooLong));
    }

    #[test]
    fn the_scheme_is_installed_once() {
        // A cell of its own: the process's is shared by every test here.
        let cell = OnceLock::new();
        let keyed = TokenScheme::Keyed([9; 32]);
        install_into(&cell, keyed.clone()).unwrap();
        install_into(&cell, keyed).unwrap();
        assert_eq!(
            install_into(&cell, TokenScheme::Base32),
            Err(OwnerError::SchemeConflict)
        );
        assert_eq!(format!("{:?}", TokenScheme::Keyed([9; 32])), "Keyed(..)");
    }
}
