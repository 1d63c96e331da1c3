//! A fake OpenAI-compatible chat-completions server for tests: a small
//! HTTP/1.1 responder on `127.0.0.1:0` that streams canned tokens as
//! server-sent events, answers an HTTP error, or breaks off mid-stream —
//! whichever [`Behaviour`] is set — and keeps every request it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the next requests get.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with these content tokens, then `[DONE]`.
    Stream(Vec<String>),
    /// This HTTP status with a JSON error body.
    Status(u16),
    /// 200, chunked, these tokens, then the connection is cut (no `[DONE]`,
    /// no last chunk).
    BreakAfter(Vec<String>),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: String,
}

/// The running server (stopped on drop).
pub struct FakeLlm {
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let behaviour = Arc::new(Mutex::new(behaviour));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (b, s) = (behaviour.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (b, s) = (b.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, b, s).await;
                });
            }
        });
        Self {
            addr,
            behaviour,
            seen,
            task,
        }
    }

    /// `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One `chat.completion.chunk` event carrying `token`.
pub fn event(token: &str) -> String {
    let chunk = serde_json::json!({
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": token}}],
    });
    format!("data: {chunk}\n\n")
}

async fn serve(
    mut conn: TcpStream,
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    // The head, then Content-Length bytes of body.
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut piece).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&piece[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut piece).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&piece[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    seen.lock().expect("lock").push(Seen { head, body });
    let behaviour = behaviour.lock().expect("lock").clone();
    match behaviour {
        Behaviour::Stream(tokens) => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
            )
            .await?;
            for t in tokens {
                conn.write_all(event(&t).as_bytes()).await?;
                conn.flush().await?;
            }
            conn.write_all(b"data: [DONE]\n\n").await?;
        }
        Behaviour::Status(code) => {
            let body = r#"{"error":{"message":"the model is overloaded"}}"#;
            conn.write_all(
                format!(
                    "HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
        }
        Behaviour::BreakAfter(tokens) => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await?;
            for t in tokens {
                let e = event(&t);
                conn.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes())
                    .await?;
                conn.flush().await?;
            }
            // Cut: no terminating chunk.
        }
    }
    conn.flush().await?;
    conn.shutdown().await
}
