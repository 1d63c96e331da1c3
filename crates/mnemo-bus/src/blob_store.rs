//! Each owner's blobs on the JetStream Object Store, sealed with the
//! owner's data key.
//!
//! Uploaded files and extracted text are too large for events (every event
//! message stays well under 1 MiB), so they live here and events carry the
//! SHA-256 of their bytes. A blob's object name is
//! [`OwnerKey::blob_name`]: the owner's token and a keyed hash of the
//! SHA-256, so identical bytes of one owner are stored once, owners never
//! share a blob (nor learn, by timing, that another holds the same bytes),
//! and an erased owner's names say nothing. The bytes are sealed segment
//! by segment ([`crate::keys::seal`]); every read opens them and checks the
//! plaintext against the SHA-256 asked for.
//!
//! Blobs stored before keys (named by the bare SHA-256, plaintext, shared
//! across owners) are still read when an owner has no sealed copy.
//!
//! Reads go through direct gets (the chunks one by one, by subject) rather
//! than the Object Store's reader, which creates an unnamed consumer: the
//! roles that read blobs may not create consumers they could point
//! anywhere (`nats.conf`).

use async_nats::jetstream::object_store::{InfoErrorKind, ObjectMetadata, ObjectStore};
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::Context;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

use crate::error::{BusError, BusErrorKind};
use crate::keys::seal::{BLOB_MAGIC, OVERHEAD, SEGMENT};
use crate::keys::OwnerKey;
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

    /// Whether `key`'s owner has a blob with this hash (sealed, or stored
    /// before keys).
    pub async fn exists(&self, key: &OwnerKey, sha256_hex: &str) -> Result<bool, BusError> {
        check_name(sha256_hex)?;
        Ok(self.object_exists(&key.blob_name(sha256_hex)).await?
            || self.object_exists(sha256_hex).await?)
    }

    async fn object_exists(&self, name: &str) -> Result<bool, BusError> {
        match self.store.info(name).await {
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

    /// Stores `data`, sealed with `key`, as that owner's blob `sha256_hex`
    /// unless it is already there. Returns whether bytes were written. The
    /// caller has hashed the bytes; they are hashed again while sealed, and
    /// a mismatch is an error (nothing is left stored).
    pub async fn put(
        &self,
        key: &OwnerKey,
        sha256_hex: &str,
        data: &mut (impl AsyncRead + Unpin),
    ) -> Result<bool, BusError> {
        check_name(sha256_hex)?;
        let name = key.blob_name(sha256_hex);
        if self.object_exists(&name).await? {
            return Ok(false);
        }
        let meta = ObjectMetadata {
            name: name.clone(),
            chunk_size: Some(CHUNK_SIZE),
            ..Default::default()
        };
        let mut sealing = SealingReader::new(key.clone(), name.clone(), data);
        let put = self.store.put(meta, &mut sealing).await;
        if let Some(e) = sealing.error.take() {
            let _ = self.store.delete(&name).await;
            return Err(e);
        }
        put.map_err(|e| {
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
        let digest = hex::encode(std::mem::take(&mut sealing.digest).finalize());
        if digest != sha256_hex {
            // The bytes were not what the name promises: do not leave them.
            let _ = self.store.delete(&name).await;
            return Err(BusError::new(
                BusErrorKind::Rejected,
                format!("blob digest mismatch for {sha256_hex}: the bytes hash to {digest}"),
            ));
        }
        Ok(true)
    }

    /// Reads a whole blob of `key`'s owner into memory, checked.
    pub async fn get(&self, key: &OwnerKey, sha256_hex: &str) -> Result<Vec<u8>, BusError> {
        let mut chunks = self.chunks(key, sha256_hex).await?;
        let mut out = Vec::with_capacity(chunks.size());
        while let Some(chunk) = chunks.next().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads a blob of `key`'s owner piece by piece, so a large one is
    /// never held whole: [`BlobChunks::next`] opens each segment, and checks
    /// size and digest once the last is read, failing then if they are not
    /// what was asked for.
    pub async fn chunks(&self, key: &OwnerKey, sha256_hex: &str) -> Result<BlobChunks, BusError> {
        check_name(sha256_hex)?;
        let name = key.blob_name(sha256_hex);
        let (info, sealed) = match self.live_info(&name).await? {
            Some(info) => (info, Some(key.clone())),
            // Stored before keys: the bare hash, plaintext.
            None => match self.live_info(sha256_hex).await? {
                Some(info) => (info, None),
                None => return Err(not_found(sha256_hex)),
            },
        };
        Ok(BlobChunks {
            stream: self.stream.clone(),
            subject: format!("$O.{}.C.{}", self.bucket, info.nuid),
            sha256: sha256_hex.to_owned(),
            name,
            stored: info.size,
            left: info.chunks,
            next: 1,
            read: 0,
            digest: Sha256::new(),
            sealed,
            buffer: Vec::new(),
            segment: 0,
            header_read: false,
        })
    }

    async fn live_info(
        &self,
        name: &str,
    ) -> Result<Option<async_nats::jetstream::object_store::ObjectInfo>, BusError> {
        match self.store.info(name).await {
            Ok(info) if !info.deleted => Ok(Some(info)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == InfoErrorKind::NotFound => Ok(None),
            Err(e) => Err(cannot_read(name, &e)),
        }
    }

    /// Deletes every blob of the owner `token` (an erasure): returns how
    /// many. The bucket's object records are walked by direct gets.
    pub async fn delete_owner(&self, token: &str) -> Result<usize, BusError> {
        let prefix = format!("{token}.");
        let meta_subjects = format!("$O.{}.M.>", self.bucket);
        let mut names = Vec::new();
        let mut next = 1;
        loop {
            let Some(message) = crate::scan::next_message(
                &self.stream,
                &meta_subjects,
                next,
                "the bucket's records",
            )
            .await?
            else {
                break;
            };
            next = message.sequence + 1;
            let Ok(info) = serde_json::from_slice::<async_nats::jetstream::object_store::ObjectInfo>(
                &message.payload,
            ) else {
                continue;
            };
            if !info.deleted && info.name.starts_with(&prefix) {
                names.push(info.name);
            }
        }
        names.sort();
        names.dedup();
        for name in &names {
            self.store.delete(name).await.map_err(|e| {
                BusError::with_source(
                    BusErrorKind::Unavailable,
                    format!("cannot delete blob {name}"),
                    e,
                )
            })?;
        }
        Ok(names.len())
    }
}

/// Seals what it reads: [`BLOB_MAGIC`], then segments of [`SEGMENT`]
/// plaintext bytes, each sealed with the blob's name and index; hashes
/// the plaintext on the way.
struct SealingReader<'a, R> {
    key: OwnerKey,
    name: String,
    inner: &'a mut R,
    plain: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    index: u64,
    eof: bool,
    digest: Sha256,
    error: Option<BusError>,
}

impl<'a, R: AsyncRead + Unpin> SealingReader<'a, R> {
    fn new(key: OwnerKey, name: String, inner: &'a mut R) -> Self {
        Self {
            key,
            name,
            inner,
            plain: Vec::with_capacity(SEGMENT),
            out: BLOB_MAGIC.to_vec(),
            out_pos: 0,
            index: 0,
            eof: false,
            digest: Sha256::new(),
            error: None,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SealingReader<'_, R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof && this.plain.is_empty() {
                return Poll::Ready(Ok(()));
            }
            // Fill a segment (or reach the end), then seal it.
            while !this.eof && this.plain.len() < SEGMENT {
                let len = this.plain.len();
                this.plain.resize(SEGMENT, 0);
                let mut read = ReadBuf::new(&mut this.plain[len..]);
                let polled = std::pin::Pin::new(&mut *this.inner).poll_read(cx, &mut read);
                let n = read.filled().len();
                this.plain.truncate(len + n);
                match polled {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) if n == 0 => this.eof = true,
                    Poll::Ready(Ok(())) => {}
                }
            }
            if this.plain.is_empty() {
                continue;
            }
            this.digest.update(&this.plain);
            match this.key.seal_segment(&this.name, this.index, &this.plain) {
                Ok(sealed) => {
                    this.out = sealed;
                    this.out_pos = 0;
                    this.index += 1;
                    this.plain.clear();
                }
                Err(e) => {
                    let io = std::io::Error::other(e.to_string());
                    this.error = Some(e);
                    return Poll::Ready(Err(io));
                }
            }
        }
    }
}

/// A blob being read piece by piece ([`BlobStore::chunks`]).
pub struct BlobChunks {
    stream: Stream,
    subject: String,
    /// The plaintext's SHA-256 asked for, and the object's name.
    sha256: String,
    name: String,
    /// Bytes stored (sealed: header, segments and their overhead).
    stored: usize,
    left: usize,
    next: u64,
    /// Plaintext bytes handed out.
    read: usize,
    digest: Sha256,
    /// The owner's key; None for a blob stored before keys (plaintext).
    sealed: Option<OwnerKey>,
    /// Sealed bytes not yet opened.
    buffer: Vec<u8>,
    segment: u64,
    header_read: bool,
}

impl BlobChunks {
    /// The blob's plaintext size.
    pub fn size(&self) -> usize {
        if self.sealed.is_none() {
            return self.stored;
        }
        let body = self.stored.saturating_sub(BLOB_MAGIC.len());
        let sealed_segment = SEGMENT + OVERHEAD;
        let (full, rest) = (body / sealed_segment, body % sealed_segment);
        full * SEGMENT + rest.saturating_sub(OVERHEAD)
    }

    /// The next piece of plaintext; `None` after the last, once size and
    /// digest check.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>, BusError> {
        let Some(key) = self.sealed.clone() else {
            return self.next_plain().await;
        };
        let sealed_segment = SEGMENT + OVERHEAD;
        loop {
            if !self.header_read && self.buffer.len() >= BLOB_MAGIC.len() {
                if &self.buffer[..BLOB_MAGIC.len()] != BLOB_MAGIC {
                    return Err(self.damaged());
                }
                self.buffer.drain(..BLOB_MAGIC.len());
                self.header_read = true;
            }
            let whole = self.header_read && self.buffer.len() >= sealed_segment;
            let last = self.header_read && self.left == 0 && !self.buffer.is_empty();
            if whole || last {
                let take = self.buffer.len().min(sealed_segment);
                let piece: Vec<u8> = self.buffer.drain(..take).collect();
                let plain = key.open_segment(&self.name, self.segment, &piece)?;
                self.segment += 1;
                self.read += plain.len();
                self.digest.update(&plain);
                return Ok(Some(bytes::Bytes::from(plain)));
            }
            if self.left == 0 {
                return self.finish();
            }
            let chunk = self.next_chunk().await?;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    async fn next_plain(&mut self) -> Result<Option<bytes::Bytes>, BusError> {
        if self.left == 0 {
            return self.finish();
        }
        let chunk = self.next_chunk().await?;
        self.read += chunk.len();
        self.digest.update(&chunk);
        Ok(Some(chunk))
    }

    fn finish(&mut self) -> Result<Option<bytes::Bytes>, BusError> {
        let digest = hex::encode(std::mem::take(&mut self.digest).finalize());
        if self.read != self.size() || digest != self.sha256 || !self.buffer.is_empty() {
            return Err(self.damaged());
        }
        Ok(None)
    }

    fn damaged(&self) -> BusError {
        BusError::new(
            BusErrorKind::Corrupt,
            format!("blob {} does not hold the bytes its name says", self.sha256),
        )
    }

    async fn next_chunk(&mut self) -> Result<bytes::Bytes, BusError> {
        let chunk = self
            .stream
            .direct_get_next_for_subject(self.subject.as_str(), Some(self.next))
            .await
            .map_err(|e| match e.kind() {
                DirectGetErrorKind::NotFound => BusError::new(
                    BusErrorKind::Corrupt,
                    format!("blob {} is missing chunks", self.sha256),
                ),
                _ => cannot_read(&self.sha256, &e),
            })?;
        self.next = chunk.sequence + 1;
        self.left -= 1;
        Ok(chunk.payload)
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
