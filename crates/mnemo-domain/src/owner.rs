//! Owner ids and the token that stands for them in subjects.
//!
//! An owner id comes from a bearer token and is never pasted into a NATS
//! subject as is: `.`, `*`, `>` or a space would let one owner address
//! another's subjects (`ev.doc.alice.>` vs an owner called `alice.>`). The
//! subject token is the lowercase, unpadded base32 of the id's UTF-8 bytes:
//! reversible (for audits), and made only of `[a-z2-7]`.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};

/// Longest owner id accepted, in bytes (its token is 1.6× as long).
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
    #[error("'{0}' is not a valid owner token (lowercase base32 expected)")]
    BadToken(String),
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

    /// The subject-safe token for this owner (`[a-z2-7]+`).
    pub fn token(&self) -> String {
        BASE32_NOPAD.encode(self.0.as_bytes()).to_ascii_lowercase()
    }

    /// Recovers an owner id from its subject token.
    pub fn from_token(token: &str) -> Result<Self, OwnerError> {
        let bad = || OwnerError::BadToken(token.to_owned());
        if token
            .bytes()
            .any(|b| !matches!(b, b'a'..=b'z' | b'2'..=b'7'))
        {
            return Err(bad());
        }
        let bytes = BASE32_NOPAD
            .decode(token.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad())?;
        let id = String::from_utf8(bytes).map_err(|_| bad())?;
        Self::new(id)
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

    #[test]
    fn hostile_ids_become_plain_tokens() {
        for raw in ["alice", "alice.>", "*", "a b", "ünïcødé", ">"] {
            let owner = OwnerId::new(raw).unwrap();
            let token = owner.token();
            assert!(token
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')));
            assert_eq!(OwnerId::from_token(&token).unwrap(), owner);
        }
        assert_ne!(
            OwnerId::new("alice").unwrap().token(),
            OwnerId::new("alice.>").unwrap().token()
        );
    }

    #[test]
    fn rejects_bad_ids_and_tokens() {
        assert_eq!(OwnerId::new(""), Err(OwnerError::Empty));
        assert_eq!(OwnerId::new("a\nb"), Err(OwnerError::ControlCharacter));
        assert_eq!(OwnerId::new("x".repeat(129)), Err(OwnerError::TooLong));
        assert!(OwnerId::from_token("ABC").is_err());
        assert!(OwnerId::from_token("a.b").is_err());
    }
}
