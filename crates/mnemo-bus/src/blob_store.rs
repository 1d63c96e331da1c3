//! Content-addressed blobs on the JetStream Object Store.
//!
//! Uploaded files and extracted text are too large for events (every event
//! message stays well under 1 MiB), so they live here under the lowercase hex
//! SHA-256 of their bytes and events carry that hash. Identical bytes are
//! stored once. The Object Store computes its own SHA-256 while storing; a
//! put whose digest disagrees with the name is refused, so a name always
//! means those exact bytes.

use async_nats::jetstream::object_store::{
    GetErrorKind, InfoErrorKind, ObjectMetadata, ObjectStore,
};
use async_nats::jetstream::Context;
use data_encoding::BASE64URL;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{BusError, BusErrorKind};
use crate::namespace::Namespace;

/// Chunk size of stored objects: large enough to keep message count low,
/// small enough to stay far from the server's max payload.
const CHUNK_SIZE: usize = 256 * 1024;

/// The blob store of a namespace.
#[derive(Clone)]
pub struct BlobStore {
    store: ObjectStore,
}

/// Checks a blob name: 64 lowercase hex digits.
fn check_name(sha256_hex: &str) -> Result<(), BusError> {
    if sha256_hex.len() == 64
        && sha256_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(BusError::config(format!(
            "'{sha256_hex}' is not a SHA-256 hex digest"
        )))
    }
}

impl BlobStore {
    /// Opens the namespace's bucket (created by [`crate::setup::ensure_blob_bucket`]).
    pub async fn open(js: &Context, ns: &Namespace) -> Result<Self, BusError> {
        let store = js.get_object_store(ns.blob_bucket()).await.map_err(|e| {
            BusError::unavailable(format!("cannot open blob bucket {}", ns.blob_bucket()), e)
        })?;
        Ok(Self { store })
    }

    /// Whether a blob with this hash is stored.
    pub async fn exists(&self, sha256_hex: &str) -> Result<bool, BusError> {
        check_name(sha256_hex)?;
        match self.store.info(sha256_hex).await {
            Ok(info) => Ok(!info.deleted),
            Err(e) if e.kind() == InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(BusError::unavailable("cannot query the blob store", e)),
        }
    }

    /// Stores `data` under `sha256_hex` unless it is already there.
    /// Returns whether bytes were written. The caller has hashed the bytes;
    /// the store re-hashes them and a mismatch is an error.
    pub async fn put(
        &self,
        sha256_hex: &str,
        data: &mut (impl AsyncRead + Unpin),
    ) -> Result<bool, BusError> {
        if self.exists(sha256_hex).await? {
            return Ok(false);
        }
        let meta = ObjectMetadata {
            name: sha256_hex.to_owned(),
            chunk_size: Some(CHUNK_SIZE),
            ..Default::default()
        };
        let info = self
            .store
            .put(meta, data)
            .await
            .map_err(|e| BusError::unavailable(format!("cannot store blob {sha256_hex}"), e))?;
        let expected = hex::decode(sha256_hex)
            .map(|d| format!("SHA-256={}", BASE64URL.encode(&d)))
            .unwrap_or_default();
        if info.digest.as_deref() != Some(expected.as_str()) {
            // The bytes were not what the name promises: do not leave them.
            let _ = self.store.delete(sha256_hex).await;
            return Err(BusError::new(
                BusErrorKind::Rejected,
                format!(
                    "blob digest mismatch for {sha256_hex}: stored {:?}",
                    info.digest
                ),
            ));
        }
        Ok(true)
    }

    /// Reads a whole blob into memory.
    pub async fn get(&self, sha256_hex: &str) -> Result<Vec<u8>, BusError> {
        check_name(sha256_hex)?;
        let mut object = self.store.get(sha256_hex).await.map_err(|e| {
            if e.kind() == GetErrorKind::NotFound {
                BusError::new(
                    BusErrorKind::NotFound,
                    format!("blob {sha256_hex} not found"),
                )
            } else {
                BusError::unavailable(format!("cannot read blob {sha256_hex}"), e)
            }
        })?;
        let mut out = Vec::new();
        object
            .read_to_end(&mut out)
            .await
            .map_err(|e| BusError::unavailable(format!("cannot read blob {sha256_hex}"), e))?;
        Ok(out)
    }
}
