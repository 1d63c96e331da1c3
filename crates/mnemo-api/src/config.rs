//! API configuration.

use std::net::SocketAddr;
use std::time::Duration;

/// Default upload size limit: 256 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 256 * 1024 * 1024;

/// Everything the API server needs besides the bus.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    /// HS256 secret that signs and verifies bearer tokens.
    pub jwt_secret: Vec<u8>,
    pub max_upload_bytes: u64,
    /// Uploads larger than this are spooled to a temporary file, not memory.
    pub spool_memory_bytes: usize,
    /// Longest a List waits for the read model to reach `min_sequence`.
    pub max_consistency_wait: Duration,
    /// Aggregates kept hot in the event store's cache.
    pub aggregate_cache: usize,
    /// Live messages a progress watcher may fall behind before it is told
    /// to resume from its last sequence.
    pub watch_queue: usize,
    /// How long a stopping server waits for open calls (e.g. uploads,
    /// progress streams of clients that stopped reading) before closing them.
    pub shutdown_grace: Duration,
}

impl ApiConfig {
    pub fn new(listen: SocketAddr, database_url: impl Into<String>, jwt_secret: Vec<u8>) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            jwt_secret,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            spool_memory_bytes: 8 * 1024 * 1024,
            max_consistency_wait: Duration::from_secs(10),
            aggregate_cache: 100_000,
            watch_queue: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
