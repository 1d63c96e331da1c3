//! mnemo's outbound HTTP: one HTTP/1.1 connection per request (hyper's
//! client connection), TLS through rustls with the machine's root
//! certificates for `https://`, every wait bounded. Used by the LLM client
//! ([`crate::llm::openai`]) and by the API to fetch an identity provider's
//! JWK Set ([`get`]).
//!
//! Must not: follow redirects, pool connections, or accept credentials in a
//! URL (keys go in headers, from configuration).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::rustls;

/// Where a URL points: scheme, host, port and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]`, for the `Host` header.
    pub authority: String,
    /// The path and query (`/` when empty).
    pub path: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL without credentials in it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL '{url}': {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("'{url}' must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| format!("'{url}' has no host"))?;
        if authority.contains('@') {
            return Err("credentials do not belong in a URL".into());
        }
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        Ok(Self {
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            https,
            host,
            authority,
        })
    }

    /// Whether the host is this machine (plain HTTP is safe only there).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// A connection (TLS for `https://`) within `wait`.
    pub async fn connect(&self, wait: Duration) -> Result<Box<dyn Io>, String> {
        let tcp = timeout(wait, TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .map_err(|_| format!("no connection within {wait:?}"))?
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        if !self.https {
            return Ok(Box::new(tcp));
        }
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| e.to_string())?;
        let tls = timeout(wait, tls_connector()?.connect(name, tcp))
            .await
            .map_err(|_| format!("no TLS handshake within {wait:?}"))?
            .map_err(|e| e.to_string())?;
        Ok(Box::new(tls))
    }
}

/// A byte stream to a server.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// rustls with the machine's roots, built once.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err("no trusted root certificates on this machine".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    config.clone().map(tokio_rustls::TlsConnector::from)
}

/// `GET url`: the body when the status is 2xx, at most `max_bytes` of it,
/// the whole exchange within `wait`.
pub async fn get(url: &str, max_bytes: usize, wait: Duration) -> Result<Bytes, String> {
    let target = Target::parse(url)?;
    let exchange = async {
        let io = target.connect(wait).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = http::Request::get(target.path.as_str())
            .header(http::header::HOST, target.authority.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
                if out.len() + data.len() > max_bytes {
                    return Err(format!("the body is over {max_bytes} bytes"));
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(Bytes::from(out))
    };
    timeout(wait, exchange)
        .await
        .map_err(|_| format!("no complete answer within {wait:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_credentials_refused() {
        let t = Target::parse("http://127.0.0.1:8080/realms/x/certs?a=1").unwrap();
        assert_eq!(
            (t.https, t.port, t.path.as_str(), t.is_loopback()),
            (false, 8080, "/realms/x/certs?a=1", true)
        );
        let t = Target::parse("https://idp.example.com").unwrap();
        assert_eq!(
            (t.https, t.port, t.path.as_str(), t.is_loopback()),
            (true, 443, "/", false)
        );
        for bad in ["ftp://x/", "not a url", "http://user:key@host/"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
