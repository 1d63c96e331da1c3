//! Chunker configuration: its flags (flattened into `mnemo serve`, env
//! fallbacks `MNEMO_CHUNK_*`) and what [`crate::run`] is given.

use std::path::PathBuf;
use std::time::Duration;

use mnemo_domain::chunking::ChunkParams;

use crate::ChunkerError;

/// Default documents chunked at once by one process.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The chunker's own flags. The longest chunk (`--max-tokens`) and the
/// model directory are shared with the embedder, so the binary passes them
/// to [`ChunkerArgs::config`].
#[derive(clap::Args, Debug, Clone)]
pub struct ChunkerArgs {
    /// A chunk this long ends at the next paragraph break.
    #[arg(long, env = "MNEMO_CHUNK_TARGET_TOKENS", default_value_t = ChunkParams::default().target_tokens)]
    pub chunk_target_tokens: usize,
    /// Tokens repeated from one chunk at the start of the next.
    #[arg(long, env = "MNEMO_CHUNK_OVERLAP_TOKENS", default_value_t = ChunkParams::default().overlap_tokens)]
    pub chunk_overlap_tokens: usize,
    /// Documents chunked at once by this process.
    #[arg(long = "chunk-concurrency", env = "MNEMO_CHUNK_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub chunk_concurrency: usize,
    /// How long a delivery may go unacknowledged before JetStream hands it
    /// to another copy; the chunker reports progress every quarter of it.
    #[arg(long = "chunk-ack-wait", env = "MNEMO_CHUNK_ACK_WAIT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub chunk_ack_wait: Duration,
}

impl ChunkerArgs {
    /// The configuration, with the model's tokenizer in `model_dir` and its
    /// longest text `max_tokens` (special tokens included).
    pub fn config(
        &self,
        model_dir: PathBuf,
        max_tokens: usize,
    ) -> Result<ChunkerConfig, ChunkerError> {
        let params = ChunkParams {
            max_tokens,
            target_tokens: self.chunk_target_tokens,
            overlap_tokens: self.chunk_overlap_tokens,
        };
        if params.max_tokens < 8
            || params.target_tokens > params.max_tokens
            || params.overlap_tokens >= params.target_tokens
        {
            return Err(ChunkerError::Config(format!(
                "chunk settings must satisfy 8 <= --max-tokens, --chunk-target-tokens <= --max-tokens and --chunk-overlap-tokens < --chunk-target-tokens (got {}, {}, {})",
                params.max_tokens, params.target_tokens, params.overlap_tokens
            )));
        }
        Ok(ChunkerConfig {
            model_dir,
            params,
            concurrency: self.chunk_concurrency,
            ack_wait: self.chunk_ack_wait,
            fair: mnemo_bus::fair::FairShare::default(),
        })
    }
}

/// Everything the chunker needs to run.
#[derive(Debug, Clone)]
pub struct ChunkerConfig {
    /// The prepared model's directory: its `tokenizer.json` counts tokens.
    pub model_dir: PathBuf,
    pub params: ChunkParams,
    /// Documents chunked at once by this process.
    pub concurrency: usize,
    /// JetStream's ack wait for the chunker's consumer.
    pub ack_wait: Duration,
    /// Read-ahead that serves owners in turn (`mnemo_bus::fair`).
    pub fair: mnemo_bus::fair::FairShare,
}

impl ChunkerConfig {
    /// The defaults, with the tokenizer of the model in `model_dir`.
    pub fn new(model_dir: PathBuf) -> Self {
        Self {
            model_dir,
            params: ChunkParams::default(),
            concurrency: DEFAULT_CONCURRENCY,
            ack_wait: Duration::from_secs(15),
            fair: mnemo_bus::fair::FairShare::default(),
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
        chunker: ChunkerArgs,
    }

    #[test]
    fn flag_defaults_are_the_config_defaults() {
        let parsed = Cli::try_parse_from(["t"]).ok().and_then(|c| {
            c.chunker
                .config("/m".into(), ChunkParams::default().max_tokens)
                .ok()
        });
        let Some(parsed) = parsed else {
            panic!("defaults parse and validate")
        };
        let default = ChunkerConfig::new("/m".into());
        assert_eq!(parsed.params, default.params);
        assert_eq!(parsed.concurrency, default.concurrency);
        assert_eq!(parsed.ack_wait, default.ack_wait);
    }

    #[test]
    fn inconsistent_sizes_are_refused() {
        let Ok(cli) = Cli::try_parse_from(["t", "--chunk-target-tokens", "300"]) else {
            panic!("parses")
        };
        let err = cli
            .chunker
            .config("/m".into(), 256)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("--chunk-target-tokens <= --max-tokens")),
            "{err:?}"
        );
        let Ok(cli) = Cli::try_parse_from(["t", "--chunk-overlap-tokens", "999"]) else {
            panic!("parses")
        };
        assert!(cli.chunker.config("/m".into(), 256).is_err());
    }
}
