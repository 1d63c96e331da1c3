//! `DocumentService`: Upload, Get, List, Cancel, Reprocess.

use std::collections::HashMap;
use std::sync::Arc;

use mnemo_bus::envelope::meta;
use mnemo_domain::document::{aggregate_id, UploadedDocument};
use mnemo_domain::{Document, DocumentCommand, DocumentEvent, DocumentId};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::document_service_server::DocumentService;
use mnemo_proto::v1::upload_request::Part;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{caller, Caller};
use crate::server::ApiState;
use crate::upload::IncomingUpload;
use crate::{convert, status};

/// Namespace UUID for ids derived from (owner, idempotency key).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6d6e_656d_6f2d_4944_454d_504f_5445_4e54);
/// Names a document by what was uploaded (owner, bytes, topic, external
/// id) when no idempotency key does: apart from the keys' namespace, so no
/// key can collide with it.
const CONTENT_NAMESPACE: Uuid = Uuid::from_u128(0x6d6e_656d_6f2d_636f_6e74_656e_7400_0001);

/// Longest topic, batch id or idempotency key accepted.
const MAX_LABEL: usize = 200;

pub struct DocumentApi {
    state: Arc<ApiState>,
}

impl DocumentApi {
    /// Stores an upload whose metadata is `m` and whose bytes come from
    /// `parts`, and appends its `DocumentUploaded` (or finds the document
    /// it repeats): `Upload` and `UploadFile` alike.
    async fn receive(
        &self,
        who: Caller,
        metadata_base: HashMap<String, String>,
        m: pb::UploadMetadata,
        mut parts: Parts,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        let topic = label(&m.topic, "topic")?;
        let key = label(&m.idempotency_key, "idempotency_key")?;
        let external_id = label(&m.external_id, "external_id")?;
        let batch_id =
            label(&m.batch_id, "batch_id")?.unwrap_or_else(|| Uuid::now_v7().to_string());
        // The document's id: from the idempotency key when there is one;
        // else from what was uploaded — the bytes (known once they are in),
        // the topic and the external id: the same again is the same
        // document (`deduplicated`), whatever its file name — unless a new
        // one is asked for.
        let id_by_key = key.as_ref().map(|k| {
            DocumentId::from(Uuid::new_v5(
                &IDEMPOTENCY_NAMESPACE,
                format!("{}/{k}", who.owner.token()).as_bytes(),
            ))
        });
        let random_id = (key.is_none() && m.new_document).then(DocumentId::new);
        let span = tracing::info_span!(
            "upload",
            document_id = tracing::field::Empty,
            event_id = tracing::field::Empty
        );
        async move {
            // The owner's quota first: an owner at its quota sends nothing
            // for nothing. The hold counts this upload's bytes as they come.
            let hold = self
                .state
                .quotas
                .begin(
                    &self.state.db,
                    &self.state.bus.namespace,
                    &who.owner.token(),
                )
                .await?;
            let mut incoming = IncomingUpload::new(
                &m.filename,
                Some(m.content_type.as_str()),
                self.state.config.max_upload_bytes,
                self.state.config.spool_memory_bytes,
            )?;
            // A transport error here (client gone) returns before anything is stored.
            while let Some(bytes) = parts.next_chunk().await? {
                hold.take(bytes.len() as u64)?;
                incoming.push(&bytes).await?;
            }
            let received_at = std::time::Instant::now();
            let received = incoming.finish()?;
            let (filename, content_type, sha256, size) = (
                received.filename.clone(),
                received.content_type,
                received.sha256.clone(),
                received.size,
            );
            // The owner's key (made with their first upload): the blob is
            // sealed with it, and so is every event of theirs.
            let owner_key = self.owner_key(&who).await?;
            let document_id = id_by_key.or(random_id).unwrap_or_else(|| {
                // The bytes by their keyed name, never their bare hash: an
                // id in a subject must not confirm, once the owner is
                // erased, that they held a file someone else has.
                let content = serde_json::json!([
                    who.owner.token(),
                    owner_key.blob_name(sha256.as_str()),
                    topic,
                    external_id,
                ]);
                DocumentId::from(Uuid::new_v5(
                    &CONTENT_NAMESPACE,
                    content.to_string().as_bytes(),
                ))
            });
            tracing::Span::current().record("document_id", tracing::field::display(&document_id));
            let mut reader = received.reader().await?;
            // A full blob store refuses now, before a partial blob is left.
            self.state
                .blobs
                .check_room(size)
                .await
                .map_err(|e| status::from_bus_error(&e))?;
            self.state
                .blobs
                .put(&owner_key, sha256.as_str(), &mut reader)
                .await
                .map_err(|e| status::from_bus_error(&e))?;
            let stored_at = std::time::Instant::now();
            let mut md = metadata_base;
            if let Some(k) = &key {
                // Same key, same event id: a retried upload is deduplicated by JetStream too.
                let id = Uuid::new_v5(
                    &IDEMPOTENCY_NAMESPACE,
                    format!("{document_id}/upload/{k}").as_bytes(),
                );
                md.insert(meta::COMMAND_ID.to_owned(), id.to_string());
            }
            tracing::Span::current()
                .record("event_id", md.get(meta::COMMAND_ID).map(String::as_str));
            let agg = aggregate_id(&who.owner, &document_id);
            let done = self
                .state
                .executor
                .execute(
                    &agg,
                    DocumentCommand::Upload(UploadedDocument {
                        document_id,
                        owner: who.owner.clone(),
                        filename,
                        content_type,
                        size_bytes: size,
                        sha256: sha256.clone(),
                        topic,
                        batch_id: batch_id.clone(),
                        idempotency_key: key,
                        external_id,
                    }),
                    &md,
                )
                .await
                .map_err(|e| status::from_execute_error(&e))?;
            // A repeat appended nothing: it holds none of the owner's quota.
            if done.appended.is_some() {
                hold.appended(done.last_sequence);
            }
            tracing::info!(
                size,
                %content_type,
                sequence = done.last_sequence,
                store_ms = (stored_at - received_at).as_secs_f64() * 1e3,
                append_ms = stored_at.elapsed().as_secs_f64() * 1e3,
                "document uploaded"
            );
            Ok(Response::new(pb::UploadResponse {
                document_id: document_id.to_string(),
                batch_id: done.aggregate.batch_id.clone(),
                // The stored document's (a repeat may have declared another).
                content_type: done
                    .aggregate
                    .content_type
                    .unwrap_or(content_type)
                    .mime()
                    .to_owned(),
                size_bytes: size,
                sha256: sha256.to_string(),
                sequence: done.last_sequence,
                deduplicated: done.appended.is_none(),
            }))
        }
        .instrument(span)
        .await
    }

    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

/// Causation/correlation/trace metadata for a command issued by a request.
pub(crate) fn command_metadata<T>(
    req: &Request<T>,
    command_id: Option<String>,
) -> HashMap<String, String> {
    let mut md = HashMap::new();
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let command_id = command_id.unwrap_or_else(|| Uuid::now_v7().to_string());
    md.insert(meta::COMMAND_ID.to_owned(), command_id.clone());
    md.insert(meta::CAUSATION_ID.to_owned(), command_id.clone());
    md.insert(
        meta::CORRELATION_ID.to_owned(),
        header("x-request-id")
            .filter(|v| v.len() <= MAX_LABEL)
            .unwrap_or(command_id),
    );
    // The request's span continues the caller's `traceparent`
    // (request_id.rs): with traces exported, what the command appends
    // carries the current span on; without, the caller's context as sent.
    let current = mnemo_bus::trace::traceparent_of(&tracing::Span::current());
    if let Some(tp) = current.or_else(|| header("traceparent")) {
        md.insert(meta::TRACEPARENT.to_owned(), tp);
    }
    md
}

pub(crate) fn label(value: &str, what: &str) -> Result<Option<String>, Status> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > MAX_LABEL || v.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{what} must be at most {MAX_LABEL} bytes without control characters"
        )));
    }
    Ok(Some(v.to_owned()))
}

pub(crate) fn parse_document_id(raw: &str) -> Result<DocumentId, Status> {
    raw.parse::<DocumentId>()
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

impl DocumentApi {
    /// The caller's data key (made with their first upload): their blobs
    /// and events are sealed with it. An erased caller is refused.
    async fn owner_key(&self, who: &Caller) -> Result<mnemo_bus::OwnerKey, Status> {
        self.state
            .bus
            .keys
            .for_writing(&who.owner.token())
            .await
            .map_err(|e| status::from_bus_error(&e))
    }

    async fn run_command(
        &self,
        who: &Caller,
        document_id: &str,
        command: DocumentCommand,
        metadata: &HashMap<String, String>,
    ) -> Result<pb::CommandAccepted, Status> {
        let id = parse_document_id(document_id)?;
        let agg = aggregate_id(&who.owner, &id);
        let done = self
            .state
            .executor
            .execute(&agg, command, metadata)
            .await
            .map_err(|e| status::from_execute_error(&e))?;
        Ok(pb::CommandAccepted {
            document_id: id.to_string(),
            run: done.aggregate.run,
            sequence: done.last_sequence,
        })
    }
}

/// Where an upload's parts come from: a client stream (`Upload`), or one
/// message (`UploadFile`, which browsers can send over gRPC-Web).
enum Parts {
    Stream {
        stream: Box<Streaming<pb::UploadRequest>>,
        /// How long the client may send nothing.
        idle: std::time::Duration,
    },
    Whole(Option<Vec<u8>>),
}

/// A streamed upload's first message, which must carry the metadata.
async fn first_metadata(
    stream: &mut Streaming<pb::UploadRequest>,
    idle: std::time::Duration,
) -> Result<pb::UploadMetadata, Status> {
    let first = next_part(stream, idle)
        .await?
        .ok_or_else(|| Status::invalid_argument("empty upload stream: send metadata first"))?;
    match first.part {
        Some(Part::Metadata(m)) => Ok(m),
        _ => Err(Status::invalid_argument(
            "the first upload message must carry metadata",
        )),
    }
}

impl Parts {
    /// The next piece of the file's bytes; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Status> {
        match self {
            Parts::Whole(content) => Ok(content.take()),
            Parts::Stream { stream, idle } => loop {
                let Some(msg) = next_part(stream, *idle).await? else {
                    return Ok(None);
                };
                match msg.part {
                    Some(Part::Chunk(bytes)) => return Ok(Some(bytes)),
                    Some(Part::Metadata(_)) => {
                        return Err(Status::invalid_argument(
                            "metadata may only be sent once, first",
                        ))
                    }
                    None => {}
                }
            },
        }
    }
}

/// The next part of an upload, if it comes within `idle`: an upload that
/// stalls does not hold the server's spool (memory, then disk) open.
async fn next_part(
    stream: &mut Streaming<pb::UploadRequest>,
    idle: std::time::Duration,
) -> Result<Option<pb::UploadRequest>, Status> {
    match tokio::time::timeout(idle, stream.message()).await {
        Ok(part) => part,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the upload sent nothing for {} s: nothing of it was kept; upload again",
            idle.as_secs()
        ))),
    }
}

#[tonic::async_trait]
impl DocumentService for DocumentApi {
    async fn upload(
        &self,
        req: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        let who = caller(&req)?;
        let metadata_base = command_metadata(&req, None);
        let idle = self.state.config.limits.upload_idle;
        let mut stream = Box::new(req.into_inner());
        let m = first_metadata(&mut stream, idle).await?;
        self.receive(who, metadata_base, m, Parts::Stream { stream, idle })
            .await
    }

    type DownloadStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::DownloadResponse, Status>> + Send>>;

    async fn download(
        &self,
        req: Request<pb::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let who = caller(&req)?;
        let id = parse_document_id(&req.get_ref().document_id)?;
        let doc = self
            .state
            .executor
            .store()
            .load(&aggregate_id(&who.owner, &id))
            .await
            .map_err(|e| status::from_bus_error(&e))?
            .aggregate;
        // Another owner's document is a missing one (the owner is in the id).
        let (Some(_), Some(sha256)) = (&doc.id, &doc.sha256) else {
            return Err(Status::not_found("document not found"));
        };
        let owner_key = self.owner_key(&who).await?;
        let chunks = self
            .state
            .blobs
            .chunks(&owner_key, sha256.as_str())
            .await
            .map_err(|e| status::from_blob_read_error(&e))?;
        let first = Some(pb::DownloadResponse {
            chunk: Vec::new(),
            filename: doc.filename.clone(),
            content_type: doc
                .content_type
                .map(|t| t.mime().to_owned())
                .unwrap_or_default(),
            size_bytes: doc.size_bytes,
        });
        // One piece of the store at a time (its chunks, 128 KiB): a
        // download holds no more than that, whatever the file's size.
        let stream = futures::stream::unfold(
            (chunks, first, false),
            |(mut chunks, mut first, done)| async move {
                if done {
                    return None;
                }
                match chunks.next().await {
                    Ok(Some(bytes)) => {
                        let mut message = first.take().unwrap_or_default();
                        message.chunk = bytes.to_vec();
                        Some((Ok(message), (chunks, None, false)))
                    }
                    // An empty file: its one message says what it is.
                    Ok(None) => first.take().map(|m| (Ok(m), (chunks, None, true))),
                    Err(e) => Some((Err(status::from_blob_read_error(&e)), (chunks, None, true))),
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get(
        &self,
        req: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        let who = caller(&req)?;
        let id = parse_document_id(&req.get_ref().document_id)?;
        let messages = self
            .state
            .executor
            .store()
            .read_messages(&aggregate_id(&who.owner, &id))
            .await
            .map_err(|e| status::from_bus_error(&e))?;
        let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
            return Err(Status::not_found("document not found"));
        };
        // A backfill's replays are not updates of the document.
        let last = messages
            .iter()
            .rev()
            .find(|m| !m.events.iter().all(DocumentEvent::is_replay))
            .unwrap_or(last);
        let (uploaded_at, updated_at, sequence) = (
            first.envelope.occurred_at,
            last.envelope.occurred_at,
            last.stream_sequence,
        );
        let mut doc = Document::default();
        for m in messages {
            for e in m.events {
                cqrs_es::Aggregate::apply(&mut doc, e);
            }
        }
        Ok(Response::new(convert::document(
            &doc,
            Some(uploaded_at),
            Some(updated_at),
            sequence,
        )))
    }

    async fn list(
        &self,
        req: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let topic = label(&r.topic, "topic")?;
        let limit = if r.limit == 0 {
            1000
        } else {
            r.limit.min(10_000)
        } as i64;
        let db = self.state.read_db().await?;
        let ns = &self.state.bus.namespace;
        let sequence = if r.min_sequence > 0 {
            let at = mnemo_projector::runner::wait_for(
                &*db,
                ns,
                r.min_sequence,
                self.state.config.max_consistency_wait,
            )
            .await
            .map_err(|e| status::from_db_error(&e))?;
            if at < r.min_sequence {
                // As every other `min_sequence` wait: retryable.
                return Err(Status::unavailable(format!(
                    "the documents read model is at sequence {at}, not yet {}; retry shortly \
                     (is the projector running?)",
                    r.min_sequence
                )));
            }
            at
        } else {
            mnemo_projector::runner::checkpoint(&*db, ns)
                .await
                .map_err(|e| status::from_db_error(&e))?
        };
        let rows =
            mnemo_projector::documents::list(&*db, &who.owner.token(), topic.as_deref(), limit)
                .await
                .map_err(|e| status::from_db_error(&e))?;
        Ok(Response::new(pb::ListDocumentsResponse {
            documents: rows.iter().map(convert::document_row).collect(),
            sequence,
        }))
    }

    async fn cancel(
        &self,
        req: Request<pb::CancelDocumentRequest>,
    ) -> Result<Response<pb::CommandAccepted>, Status> {
        let who = caller(&req)?;
        let md = command_metadata(&req, None);
        let r = req.get_ref();
        let reason = label(&r.reason, "reason")?.unwrap_or_else(|| "cancelled by the user".into());
        let accepted = self
            .run_command(
                &who,
                &r.document_id,
                DocumentCommand::Cancel { reason },
                &md,
            )
            .await?;
        Ok(Response::new(accepted))
    }

    async fn reprocess(
        &self,
        req: Request<pb::ReprocessDocumentRequest>,
    ) -> Result<Response<pb::CommandAccepted>, Status> {
        let who = caller(&req)?;
        let md = command_metadata(&req, None);
        let r = req.get_ref();
        let reason = label(&r.reason, "reason")?.unwrap_or_else(|| "reprocess requested".into());
        let accepted = self
            .run_command(
                &who,
                &r.document_id,
                DocumentCommand::Reprocess { reason },
                &md,
            )
            .await?;
        Ok(Response::new(accepted))
    }
}

/// `UploadService`: `DocumentService.Upload` in one message, for browsers
/// (gRPC-Web cannot stream a request). Its own service so that its large
/// message limit and its own concurrency cap apply to it alone
/// (`server.rs`, `call_limits`).
pub struct UploadApi(DocumentApi);

impl UploadApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self(DocumentApi::new(state))
    }
}

#[tonic::async_trait]
impl mnemo_proto::v1::upload_service_server::UploadService for UploadApi {
    async fn upload_file(
        &self,
        req: Request<pb::UploadFileRequest>,
    ) -> Result<Response<pb::UploadResponse>, Status> {
        let who = caller(&req)?;
        let metadata_base = command_metadata(&req, None);
        let pb::UploadFileRequest { metadata, content } = req.into_inner();
        let m = metadata.ok_or_else(|| {
            Status::invalid_argument("UploadFile needs `metadata` (at least a filename)")
        })?;
        let limit = self.0.state.config.limits.max_upload_message_bytes;
        if content.len() as u64 > limit {
            return Err(Status::out_of_range(format!(
                "the file is {} bytes, over UploadFile's {limit}: stream it with DocumentService.Upload",
                content.len()
            )));
        }
        self.0
            .receive(who, metadata_base, m, Parts::Whole(Some(content)))
            .await
    }
}
