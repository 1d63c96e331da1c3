//! Server-sent events as chat-completions streams send them: `data: {json}`
//! lines, events separated by a blank line, `data: [DONE]` at the end.
//! Bytes arrive in arbitrary pieces, so lines are reassembled here.

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// A content token (possibly empty, e.g. the role-only first chunk).
    Token(String),
    /// `[DONE]`: the completion is over.
    Done,
}

/// Reassembles lines and events from body pieces.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds a piece of the body; returns the events it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, super::LlmError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if let Some(e) = self.dispatch()? {
                    out.push(e);
                }
            } else if let Some(data) = line.strip_prefix("data:") {
                self.data
                    .push(data.strip_prefix(' ').unwrap_or(data).to_owned());
            }
            // Comments (`: keep-alive`), `event:`, `id:` and `retry:` carry
            // nothing a completion needs.
        }
        Ok(out)
    }

    /// Whatever is left when the body ends without a final blank line.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, super::LlmError> {
        if !self.line.is_empty() {
            self.push(b"\n")?;
        }
        self.dispatch()
    }

    fn dispatch(&mut self) -> Result<Option<SseEvent>, super::LlmError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let data = std::mem::take(&mut self.data).join("\n");
        if data.trim() == "[DONE]" {
            return Ok(Some(SseEvent::Done));
        }
        token(&data).map(Some)
    }
}

/// The content token of one `chat.completion.chunk`.
fn token(data: &str) -> Result<SseEvent, super::LlmError> {
    let v: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| super::LlmError::Protocol(format!("a stream event is not JSON: {e}")))?;
    if let Some(err) = v.get("error") {
        let msg = err
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string());
        return Err(super::LlmError::Protocol(format!(
            "the model reported: {msg}"
        )));
    }
    let content = v
        .pointer("/choices/0/delta/content")
        .and_then(|c| c.as_str())
        .unwrap_or("");
    Ok(SseEvent::Token(content.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_decode_to_tokens_then_done() {
        let body = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n: keep-alive\n\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"Mito\"}}]}\r\n\r\n\
                    data: {\"choices\":[{\"delta\":{\"content\":\"chondria [1]\"}}]}\n\n\
                    data: [DONE]\n\n";
        for cut in [1, 7, 13, 64] {
            let mut d = SseDecoder::default();
            let mut events = Vec::new();
            for piece in body.as_bytes().chunks(cut) {
                events.extend(d.push(piece).unwrap());
            }
            assert_eq!(
                events,
                vec![
                    SseEvent::Token(String::new()),
                    SseEvent::Token("Mito".into()),
                    SseEvent::Token("chondria [1]".into()),
                    SseEvent::Done
                ],
                "pieces of {cut}"
            );
        }
    }

    #[test]
    fn an_error_event_or_garbage_is_an_error() {
        let mut d = SseDecoder::default();
        assert!(d
            .push(b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n")
            .unwrap_err()
            .to_string()
            .contains("overloaded"));
        assert!(SseDecoder::default().push(b"data: nope\n\n").is_err());
        let mut d = SseDecoder::default();
        d.push(b"data: [DONE]").unwrap();
        assert_eq!(d.finish().unwrap(), Some(SseEvent::Done));
    }
}
