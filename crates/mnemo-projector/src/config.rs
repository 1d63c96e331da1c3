//! Projector configuration.

use mnemo_bus::Namespace;

/// Everything the projector needs to run.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub namespace: Namespace,
    /// e.g. `postgres://postgres@127.0.0.1:5432/postgres`
    pub database_url: String,
    /// Most events applied in one transaction.
    pub batch_size: usize,
}

impl ProjectorConfig {
    pub fn new(namespace: Namespace, database_url: impl Into<String>) -> Self {
        Self {
            namespace,
            database_url: database_url.into(),
            batch_size: 512,
        }
    }
}
