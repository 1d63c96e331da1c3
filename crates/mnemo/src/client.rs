//! A gRPC channel to the API that sends the bearer token on every call.

use anyhow::{Context, Result};
use mnemo_domain::OwnerId;
use mnemo_proto::v1::audit_service_client::AuditServiceClient;
use mnemo_proto::v1::document_service_client::DocumentServiceClient;
use mnemo_proto::v1::learning_service_client::LearningServiceClient;
use mnemo_proto::v1::progress_service_client::ProgressServiceClient;
use mnemo_proto::v1::qa_service_client::QaServiceClient;
use mnemo_proto::v1::search_service_client::SearchServiceClient;
use mnemo_proto::v1::stats_service_client::StatsServiceClient;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::cli::Global;

#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Documents = DocumentServiceClient<InterceptedService<Channel, Bearer>>;
pub type Progress = ProgressServiceClient<InterceptedService<Channel, Bearer>>;
pub type Stats = StatsServiceClient<InterceptedService<Channel, Bearer>>;
pub type Search = SearchServiceClient<InterceptedService<Channel, Bearer>>;
pub type Qa = QaServiceClient<InterceptedService<Channel, Bearer>>;
pub type Learning = LearningServiceClient<InterceptedService<Channel, Bearer>>;
pub type Audit = AuditServiceClient<InterceptedService<Channel, Bearer>>;

pub struct Clients {
    pub documents: Documents,
    pub progress: Progress,
    pub stats: Stats,
    pub search: Search,
    pub qa: Qa,
    pub learning: Learning,
    pub audit: Audit,
}

/// The token to send: --token, else one minted from the local secret file.
pub fn token(global: &Global) -> Result<String> {
    if let Some(t) = global.token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(t.to_owned());
    }
    let secret = crate::secret::load(global, None, false)?;
    let owner = OwnerId::new(global.owner.clone()).context("--owner")?;
    Ok(mnemo_api::auth::Authenticator::new(&secret).issue(&owner, 3600, false)?)
}

pub async fn connect(global: &Global) -> Result<Clients> {
    let bearer = Bearer(
        format!("Bearer {}", token(global)?)
            .parse()
            .context("the token contains characters not allowed in a header")?,
    );
    let channel = endpoint(global)?
        .initial_stream_window_size(mnemo_api::server::UPLOAD_WINDOW)
        .initial_connection_window_size(2 * mnemo_api::server::UPLOAD_WINDOW)
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot reach the mnemo API at {} (is `mnemo serve` running?)",
                global.server
            )
        })?;
    Ok(Clients {
        documents: DocumentServiceClient::with_interceptor(channel.clone(), bearer.clone())
            .max_decoding_message_size(64 * 1024 * 1024),
        progress: ProgressServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        stats: StatsServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        search: SearchServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        qa: QaServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        learning: LearningServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        audit: AuditServiceClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(64 * 1024 * 1024),
    })
}

/// The endpoint `--server` names: `https://` speaks TLS (the system's CA
/// store, or `--ca-cert`; a client certificate with `--client-cert`),
/// `http://` and a bare `host:port` plaintext; any other scheme is refused
/// rather than silently spoken in plaintext.
pub fn endpoint(global: &Global) -> Result<Endpoint> {
    let raw = global.server.trim();
    let url = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let scheme = url
        .split("://")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let endpoint =
        Endpoint::from_shared(url.clone()).with_context(|| format!("bad --server {raw}"))?;
    match scheme.as_str() {
        "http" => {
            if global.ca_cert.is_some() || global.client_cert.is_some() {
                anyhow::bail!("--ca-cert and --client-cert need an https:// --server (got {raw})");
            }
            Ok(endpoint)
        }
        "https" => {
            let mut tls = tonic::transport::ClientTlsConfig::new();
            tls = match &global.ca_cert {
                Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(ca).with_context(|| format!("--ca-cert {}", ca.display()))?,
                )),
                None => tls.with_native_roots(),
            };
            if let (Some(cert), Some(key)) = (&global.client_cert, &global.client_key) {
                let read = |p: &std::path::PathBuf| {
                    std::fs::read(p).with_context(|| format!("{}", p.display()))
                };
                tls = tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint
                .tls_config(tls)
                .with_context(|| format!("TLS for {raw}"))
        }
        other => anyhow::bail!(
            "--server {raw}: the scheme {other}:// is not spoken here; use https:// (TLS) or http://"
        ),
    }
}

/// A status as one line a person can act on.
pub fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn global(args: &[&str]) -> Global {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            global: Global,
        }
        let mut argv = vec!["mnemo"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(c) => c.global,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn schemes_are_spoken_as_named_or_refused() {
        let bare = endpoint(&global(&["--server", "127.0.0.1:50051"]));
        assert_eq!(
            bare.ok().map(|e| e.uri().to_string()),
            Some("http://127.0.0.1:50051/".to_owned())
        );
        assert!(endpoint(&global(&["--server", "https://api.example:443"])).is_ok());
        let ftp = endpoint(&global(&["--server", "ftp://api.example"]));
        let why = ftp.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(why.contains("ftp:// is not spoken here"), "{why}");
        let ca_for_http = endpoint(&global(&[
            "--server",
            "http://127.0.0.1:50051",
            "--ca-cert",
            "/nonexistent/ca.pem",
        ]));
        assert!(
            ca_for_http.is_err(),
            "a CA for a plaintext server is a mistake to say"
        );
    }
}
