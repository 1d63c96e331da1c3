//! Content-addressed blobs on the JetStream Object Store.
//!
//! Uploaded files and extracted text are too large for events (every event
//! message stays well under 1 MiB), so they live here under the lowercase hex
//! SHA-256 of their bytes and events carry that hash. Identical bytes are
//! stored once. The Object Store computes its own SHA-256 while storing; a
//! put whose digest disagrees with the name is refused, so a name always
//! means those exact bytes.
//!
//! Reads go through direct gets (the chunks one by one, by subject) rather
//! than the Object Store's reader, which creates an unnamed consumer: the
//! roles that read blobs may not create consumers they could point
//! anywhere (`nats.conf`). Every read checks the bytes against the name.

use async_nats::jetstream::object_store::{InfoErrorKind, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::Context;
use data_encoding::BASE64URL;
use sha2::{Digest, Sha256};
use tokio::io::AsyncRead;

use crate::error::{BusError, BusErrorKind};
use crate::namespace::Namespace;

/// Chunk size of stored objects: large enough to keep message count low,
/// small enough to stay far from the server's max payload.
const CHUNK_SIZE: usize = 256 * 1024;

/// The blob store of a namespace.
#[derive(Clone)]
pub struct BlobStore {
    store: ObjectStore,
    /// The bucket's stream, for reads by direct get.
    stream: Stream,
    bucket: String,
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
        let bucket = ns.blob_bucket();
        let store = js
            .get_object_store(&bucket)
            .await
            .map_err(|e| BusError::unavailable(format!("cannot open blob bucket {bucket}"), e))?;
        let stream = js
            .get_stream(format!("OBJ_{bucket}"))
            .await
            .map_err(|e| BusError::unavailable(format!("cannot open blob bucket {bucket}"), e))?;
        Ok(Self {
            store,
            stream,
            bucket,
        })
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

    /// Whether `bytes` more fit under the bucket's size limit (when an
    /// operator set one): [`BusErrorKind::Full`] if not. Checked before a
    /// put, so that a full store refuses before a partial blob is written
    /// (uploads racing for the last room may still be refused by JetStream
    /// mid-put; their chunks stay until the bucket is compacted).
    pub async fn check_room(&self, bytes: u64) -> Result<(), BusError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| BusError::unavailable("cannot read the blob store's size", e))?;
        let max = info.config.max_bytes;
        if max > 0 && info.state.bytes.saturating_add(bytes) > max as u64 {
            return Err(BusError::new(
                BusErrorKind::Full,
                format!(
                    "the upload store is at its size limit ({} of {} MiB used, {} MiB more asked)",
                    info.state.bytes >> 20,
                    max >> 20,
                    bytes.div_ceil(1 << 20)
                ),
            ));
        }
        Ok(())
    }

    /// Bytes stored and the size limit (None: no limit): for `mnemo stats`.
    pub async fn size(&self) -> Result<(u64, Option<u64>), BusError> {
        let mut stream = self.stream.clone();
        let info = stream
            .info()
            .await
            .map_err(|e| BusError::unavailable("cannot read the blob store's size", e))?;
        let max = u64::try_from(info.config.max_bytes).ok().filter(|&m| m > 0);
        Ok((info.state.bytes, max))
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
        let info = self.store.put(meta, data).await.map_err(|e| {
            if crate::error::is_stream_full(&e) {
                BusError::with_source(
                    BusErrorKind::Full,
                    "the upload store is at its size limit",
                    e,
                )
            } else {
                BusError::unavailable(format!("cannot store blob {sha256_hex}"), e)
            }
        })?;
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

    /// Reads a whole blob into memory, and checks it is what its name says.
    pub async fn get(&self, sha256_hex: &str) -> Result<Vec<u8>, BusError> {
        let mut chunks = self.chunks(sha256_hex).await?;
        let mut out = Vec::with_capacity(chunks.size());
        while let Some(chunk) = chunks.next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads a blob piece by piece (the object store's chunks), so a
    /// large one is never held whole: [`BlobChunks::next`] checks size and
    /// digest once the last piece is read, and fails then if they are
    /// not what the name says.
    pub async fn chunks(&self, sha256_hex: &str) -> Result<BlobChunks, BusError> {
        check_name(sha256_hex)?;
        let info = match self.store.info(sha256_hex).await {
            Ok(info) if !info.deleted => info,
            Ok(_) => return Err(not_found(sha256_hex)),
            Err(e) if e.kind() == InfoErrorKind::NotFound => return Err(not_found(sha256_hex)),
            Err(e) => return Err(cannot_read(sha256_hex, &e)),
        };
        Ok(BlobChunks {
            stream: self.stream.clone(),
            subject: format!("$O.{}.C.{}", self.bucket, info.nuid),
            name: sha256_hex.to_owned(),
            size: info.size,
            left: info.chunks,
            next: 1,
            read: 0,
            digest: Sha256::new(),
        })
    }
}

/// A blob being read piece by piece ([`BlobStore::chunks`]).
pub struct BlobChunks {
    stream: Stream,
    subject: String,
    name: String,
    size: usize,
    left: usize,
    next: u64,
    read: usize,
    digest: Sha256,
}

impl BlobChunks {
    /// The blob's size as stored.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The next piece; `None` after the last, once size and digest check.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>, BusError> {
        if self.left == 0 {
            let digest = hex::encode(std::mem::take(&mut self.digest).finalize());
            if self.read != self.size || digest != self.name {
                return Err(BusError::new(
                    BusErrorKind::Corrupt,
                    format!("blob {} does not hold the bytes its name says", self.name),
                ));
            }
            return Ok(None);
        }
        let chunk = self
            .stream
            .direct_get_next_for_subject(self.subject.as_str(), Some(self.next))
            .await
            .map_err(|e| match e.kind() {
                DirectGetErrorKind::NotFound => BusError::new(
                    BusErrorKind::Corrupt,
                    format!("blob {} is missing chunks", self.name),
                ),
                _ => cannot_read(&self.name, &e),
            })?;
        self.next = chunk.sequence + 1;
        self.left -= 1;
        self.read += chunk.payload.len();
        self.digest.update(&chunk.payload);
        Ok(Some(chunk.payload))
    }
}

fn cannot_read(sha256_hex: &str, e: &dyn std::fmt::Display) -> BusError {
    BusError::new(
        BusErrorKind::Unavailable,
        format!("cannot read blob {sha256_hex}: {e}"),
    )
}

fn not_found(sha256_hex: &str) -> BusError {
    BusError::new(
        BusErrorKind::NotFound,
        format!("blob {sha256_hex} not found"),
    )
}
