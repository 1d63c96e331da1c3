//! The gRPC API: upload, refusal, isolation between owners, auth, health.

use std::time::Duration;

use futures::StreamExt;
use mnemo_proto::v1 as pb;
use mnemo_tests::{corpus_pdf, upload, upload_requests, EnvOptions, TestEnv};
use tonic::Code;

#[tokio::test]
async fn a_corpus_pdf_is_stored_by_hash_listed_and_gettable() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let bytes = corpus_pdf("bio_vespa_bioinformatics.pdf");
    let r = upload(&mut docs, "bio_vespa_bioinformatics.pdf", &bytes)
        .await
        .unwrap();
    assert_eq!(r.content_type, "application/pdf");
    assert_eq!(r.size_bytes, bytes.len() as u64);
    assert!(r.sequence > 0);
    assert!(!r.deduplicated);

    // The blob store holds exactly these bytes under their SHA-256, for
    // their owner (sealed with alice's key).
    let blobs = env.bus.blob_store().await.unwrap();
    let alice = env.owner_key("alice").await;
    assert_eq!(blobs.get(&alice, &r.sha256).await.unwrap(), bytes);

    // Get folds the events: strongly consistent right after the upload.
    let d = docs
        .get(pb::GetDocumentRequest {
            document_id: r.document_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.stage, pb::Stage::Uploaded as i32);
    assert_eq!(d.filename, "bio_vespa_bioinformatics.pdf");
    assert_eq!(d.run, 1);
    assert_eq!(d.sha256, r.sha256);

    // List reads the projection; min_sequence gives read-your-writes.
    let list = docs
        .list(pb::ListDocumentsRequest {
            min_sequence: r.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.sequence >= r.sequence);
    assert_eq!(list.documents.len(), 1);
    assert_eq!(list.documents[0].document_id, r.document_id);
    assert_eq!(list.documents[0].stage, pb::Stage::Uploaded as i32);
}

#[tokio::test]
async fn events_carry_the_envelope_headers_and_a_sealed_payload() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let mut req = tonic::Request::new(futures::stream::iter(upload_requests(
        "notes.md",
        b"# Cells\n\nMitochondria.\n",
        "",
    )));
    req.metadata_mut()
        .insert("x-request-id", "req-42".parse().unwrap());
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    req.metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    let r = docs.upload(req).await.unwrap().into_inner();
    assert_eq!(r.content_type, "text/markdown");

    // Read the raw message as a plain JetStream client would.
    let msg = env.bus.events.get_raw_message(r.sequence).await.unwrap();
    let h = |name: &str| msg.headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(h("Mnemo-Event-Type").as_deref(), Some("DocumentUploaded"));
    assert_eq!(h("Mnemo-Schema-Version").as_deref(), Some("1"));
    assert_eq!(h("Mnemo-Correlation-Id").as_deref(), Some("req-42"));
    assert_eq!(h("traceparent").as_deref(), Some(tp));
    assert_eq!(h("Nats-Msg-Id"), h("Mnemo-Event-Id"));
    assert_eq!(h("Mnemo-Causation-Id"), h("Mnemo-Event-Id"));
    assert!(h("Mnemo-Occurred-At").is_some_and(|t| t.ends_with('Z')));
    assert_eq!(h("Mnemo-Aggregate-Type").as_deref(), Some("document"));
    let subject = msg.subject.to_string();
    assert!(
        subject.starts_with(&format!("{}.ev.doc.", env.ns)),
        "{subject}"
    );
    assert!(subject.ends_with(&r.document_id));
    // The subject names the owner by a keyed hash, never by their id.
    assert!(
        !subject.contains("alice") && !subject.contains("mfwgsy3f"),
        "{subject}"
    );
    // The payload is sealed with alice's key (the event id bound to it):
    // raw, it is neither JSON nor anything of what was uploaded.
    assert_eq!(h("Mnemo-Sealed").as_deref(), Some("aes-256-gcm/v1"));
    assert!(serde_json::from_slice::<serde_json::Value>(&msg.payload).is_err());
    for plain in [&b"DocumentUploaded"[..], b"notes.md", r.sha256.as_bytes()] {
        assert!(!msg.payload.windows(plain.len()).any(|w| w == plain));
    }
    let alice = env.owner_key("alice").await;
    let envelope = mnemo_bus::Envelope::from_headers(&msg.headers).unwrap();
    let aad = mnemo_bus::event_store::event_aad(&envelope, &subject);
    let opened = alice.open_event(&aad, &msg.payload).unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(payload[0]["type"], "DocumentUploaded");
    assert_eq!(payload[0]["data"]["sha256"], r.sha256);
    // Bound to its subject: replayed under another, it does not open.
    let elsewhere = mnemo_bus::event_store::event_aad(&envelope, &format!("{subject}x"));
    assert!(alice.open_event(&elsewhere, &msg.payload).is_err());
}

#[tokio::test]
async fn unsupported_content_is_refused_with_a_reason_and_leaves_nothing() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec();
    let err = upload(&mut docs, "photo.pdf", &png).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("PNG"), "{}", err.message());

    let err = upload(&mut docs, "empty.txt", b"").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = docs
        .upload(futures::stream::iter(vec![pb::UploadRequest {
            part: Some(pb::upload_request::Part::Chunk(b"%PDF-".to_vec())),
        }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "bytes before metadata");
    assert_eq!(env.event_count().await, 0);
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused() {
    let env = TestEnv::start_with(EnvOptions {
        max_upload_bytes: 100_000,
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let err = upload(
        &mut docs,
        "big.pdf",
        &corpus_pdf("bio_vespa_bioinformatics.pdf"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("100000"));
    assert_eq!(env.event_count().await, 0);
}

#[tokio::test]
async fn a_broken_off_upload_stores_no_document_and_no_event() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut call = {
        let mut docs = docs.clone();
        tokio::spawn(async move {
            docs.upload(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        })
    };
    for r in upload_requests(
        "half.pdf",
        &corpus_pdf("bio_vespa_bioinformatics.pdf")[..200_000],
        "",
    ) {
        tx.send(r).await.unwrap();
    }
    // The client dies before ending the stream.
    call.abort();
    assert!((&mut call).await.is_err());
    drop(tx);

    // A later, complete upload on the same connection is the only document.
    let ok = upload(&mut docs, "whole.md", b"# Whole\n").await.unwrap();
    assert_eq!(env.event_count().await, 1);
    let list = docs
        .list(pb::ListDocumentsRequest {
            min_sequence: ok.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.documents.len(), 1);
    assert_eq!(list.documents[0].filename, "whole.md");
}

#[tokio::test]
async fn an_upload_retried_with_the_same_key_is_the_same_document() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    let send = |docs: &mut mnemo_tests::Documents| {
        let mut docs = docs.clone();
        async move {
            docs.upload(futures::stream::iter(upload_requests(
                "n.txt",
                b"same bytes",
                "key-1",
            )))
            .await
            .unwrap()
            .into_inner()
        }
    };
    let first = send(&mut docs).await;
    let second = send(&mut docs).await;
    assert_eq!(first.document_id, second.document_id);
    assert!(!first.deduplicated && second.deduplicated);
    assert_eq!(env.event_count().await, 1);
    // The same key under another owner is another document.
    let mut bob = env.documents("bob").await;
    let theirs = send(&mut bob).await;
    assert_ne!(theirs.document_id, first.document_id);
}

#[tokio::test]
async fn the_same_bytes_again_are_the_same_document_unless_a_new_one_is_asked_for() {
    let env = TestEnv::start().await;
    let docs = env.documents("alice").await;
    let send_as = |filename: &str, batch: &str, topic: &str, new_document: bool| {
        let mut docs = docs.clone();
        let reqs = mnemo_tests::upload_requests_with(
            pb::UploadMetadata {
                filename: filename.into(),
                batch_id: batch.into(),
                topic: topic.into(),
                new_document,
                ..Default::default()
            },
            b"# Cells\n\nMitochondria make ATP.\n",
        );
        async move {
            docs.upload(futures::stream::iter(reqs))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let send = |filename: &str, batch: &str, new_document: bool| {
        send_as(filename, batch, "", new_document)
    };
    let first = send("cells.md", "b1", false).await;
    // Another name, another batch: the bytes are what count.
    let again = send("copy of cells.md", "b2", false).await;
    assert!(!first.deduplicated && again.deduplicated);
    assert_eq!(again.document_id, first.document_id);
    assert_eq!(again.batch_id, "b1", "the earlier document's batch");
    assert_eq!(again.sequence, first.sequence);
    assert_eq!(env.event_count().await, 1, "nothing appended");
    // Asked for: a second document of the same bytes.
    let second = send("cells.md", "b3", true).await;
    assert!(!second.deduplicated);
    assert_ne!(second.document_id, first.document_id);
    assert_eq!(env.event_count().await, 2);
    // Filed under another topic: another document (an app's two entries
    // of one file stay two).
    let filed = send_as("cells.md", "b4", "biology", false).await;
    assert!(!filed.deduplicated);
    assert_ne!(filed.document_id, first.document_id);
    assert_eq!(env.event_count().await, 3);
    // Other bytes are another document.
    let mut other = docs.clone();
    let r = upload(
        &mut other,
        "cells.md",
        b"# Cells\n\nRibosomes make proteins.\n",
    )
    .await
    .unwrap();
    assert!(!r.deduplicated);
    assert_ne!(r.document_id, first.document_id);
    // Another owner's same bytes are theirs, not alice's document.
    let mut bob = env.documents("bob").await;
    let theirs = upload(&mut bob, "cells.md", b"# Cells\n\nMitochondria make ATP.\n")
        .await
        .unwrap();
    assert!(!theirs.deduplicated);
    assert_ne!(theirs.document_id, first.document_id);
}

#[tokio::test]
async fn owners_never_see_each_others_documents() {
    let env = TestEnv::start().await;
    let mut alice = env.documents("alice").await;
    let mut mallory = env.documents("alice.>").await; // a hostile owner id
    let r = upload(&mut alice, "secret.md", b"# Alice's notes\n")
        .await
        .unwrap();

    let err = mallory
        .get(pb::GetDocumentRequest {
            document_id: r.document_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = mallory
        .cancel(pb::CancelDocumentRequest {
            document_id: r.document_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let list = mallory
        .list(pb::ListDocumentsRequest {
            min_sequence: r.sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.documents.is_empty());
    let mut progress = env.progress("alice.>").await;
    let err = progress
        .watch(mnemo_tests::watch_document(&r.document_id, 0, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Alice still sees hers, untouched.
    let d = alice
        .get(pb::GetDocumentRequest {
            document_id: r.document_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.stage, pb::Stage::Uploaded as i32);
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let env = TestEnv::start().await;
    let other = mnemo_api::auth::Authenticator::new(b"another-secret-entirely");
    let forged = other
        .issue(&mnemo_domain::OwnerId::new("alice").unwrap(), 60, false)
        .unwrap();
    for token in [None, Some("garbage".to_owned()), Some(forged)] {
        let mut docs = env.documents_with(token).await;
        let err = docs
            .list(pb::ListDocumentsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        let err = upload(&mut docs, "a.txt", b"text").await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    assert_eq!(env.event_count().await, 0);
}

#[tokio::test]
async fn malformed_ids_are_invalid_arguments() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;
    for bad in ["", "x", "a.>", "../etc"] {
        let err = docs
            .get(pb::GetDocumentRequest {
                document_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
    }
    let err = docs
        .get(pb::GetDocumentRequest {
            document_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn health_and_reflection_work_without_the_protos() {
    let env = TestEnv::start().await;
    let channel = env.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "mnemo.v1.DocumentService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Both reflection versions list the services: v1, and v1alpha, which
    // older grpcurl and many tools still ask for.
    macro_rules! list_services {
        ($v:ident) => {{
            use tonic_reflection::pb::$v::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$v::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$v::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$v::ServerReflectionRequest;
            let mut refl = ServerReflectionClient::new(channel.clone());
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut resp = refl
                .server_reflection_info(futures::stream::iter(vec![req]))
                .await
                .unwrap()
                .into_inner();
            let first = tokio::time::timeout(Duration::from_secs(10), resp.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
                panic!("unexpected reflection answer");
            };
            list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }};
    }
    for names in [list_services!(v1), list_services!(v1alpha)] {
        assert!(
            names.iter().any(|n| n == "mnemo.v1.DocumentService"),
            "{names:?}"
        );
        assert!(
            names.iter().any(|n| n == "mnemo.v1.ProgressService"),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn every_call_answers_with_its_request_id_and_commands_correlate_by_it() {
    let env = TestEnv::start().await;
    let mut docs = env.documents("alice").await;

    // The client's id comes back, and the command it caused carries it as
    // its correlation id (so an operator can follow one request through
    // every service's events).
    let mut req = tonic::Request::new(futures::stream::iter(upload_requests(
        "notes.md",
        b"# Cells\n\nMitochondria make ATP.\n",
        "",
    )));
    req.metadata_mut()
        .insert("x-request-id", "support-ticket-42".parse().unwrap());
    let response = docs.upload(req).await.unwrap();
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("support-ticket-42")
    );
    let sequence = response.into_inner().sequence;
    let stored = env.bus.events.direct_get(sequence).await.unwrap();
    assert_eq!(
        stored
            .headers
            .get("Mnemo-Correlation-Id")
            .map(|v| v.as_str().to_owned()),
        Some("support-ticket-42".to_owned())
    );

    // Without one, the API makes one (a UUID) — also on a refused call.
    let refused = docs
        .get(pb::GetDocumentRequest {
            document_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let made = refused
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(
        made.as_deref()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{made:?}"
    );
}

/// TLS on the gRPC port: a client that trusts the server's certificate
/// talks to it; a plaintext client gets no answer, and says why.
#[tokio::test]
async fn the_api_speaks_tls_and_a_plaintext_client_is_refused() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.key_pair.serialize_pem());
    let env = TestEnv::start_with(EnvOptions {
        tls: Some(mnemo_api::config::TlsFiles {
            cert: cert.clone().into_bytes(),
            key: key.into_bytes(),
            client_ca: None,
        }),
        ..Default::default()
    })
    .await;
    let port = env.addr.unwrap().port();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("a TLS client connects");
    let token = env.token("alice");
    let mut docs =
        mnemo_proto::v1::document_service_client::DocumentServiceClient::with_interceptor(
            channel,
            move |mut req: tonic::Request<()>| {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
                Ok(req)
            },
        );
    let listed = docs.list(pb::ListDocumentsRequest::default()).await;
    assert!(listed.is_ok(), "{listed:?}");

    // Plaintext to the TLS port: no gRPC answer.
    let plain = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        mnemo_proto::v1::document_service_client::DocumentServiceClient::new(channel)
            .list(pb::ListDocumentsRequest::default())
            .await
            .map_err(|s| s.to_string())
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), plain)
        .await
        .expect("the plaintext attempt ends");
    assert!(
        refused.is_err(),
        "a plaintext client got an answer: {refused:?}"
    );
}

/// An upload that stops sending (issue 18) is ended by the server once it
/// has been idle for the limit, with DEADLINE_EXCEEDED and the reason, and
/// leaves nothing behind; the client's connection still works.
#[tokio::test]
async fn an_idle_upload_is_ended_by_the_server_and_leaves_nothing() {
    let env = TestEnv::start_with(EnvOptions {
        limits: Some(mnemo_api::config::Limits {
            upload_idle: Duration::from_millis(300),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let requests = upload_requests(
        "stalled.pdf",
        &corpus_pdf("bio_vespa_bioinformatics.pdf"),
        "",
    );
    // Metadata and one part, then nothing: the sender stays open.
    for r in requests.into_iter().take(2) {
        tx.send(r).await.unwrap();
    }
    let ended = docs
        .upload(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect_err("an idle upload is ended");
    assert_eq!(ended.code(), Code::DeadlineExceeded);
    assert!(
        ended.message().contains("sent nothing for"),
        "{}",
        ended.message()
    );
    drop(tx);
    assert_eq!(env.event_count().await, 0, "nothing was stored");
    upload(&mut docs, "after.md", b"# After\n")
        .await
        .expect("the connection still takes uploads");
}

/// Per-owner rate limits (issue 18): an owner past its burst is refused
/// with RESOURCE_EXHAUSTED, the reason and a RetryInfo detail; another
/// owner, and the same owner's other services, are unaffected.
#[tokio::test]
async fn an_owner_over_its_rate_is_told_to_retry_and_nobody_else_is() {
    let env = TestEnv::start_with(EnvOptions {
        limits: Some(mnemo_api::config::Limits {
            rate: mnemo_api::rate::RateConfig {
                per_second: 1,
                burst: 3,
            },
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let mut alice = env.documents("alice").await;
    let mut refusal = None;
    // A burst of 3 and one more a second: ten calls at once cannot all pass.
    for _ in 0..10 {
        if let Err(status) = alice.list(pb::ListDocumentsRequest::default()).await {
            refusal = Some(status);
            break;
        }
    }
    let refused = refusal.expect("a call over the rate is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("rate limit") && refused.message().contains("retry in"),
        "{}",
        refused.message()
    );
    assert!(
        !refused.details().is_empty(),
        "a RetryInfo detail comes with it"
    );
    let mut bob = env.documents("bob").await;
    bob.list(pb::ListDocumentsRequest::default())
        .await
        .expect("another owner is unaffected");
    let mut stats = env.stats("alice").await;
    stats
        .get_stats(pb::GetStatsRequest { all_owners: false })
        .await
        .expect("alice's other services are unaffected");
}

/// The API's read-model sessions: a caller gets one nobody else holds
/// while the pool has one, and never more than the pool's size.
#[tokio::test]
async fn read_model_calls_spread_over_a_bounded_pool_of_sessions() {
    use std::sync::Arc;
    let db = mnemo_api::server::ReadDb::new(
        &mnemo_tests::database_url(),
        mnemo_tests::fresh_namespace(),
        2,
    );
    let backend = |c: Arc<tokio_postgres::Client>| async move {
        let row = c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap();
        row.get::<_, i32>(0)
    };
    let first = db.client().await.unwrap();
    let second = db.client().await.unwrap();
    assert!(
        !Arc::ptr_eq(&first, &second),
        "the held session is not shared while another is free"
    );
    assert_ne!(backend(first.clone()).await, backend(second.clone()).await);
    // The pool is full: a third caller shares one of the two.
    let third = db.client().await.unwrap();
    assert!(Arc::ptr_eq(&third, &first) || Arc::ptr_eq(&third, &second));
    // Given back, a session is the one handed out next.
    drop((first, third));
    let again = db.client().await.unwrap();
    assert!(!Arc::ptr_eq(&again, &second));
}
