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
    let channel = Endpoint::from_shared(global.server.clone())
        .with_context(|| format!("bad --server {}", global.server))?
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

/// A status as one line a person can act on.
pub fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
