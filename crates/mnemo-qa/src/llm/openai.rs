//! An OpenAI-compatible chat-completions client: `POST {base}/chat/completions`
//! with `stream: true`, read as server-sent events.
//!
//! One HTTP/1.1 connection per completion (hyper's client connection; TLS
//! through rustls with the machine's root certificates for `https://`):
//! completions are few and long, so pooling would buy nothing. Every wait
//! is bounded: connecting by `connect_timeout`, the response head and each
//! piece of the body by `idle_timeout`, so a stalled server ends the stream
//! with [`LlmError::Timeout`] instead of hanging it.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::timeout;

use crate::http::{Io, Target};

use super::sse::{SseDecoder, SseEvent};
use super::{ChatMessage, Llm, LlmConfig, LlmError, TokenStream};

/// The client; cheap to share.
#[derive(Debug)]
pub struct OpenAiClient {
    config: LlmConfig,
    target: Target,
}

impl OpenAiClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        let mut target = Target::parse(&config.base_url)
            .map_err(|e| LlmError::Config(format!("the LLM base URL: {e}")))?;
        if config.model.trim().is_empty() {
            return Err(LlmError::Config("no LLM model given".into()));
        }
        // `<base path>/chat/completions`.
        target.path = format!("{}/chat/completions", target.path.trim_end_matches('/'));
        Ok(Self { config, target })
    }

    fn connect_error(&self, reason: impl std::fmt::Display) -> LlmError {
        LlmError::Connect {
            url: self.config.base_url.clone(),
            reason: reason.to_string(),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Io>, LlmError> {
        self.target
            .connect(self.config.connect_timeout)
            .await
            .map_err(|e| self.connect_error(e))
    }
}

#[async_trait::async_trait]
impl Llm for OpenAiClient {
    fn model(&self) -> &str {
        &self.config.model
    }

    async fn chat(&self, messages: &[ChatMessage]) -> Result<TokenStream, LlmError> {
        let body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "stream": true,
            "temperature": self.config.temperature,
        });
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "LLM connection ended");
            }
        });
        let mut request = http::Request::post(self.target.path.as_str())
            .header(http::header::HOST, self.target.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some(key) = &self.config.api_key {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| LlmError::Config("the LLM key is not a valid header value".into()))?;
        let idle = self.config.idle_timeout;
        let response = timeout(idle, sender.send_request(request))
            .await
            .map_err(|_| LlmError::Timeout(idle))?
            .map_err(|e| LlmError::Http(e.to_string()))?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            return Err(LlmError::Status {
                status: status.as_u16(),
                body: read_some(&mut body, 2048, idle).await,
            });
        }
        Ok(Box::pin(tokens(body, idle)))
    }
}

/// Up to `limit` bytes of an error body, as text.
async fn read_some(body: &mut Incoming, limit: usize, idle: Duration) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    bytes.truncate(limit);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

struct Reading {
    body: Incoming,
    decoder: SseDecoder,
    pending: VecDeque<String>,
    done: bool,
    idle: Duration,
}

/// The body's content tokens until `[DONE]` (or the body's end).
fn tokens(
    body: Incoming,
    idle: Duration,
) -> impl futures::Stream<Item = Result<String, LlmError>> + Send {
    let start = Reading {
        body,
        decoder: SseDecoder::default(),
        pending: VecDeque::new(),
        done: false,
        idle,
    };
    futures::stream::unfold(Some(start), |state| async move {
        let mut r = state?;
        loop {
            if let Some(t) = r.pending.pop_front() {
                return Some((Ok(t), Some(r)));
            }
            if r.done {
                return None;
            }
            let events = match timeout(r.idle, r.body.frame()).await {
                Err(_) => return Some((Err(LlmError::Timeout(r.idle)), None)),
                Ok(Some(Err(e))) => {
                    return Some((
                        Err(LlmError::Http(format!("the stream broke off: {e}"))),
                        None,
                    ))
                }
                Ok(None) => {
                    r.done = true;
                    r.decoder
                        .finish()
                        .map(|e| e.into_iter().collect::<Vec<_>>())
                }
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => r.decoder.push(&data),
                    Err(_) => Ok(Vec::new()),
                },
            };
            match events {
                Err(e) => return Some((Err(e), None)),
                Ok(events) => {
                    for e in events {
                        match e {
                            SseEvent::Token(t) if !t.is_empty() => r.pending.push_back(t),
                            SseEvent::Token(_) => {}
                            SseEvent::Done => {
                                r.done = true;
                                break;
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_under_the_base_path() {
        let c = OpenAiClient::new(LlmConfig::new("http://127.0.0.1:8080/v1/", "m")).unwrap();
        assert_eq!(
            (c.target.path.as_str(), c.target.port, c.target.https),
            ("/v1/chat/completions", 8080, false)
        );
        let c = OpenAiClient::new(LlmConfig::new("https://api.example.com/v1", "m")).unwrap();
        assert_eq!((c.target.port, c.target.https), (443, true));
        for bad in ["ftp://x/v1", "not a url", "http://user:key@host/v1"] {
            assert!(
                matches!(
                    OpenAiClient::new(LlmConfig::new(bad, "m")),
                    Err(LlmError::Config(_))
                ),
                "{bad}"
            );
        }
    }
}
