//! The LLM behind answers and cards: a trait that streams a chat
//! completion's tokens, and its OpenAI-compatible implementation.
//!
//! - [`sse`]: the server-sent-events reader (`data:` lines, `[DONE]`).
//! - [`openai`]: `POST {base}/chat/completions` with `stream: true`.
//!
//! The API key is held only to be sent; it never appears in `Debug`,
//! errors or logs.

pub mod openai;
pub mod sse;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use serde::Serialize;

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system",
            content: content.into(),
        }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user",
            content: content.into(),
        }
    }
}

/// The tokens of a completion as they arrive; an error ends it.
pub type TokenStream = Pin<Box<dyn Stream<Item = Result<String, LlmError>> + Send>>;

/// A chat model that streams its reply.
#[async_trait::async_trait]
pub trait Llm: Send + Sync {
    /// The model's name, recorded with what it produced.
    fn model(&self) -> &str;

    /// Starts a completion of `messages`; the stream yields its tokens.
    async fn chat(&self, messages: &[ChatMessage]) -> Result<TokenStream, LlmError>;
}

/// Why the model gave no (complete) reply.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM configuration: {0}")]
    Config(String),
    #[error("cannot reach the LLM at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("the LLM answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the LLM sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("the LLM's reply is not understood: {0}")]
    Protocol(String),
    #[error("HTTP: {0}")]
    Http(String),
}

/// Where the model is and how long to wait for it.
#[derive(Clone)]
pub struct LlmConfig {
    /// E.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; never logged.
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Longest wait for the response head and between two body pieces.
    pub idle_timeout: Duration,
    pub temperature: f32,
}

impl LlmConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            temperature: 0.2,
        }
    }

    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_shows_in_debug() {
        let c = LlmConfig::new("http://x/v1", "m").with_api_key(Some("sk-secret".into()));
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk-secret"), "{shown}");
        assert!(shown.contains("<set>"));
    }
}
