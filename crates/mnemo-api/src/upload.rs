//! Receiving an upload stream: size limit, SHA-256, content sniffing, and a
//! spool that keeps small files in memory and large ones in a temporary file.
//!
//! Nothing is stored or appended until the stream has ended cleanly: a
//! client that breaks off leaves only a dropped spool behind.

use std::io::{Cursor, SeekFrom};

use mnemo_domain::content::{ContentType, Sniffer};
use mnemo_domain::Sha256Hex;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt};
use tonic::Status;

use crate::status;

/// Longest file name kept, in bytes.
const MAX_FILENAME: usize = 255;

/// Bytes held in memory until they outgrow `memory_limit`, then on disk.
enum Spool {
    Memory(Vec<u8>),
    File(tokio::fs::File),
}

/// An upload being received.
pub struct IncomingUpload {
    filename: String,
    sniffer: Sniffer,
    hasher: Sha256,
    spool: Spool,
    size: u64,
    max_bytes: u64,
    memory_limit: usize,
}

/// An upload received completely and classified.
pub struct ReceivedUpload {
    pub filename: String,
    pub content_type: ContentType,
    pub sha256: Sha256Hex,
    pub size: u64,
    spool: Spool,
}

/// Keeps the last path component, trims it, refuses empty or control-laden names.
pub fn clean_filename(raw: &str) -> Result<String, Status> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if name.is_empty() {
        return Err(Status::invalid_argument("metadata.filename is empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(Status::invalid_argument(
            "metadata.filename contains control characters",
        ));
    }
    if name.len() > MAX_FILENAME {
        return Err(Status::invalid_argument(format!(
            "metadata.filename is longer than {MAX_FILENAME} bytes"
        )));
    }
    Ok(name.to_owned())
}

impl IncomingUpload {
    pub fn new(
        filename: &str,
        declared_type: Option<&str>,
        max_bytes: u64,
        memory_limit: usize,
    ) -> Result<Self, Status> {
        let filename = clean_filename(filename)?;
        let sniffer =
            Sniffer::new(&filename, declared_type).map_err(|e| status::from_content_error(&e))?;
        Ok(Self {
            filename,
            sniffer,
            hasher: Sha256::new(),
            spool: Spool::Memory(Vec::new()),
            size: 0,
            max_bytes,
            memory_limit,
        })
    }

    /// Takes the next chunk of bytes.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), Status> {
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            return Err(Status::resource_exhausted(format!(
                "upload exceeds the size limit of {} bytes",
                self.max_bytes
            )));
        }
        self.sniffer.feed(chunk);
        self.hasher.update(chunk);
        let spill = matches!(&self.spool, Spool::Memory(buf) if buf.len() + chunk.len() > self.memory_limit);
        if spill {
            let file = tempfile::tempfile()
                .map_err(|e| crate::status::from_io_error("spooling the upload", &e))?;
            let mut file = tokio::fs::File::from_std(file);
            if let Spool::Memory(buf) = &self.spool {
                file.write_all(buf)
                    .await
                    .map_err(|e| crate::status::from_io_error("spooling the upload", &e))?;
            }
            self.spool = Spool::File(file);
        }
        match &mut self.spool {
            Spool::Memory(buf) => buf.extend_from_slice(chunk),
            Spool::File(f) => f
                .write_all(chunk)
                .await
                .map_err(|e| crate::status::from_io_error("spooling the upload", &e))?,
        }
        Ok(())
    }

    /// Ends the upload: classifies the bytes (refusing what mnemo cannot use).
    pub fn finish(self) -> Result<ReceivedUpload, Status> {
        let content_type = self
            .sniffer
            .finish()
            .map_err(|e| status::from_content_error(&e))?;
        let digest: [u8; 32] = self.hasher.finalize().into();
        Ok(ReceivedUpload {
            filename: self.filename,
            content_type,
            sha256: Sha256Hex::from_digest(&digest),
            size: self.size,
            spool: self.spool,
        })
    }
}

impl ReceivedUpload {
    /// A reader over the received bytes, from the start.
    pub async fn reader(self) -> Result<Box<dyn AsyncRead + Unpin + Send>, Status> {
        match self.spool {
            Spool::Memory(buf) => Ok(Box::new(Cursor::new(buf))),
            Spool::File(mut f) => {
                f.flush()
                    .await
                    .map_err(|e| crate::status::from_io_error("reading the spooled upload", &e))?;
                f.seek(SeekFrom::Start(0))
                    .await
                    .map_err(|e| crate::status::from_io_error("reading the spooled upload", &e))?;
                Ok(Box::new(f))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn spills_to_disk_and_reads_back_the_same_bytes() {
        let mut up = IncomingUpload::new("a/b/notes.txt", None, 1 << 20, 10).unwrap();
        up.push(b"hello ").await.unwrap();
        up.push(b"world, this is long").await.unwrap();
        let got = up.finish().unwrap();
        assert_eq!(got.filename, "notes.txt");
        assert_eq!(got.content_type, ContentType::PlainText);
        assert_eq!(got.size, 25);
        let mut out = Vec::new();
        got.reader()
            .await
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, b"hello world, this is long");
    }

    #[tokio::test]
    async fn refuses_oversize_and_bad_names() {
        let mut up = IncomingUpload::new("x.txt", None, 4, 10).unwrap();
        let err = up.push(b"12345").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(IncomingUpload::new("  ", None, 4, 10).is_err());
        assert!(IncomingUpload::new("a\u{7}b", None, 4, 10).is_err());
    }
}
