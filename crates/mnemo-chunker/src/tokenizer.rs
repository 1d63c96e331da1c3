//! The embedding model's tokenizer, counting exactly what the model will see.

use std::path::Path;

use mnemo_domain::chunking::TokenCounter;
use tokenizers::Tokenizer;

/// Why the tokenizer could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the tokenizer from {path}: {reason} (run deploy/model/prepare.sh and source .mnemo/model.env)")]
pub struct TokenizerError {
    pub path: String,
    pub reason: String,
}

/// `tokenizer.json` of the model, with truncation and padding off so a count
/// is the true length (special tokens included).
pub struct ModelTokenizer(Tokenizer);

impl ModelTokenizer {
    /// Loads `<model dir>/tokenizer.json`.
    pub fn from_model_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let err = |reason: String| TokenizerError {
            path: path.display().to_string(),
            reason,
        };
        let mut t = Tokenizer::from_file(&path).map_err(|e| err(e.to_string()))?;
        t.with_truncation(None).map_err(|e| err(e.to_string()))?;
        t.with_padding(None);
        Ok(Self(t))
    }
}

impl TokenCounter for ModelTokenizer {
    fn count(&self, text: &str) -> usize {
        // Encoding a &str cannot fail for a loaded tokenizer; if it ever did,
        // an over-estimate keeps chunks safe (they get smaller, not cut).
        self.0
            .encode(text, true)
            .map(|e| e.len())
            .unwrap_or(usize::MAX / 2)
    }
}
