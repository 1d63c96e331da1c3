//! Projector configuration: its flags (flattened into `mnemo serve`) and
//! what [`crate::run`] is given.

use mnemo_bus::Namespace;

/// Default most events applied in one transaction by the live runners.
pub const DEFAULT_BATCH_SIZE: usize = 512;

/// The projector's own flags, with `MNEMO_PROJECTOR_*` env fallbacks.
#[derive(clap::Args, Debug, Clone)]
pub struct ProjectorArgs {
    /// Most event messages a live runner applies in one transaction (while
    /// catching up; caught up, a batch is what has arrived).
    #[arg(long = "projector-batch-size", env = "MNEMO_PROJECTOR_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub batch_size: usize,
}

impl ProjectorArgs {
    /// The configuration for `namespace` on the database at `database_url`
    /// (both shared with the other services, so they come from the binary).
    pub fn config(&self, namespace: Namespace, database_url: &str) -> ProjectorConfig {
        ProjectorConfig {
            batch_size: self.batch_size,
            ..ProjectorConfig::new(namespace, database_url)
        }
    }
}

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
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        projector: ProjectorArgs,
    }

    #[test]
    fn batch_size_defaults_and_is_bounded() {
        let cli = Cli::try_parse_from(["t"]).map(|c| c.projector.batch_size);
        assert_eq!(cli.ok(), Some(DEFAULT_BATCH_SIZE));
        let cli = Cli::try_parse_from(["t", "--projector-batch-size", "64"]);
        assert_eq!(cli.ok().map(|c| c.projector.batch_size), Some(64));
        assert!(Cli::try_parse_from(["t", "--projector-batch-size", "0"]).is_err());
    }
}
