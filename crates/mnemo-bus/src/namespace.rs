//! The namespace: one prefix from which every name of an install is derived.
//!
//! Several installs, and every test, share one NATS server and one PostgreSQL
//! server; the namespace keeps them apart. It prefixes the stream, every
//! subject, the blob bucket, durable consumer names and the SQL schema, so a
//! namespace can be deleted without touching any other.

use std::fmt;

use crate::error::BusError;

/// A validated namespace: `[a-z][a-z0-9_]{0,31}` without `__`, usable verbatim as a
/// subject token, a (case-folded) stream name, and an unquoted SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    pub fn new(name: impl Into<String>) -> Result<Self, BusError> {
        let name = name.into();
        let mut bytes = name.bytes();
        // No `__`: derived names (e.g. a rebuild's `<ns>__rebuild` schema)
        // use it as their separator, so no namespace can collide with them.
        let ok = name.len() <= 32
            && !name.contains("__")
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(name))
        } else {
            Err(BusError::config(format!(
                "namespace '{name}' must match [a-z][a-z0-9_]{{0,31}} without '__'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The event stream: `<NS>_EVENTS`.
    pub fn event_stream(&self) -> String {
        format!("{}_EVENTS", self.0.to_ascii_uppercase())
    }

    /// Every event subject of this install: `<ns>.ev.>`.
    pub fn all_events(&self) -> String {
        format!("{}.ev.>", self.0)
    }

    /// Subject prefix of one aggregate type: `<ns>.ev.<kind>` (kind: `doc`, `learn`).
    pub fn events_of(&self, kind: &str) -> String {
        format!("{}.ev.{kind}", self.0)
    }

    /// Subject of one aggregate: `<ns>.ev.<kind>.<aggregate id>`, where the
    /// aggregate id is `<owner token>.<id>` (see `mnemo_domain`).
    pub fn aggregate_subject(&self, kind: &str, aggregate_id: &str) -> String {
        format!("{}.ev.{kind}.{aggregate_id}", self.0)
    }

    /// The dead-letter stream: `<NS>_DLQ`, subjects `<ns>.dlq.>`.
    pub fn dlq_stream(&self) -> String {
        format!("{}_DLQ", self.0.to_ascii_uppercase())
    }

    /// Dead letters of one service: `<ns>.dlq.<service>`.
    pub fn dlq_subject(&self, service: &str) -> String {
        format!("{}.dlq.{service}", self.0)
    }

    /// Blob bucket (Object Store): `<ns>_blobs`.
    pub fn blob_bucket(&self) -> String {
        format!("{}_blobs", self.0)
    }

    /// The keyring stream (owners' wrapped data keys, erasure markers, the
    /// namespace's key record): `<NS>_KEYS`.
    pub fn keys_stream(&self) -> String {
        format!("{}_KEYS", self.0.to_ascii_uppercase())
    }

    /// Subject of an owner's wrapped data key: `<ns>.keys.<owner token>`.
    pub fn key_subject(&self, owner_token: &str) -> String {
        format!("{}.keys.{owner_token}", self.0)
    }

    /// Subject of an owner's erasure marker: `<ns>.erased.<owner token>`.
    pub fn erased_subject(&self, owner_token: &str) -> String {
        format!("{}.erased.{owner_token}", self.0)
    }

    /// Subject of the namespace's key record (KEK id, token scheme).
    pub fn keyring_subject(&self) -> String {
        format!("{}.keyring", self.0)
    }

    /// The owner token of an event subject (`<ns>.ev.<kind>.<token>.…`).
    pub fn owner_token_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject
            .strip_prefix(self.0.as_str())?
            .strip_prefix(".ev.")?;
        let mut parts = rest.split('.');
        parts.next()?;
        parts.next().filter(|t| !t.is_empty())
    }

    /// A durable consumer's name: `<ns>_<service>`.
    pub fn consumer(&self, service: &str) -> String {
        format!("{}_{service}", self.0)
    }

    /// The PostgreSQL schema holding this install's read models.
    pub fn sql_schema(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that an aggregate id is two or more plain subject tokens.
pub(crate) fn valid_aggregate_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_namespace() {
        let ns = Namespace::new("t_1").unwrap();
        assert_eq!(ns.event_stream(), "T_1_EVENTS");
        assert_eq!(ns.aggregate_subject("doc", "abc.x-1"), "t_1.ev.doc.abc.x-1");
        assert_eq!(ns.blob_bucket(), "t_1_blobs");
        assert_eq!(ns.consumer("projector"), "t_1_projector");
    }

    #[test]
    fn rejects_names_that_would_escape() {
        for bad in [
            "",
            "A",
            "a.b",
            "a*",
            "a>",
            "1a",
            "a-b",
            "a__b",
            &"a".repeat(33),
        ] {
            assert!(Namespace::new(bad).is_err(), "{bad}");
        }
        assert!(valid_aggregate_id("abc.0190-aa"));
        assert!(!valid_aggregate_id("abc.>"));
        assert!(!valid_aggregate_id("abc..x"));
        assert!(!valid_aggregate_id("a b"));
    }
}
