//! Erasing a learner (crypto-shredding, decision 022): two learners with
//! documents, cards, reviews and questions; one is erased; nothing of
//! theirs is readable afterwards, by any read path or by a raw read of
//! the streams, and the other learner's rows are exactly what they were.

use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_proto::v1::account_service_client::AccountServiceClient;
use mnemo_proto::v1::audit_service_client::AuditServiceClient;
use mnemo_proto::v1::learning_service_client::LearningServiceClient;
use mnemo_tests::{indexed, upload, BearerInterceptor, EnvOptions, TestEnv};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

type Account = AccountServiceClient<InterceptedService<Channel, BearerInterceptor>>;
type Learning = LearningServiceClient<InterceptedService<Channel, BearerInterceptor>>;
type Audit = AuditServiceClient<InterceptedService<Channel, BearerInterceptor>>;

async fn account(env: &TestEnv, token: String) -> Account {
    AccountServiceClient::with_interceptor(env.channel().await, BearerInterceptor::new(token))
}

async fn learning(env: &TestEnv, owner: &str) -> Learning {
    LearningServiceClient::with_interceptor(
        env.channel().await,
        BearerInterceptor::new(env.token(owner)),
    )
}

async fn audit(env: &TestEnv, owner: &str) -> Audit {
    AuditServiceClient::with_interceptor(
        env.channel().await,
        BearerInterceptor::new(env.token(owner)),
    )
}

async fn search(env: &TestEnv, owner: &str, query: &str, seen: u64) -> pb::SearchResponse {
    env.search(owner)
        .await
        .search(mnemo_tests::hybrid_search(query, 5, seen))
        .await
        .unwrap()
        .into_inner()
}

/// How many live objects of `owner` the blob bucket holds.
async fn objects_of(env: &TestEnv, owner: &str) -> usize {
    use futures::StreamExt;
    let store = env
        .bus
        .jetstream
        .get_object_store(&env.ns.blob_bucket())
        .await
        .unwrap();
    let mut list = store.list().await.unwrap();
    let mut n = 0;
    while let Some(info) = list.next().await {
        let info = info.unwrap();
        if !info.deleted && info.name.starts_with(&format!("{owner}.")) {
            n += 1;
        }
    }
    n
}

fn token_of(owner: &str) -> String {
    mnemo_domain::OwnerId::new(owner).unwrap().token()
}

/// What one learner leaves: a Markdown document with `marker` in it
/// (indexed), a card about it, a review, and a question about it.
/// Returns the last stream sequence it wrote.
async fn study(env: &TestEnv, owner: &str, marker: &str) -> u64 {
    let mut docs = env.documents(owner).await;
    let text = format!(
        "# Notes of {owner}\n\nThe {marker} enzyme folds proteins in the cell.\n\n\
         Mitochondria make energy; the {marker} pathway regulates them.\n"
    );
    let r = upload(&mut docs, &format!("{marker}.md"), text.as_bytes())
        .await
        .unwrap();
    let indexed_at = indexed(env, owner, &r.document_id).await;
    let mut last = indexed_at;
    let mut learn = learning(env, owner).await;
    let card = learn
        .create_card(pb::CreateCardRequest {
            card_id: String::new(),
            deck: format!("{marker} deck"),
            front: format!("What does the {marker} enzyme do?"),
            back: "It folds proteins.".into(),
            source: None,
        })
        .await
        .unwrap()
        .into_inner();
    let reviewed = learn
        .submit_review(pb::SubmitReviewRequest {
            card_id: card.card.expect("the card").card_id,
            review_id: uuid::Uuid::now_v7().to_string(),
            rating: 3,
            reviewed_at: None,
        })
        .await
        .unwrap()
        .into_inner();
    last = last.max(reviewed.sequence);
    let mut qa = env.qa(owner).await;
    let mut answer = qa
        .ask(pb::AskRequest {
            question: format!("What does the {marker} enzyme do?"),
            k: 3,
            document_ids: vec![],
            min_sequence: indexed_at,
            mode: pb::AnswerMode::Extractive as i32,
        })
        .await
        .unwrap()
        .into_inner();
    while answer.message().await.unwrap().is_some() {}
    last
}

/// A digest of every read-model row of `owner` (documents, chunks and
/// their vectors, stage timings, cards, reviews, topics, sessions).
async fn rows_of(db: &tokio_postgres::Client, owner: &str) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for (table, filter) in [
        ("documents", "owner_token = $1"),
        ("chunks", "owner_token = $1"),
        (
            "chunk_embeddings",
            "chunk_id IN (SELECT chunk_id FROM chunks WHERE owner_token = $1)",
        ),
        ("stage_timings", "owner_token = $1"),
        ("learning_cards", "owner_token = $1"),
        ("learning_reviews", "owner_token = $1"),
        ("learning_topics", "owner_token = $1"),
        ("learning_topic_documents", "owner_token = $1"),
        ("learning_sessions", "owner_token = $1"),
    ] {
        let row = db
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') \
                     FROM {table} t WHERE {filter}"
                ),
                &[&owner],
            )
            .await
            .unwrap();
        out.push((table.to_owned(), row.get(0), row.get(1)));
    }
    out
}

/// Every stored byte of the namespace (subjects, headers and payloads of
/// the event log, the dead letters, the blob bucket and the keyring),
/// searched for `needle`: the streams where it was found.
async fn streams_holding(env: &TestEnv, needle: &[u8]) -> Vec<String> {
    let ns = &env.ns;
    let mut found = Vec::new();
    for stream in [
        ns.event_stream(),
        ns.dlq_stream(),
        format!("OBJ_{}", ns.blob_bucket()),
        ns.keys_stream(),
    ] {
        let mut s = env.bus.jetstream.get_stream(&stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            let Ok(m) = s.get_raw_message(seq).await else {
                continue; // deleted (erased) messages
            };
            let mut bytes = m.subject.to_string().into_bytes();
            for (name, values) in m.headers.iter() {
                bytes.extend_from_slice(name.as_ref());
                for v in values {
                    bytes.extend_from_slice(v.as_str().as_bytes());
                }
            }
            bytes.extend_from_slice(&m.payload);
            let lower = bytes.to_ascii_lowercase();
            if lower
                .windows(needle.len())
                .any(|w| w == needle.to_ascii_lowercase())
            {
                found.push(format!("{stream} #{seq}"));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erased_learner_leaves_nothing_readable_and_the_other_is_untouched() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let (alice_marker, bob_marker) = ("zymoglobin", "quartzoplast");
    let alice_seen = study(&env, "alice", alice_marker).await;
    let bob_seen = study(&env, "bob", bob_marker).await;
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    let seen = alice_seen.max(bob_seen);
    mnemo_projector::runner::wait_for(&db, &env.ns, seen, Duration::from_secs(30))
        .await
        .unwrap();
    mnemo_projector::learning::wait_for(&db, &env.ns, seen, Duration::from_secs(30))
        .await
        .unwrap();
    let bob_before = rows_of(&db, &token_of("bob")).await;
    let alice_before = rows_of(&db, &token_of("alice")).await;
    // A document (with chunks and vectors), a card and its review.
    for (i, table) in [
        (0, "documents"),
        (1, "chunks"),
        (2, "chunk_embeddings"),
        (4, "learning_cards"),
        (5, "learning_reviews"),
    ] {
        assert!(alice_before[i].1 >= 1, "{table}: {alice_before:?}");
    }
    // Before: alice's marker is nowhere in plaintext already (sealed).
    assert_eq!(
        streams_holding(&env, alice_marker.as_bytes()).await,
        Vec::<String>::new()
    );

    assert_eq!(objects_of(&env, &token_of("alice")).await, 2);
    // A service gave up on one of alice's events, and one of bob's: both
    // dead letters copy the sealed event.
    for owner in ["alice", "bob"] {
        let filter = format!("{}.{}.>", env.ns.events_of("doc"), token_of(owner));
        let m = env
            .bus
            .events
            .direct_get_next_for_subject(filter.as_str(), None)
            .await
            .unwrap();
        mnemo_bus::dlq::publish(
            &env.bus.jetstream,
            &env.ns,
            "extractor",
            &mnemo_bus::dlq::Origin {
                subject: &m.subject,
                stream_sequence: m.sequence,
                deliveries: 5,
                headers: Some(&m.headers),
                payload: &m.payload,
            },
            "gave up (a test's letter)",
        )
        .await;
    }
    assert_eq!(mnemo_bus::dlq::list(&env.bus).await.unwrap().len(), 2);

    // Someone else may not erase alice; alice must confirm.
    let mut as_bob = account(&env, env.token("bob")).await;
    let refused = as_bob
        .erase_learner(pb::EraseLearnerRequest {
            owner: "alice".into(),
            confirm: "alice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut as_alice = account(&env, env.token("alice")).await;
    let unconfirmed = as_alice
        .erase_learner(pb::EraseLearnerRequest {
            owner: String::new(),
            confirm: "bob".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unconfirmed.code(), Code::InvalidArgument);

    // Alice erases herself.
    let erased = as_alice
        .erase_learner(pb::EraseLearnerRequest {
            owner: String::new(),
            confirm: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(erased.had_key && erased.key_destroyed, "{erased:?}");
    assert!(erased.read_models_clean, "{erased:?}");
    assert_eq!(
        objects_of(&env, &token_of("alice")).await,
        0,
        "her files are deleted"
    );
    let letters = mnemo_bus::dlq::list(&env.bus).await.unwrap();
    assert_eq!(
        letters.len(),
        1,
        "her dead letter is erased, bob's stays: {letters:?}"
    );
    assert!(letters[0].event_subject.contains(&token_of("bob")));
    assert_eq!(
        objects_of(&env, &token_of("bob")).await,
        2,
        "the upload and its text"
    );
    assert_eq!(erased.owner_token, token_of("alice"));

    // The read models: nothing of alice, bob's rows exactly as they were.
    let alice_after = rows_of(&db, &token_of("alice")).await;
    assert!(
        alice_after.iter().all(|(_, n, _)| *n == 0),
        "{alice_after:?}"
    );
    assert_eq!(rows_of(&db, &token_of("bob")).await, bob_before);

    // Every read path of alice's answers nothing; every write is refused.
    let mut docs = env.documents("alice").await;
    let list = docs
        .list(pb::ListDocumentsRequest {
            min_sequence: erased.document_sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.documents.is_empty());
    let again = upload(&mut docs, "again.md", b"# Again\n\nback again\n")
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::PermissionDenied);
    assert_eq!(
        again
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone()),
        Some("LEARNER_ERASED".to_owned())
    );
    let found = search(&env, "alice", alice_marker, erased.document_sequence).await;
    assert!(found.hits.is_empty(), "{found:?}");
    let mut learn = learning(&env, "alice").await;
    let cards = learn
        .list_cards(pb::ListCardsRequest {
            min_sequence: erased.learning_sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(cards.cards.is_empty());
    let stats = learn
        .study_stats(pb::StudyStatsRequest {
            min_sequence: erased.learning_sequence,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.reviews, 0, "{stats:?}");
    let mut history = audit(&env, "alice")
        .await
        .replay_learning_history(pb::ReplayLearningHistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(history.message().await.unwrap().is_none(), "no history");
    let mut progress = env.progress("alice").await;
    let mut watch = progress
        .watch(mnemo_tests::watch_all(0, false))
        .await
        .unwrap()
        .into_inner();
    while let Some(u) = watch.message().await.unwrap() {
        assert!(u.document_id.is_empty(), "a document of alice's: {u:?}");
    }
    let mut qa = env.qa("alice").await;
    let asked = match qa
        .ask(pb::AskRequest {
            question: format!("What does the {alice_marker} enzyme do?"),
            k: 3,
            document_ids: vec![],
            min_sequence: 0,
            mode: pb::AnswerMode::Extractive as i32,
        })
        .await
    {
        Ok(stream) => {
            let mut stream = stream.into_inner();
            let mut cited = false;
            loop {
                match stream.message().await {
                    Ok(Some(pb::AskResponse {
                        part: Some(pb::ask_response::Part::Sources(s)),
                    })) => cited |= !s.sources.is_empty(),
                    Ok(Some(_)) => {}
                    Ok(None) => break Ok(cited),
                    Err(e) => break Err(e),
                }
            }
        }
        Err(e) => Err(e),
    };
    assert!(!matches!(asked, Ok(true)), "no source of alice's is cited");

    // Bob is untouched: his search still finds his document.
    let found = search(&env, "bob", bob_marker, erased.document_sequence).await;
    assert!(!found.hits.is_empty());

    // Raw bytes: alice's markers and her id are nowhere in the log, the
    // dead letters, the blob bucket or the keyring; bob's text is sealed
    // too, so his marker is not either.
    for needle in [alice_marker, "alice", bob_marker] {
        assert_eq!(
            streams_holding(&env, needle.as_bytes()).await,
            Vec::<String>::new(),
            "{needle} in plaintext"
        );
    }
    // Her key's record is gone from the keyring (erased on disk).
    let keys = env
        .bus
        .jetstream
        .get_stream(env.ns.keys_stream())
        .await
        .unwrap();
    assert!(keys
        .direct_get_last_for_subject(env.ns.key_subject(&token_of("alice")))
        .await
        .is_err());

    // A rebuild of every read model from the log equals the live ones:
    // alice's events are tombstones, read past.
    let db = mnemo_tests::assert_rebuild_equals_live(&env, &db).await;
    assert_eq!(rows_of(&db, &token_of("bob")).await, bob_before);

    // Erasing again changes nothing and says there was no key left.
    let again = as_alice
        .erase_learner(pb::EraseLearnerRequest {
            owner: String::new(),
            confirm: "alice".into(),
        })
        .await;
    // Alice's token still verifies, but her erasure is final.
    if let Ok(r) = again {
        assert!(!r.into_inner().key_destroyed);
    }
}

#[tokio::test]
async fn a_process_with_another_key_file_refuses_to_start() {
    let env = TestEnv::start_with(EnvOptions {
        run_api: false,
        run_projector: false,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.key");
    mnemo_bus::keys::KeyFile::init(&other).unwrap();
    let mut nats = mnemo_tests::nats();
    nats.key_file = Some(other);
    let err = mnemo_bus::Bus::start(&nats, mnemo_bus::Role::Extractor, env.ns.clone(), 1)
        .await
        .err()
        .expect("another deployment's key file is refused");
    assert_eq!(err.kind(), mnemo_bus::BusErrorKind::Config);
    assert!(err.to_string().contains("is not the one"), "{err}");
    // A lost key file: a clear error before anything is read.
    nats.key_file = Some(dir.path().join("lost.key"));
    let err = mnemo_bus::Bus::start(&nats, mnemo_bus::Role::Extractor, env.ns.clone(), 1)
        .await
        .err()
        .expect("a missing key file is refused");
    assert!(
        err.to_string().contains("cannot read the key file"),
        "{err}"
    );
    nats.key_file = None;
    let err = mnemo_bus::Bus::start(&nats, mnemo_bus::Role::Extractor, env.ns.clone(), 1)
        .await
        .err()
        .expect("no key file at all is refused");
    assert!(err.to_string().contains("no key file"), "{err}");
}

/// An erasure only counts with its marker, which only the API and the
/// operator may write: a `LearnerErased` published without one (by
/// anyone who may publish document events) is refused as corrupt, and
/// the learner's rows stay. And once a learner is erased, no key of
/// theirs is made again.
#[tokio::test]
async fn a_forged_erasure_changes_nothing_and_an_erased_learner_gets_no_new_key() {
    use mnemo_bus::event_store::{decode_message, LEARNER_ERASED};
    use mnemo_domain::DocumentEvent;

    let env = TestEnv::start().await;
    let mut docs = env.documents("bob").await;
    let up = upload(&mut docs, "notes.md", b"# Bob\n\nhis notes\n")
        .await
        .unwrap();
    let bob = token_of("bob");
    let envelope = mnemo_bus::Envelope::for_commit(
        "learner",
        &bob,
        1,
        vec![LEARNER_ERASED.to_owned()],
        vec!["1".to_owned()],
        &Default::default(),
    );
    let subject = format!("{}.{bob}.erased", env.ns.events_of("doc"));
    let forged = env
        .bus
        .jetstream
        .publish_with_headers(
            subject.clone(),
            envelope.to_headers(),
            br#"[{"type":"LearnerErased","data":{}}]"#.to_vec().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let m = env.bus.events.get_raw_message(forged).await.unwrap();
    let refused = decode_message::<DocumentEvent>(
        &env.bus.keys,
        &m.subject,
        forged,
        Some(&m.headers),
        &m.payload,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.kind(),
        mnemo_bus::BusErrorKind::Corrupt,
        "{refused}"
    );
    // The projector steps over it (dead-lettered); bob's row stays.
    let db = mnemo_projector::db::connect(&mnemo_tests::database_url(), &env.ns)
        .await
        .unwrap();
    mnemo_projector::runner::wait_for(&db, &env.ns, forged, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        rows_of(&db, &bob).await[0].1,
        1,
        "bob's document is still there"
    );
    let got = docs
        .get(pb::GetDocumentRequest {
            document_id: up.document_id,
        })
        .await;
    assert!(got.is_ok(), "{got:?}");

    // A real erasure: from then on no key is made for bob again.
    mnemo_bus::erase::erase_learner(&env.bus, &bob, "operator")
        .await
        .unwrap();
    let again = env.bus.keys.for_writing(&bob).await.unwrap_err();
    assert_eq!(again.kind(), mnemo_bus::BusErrorKind::Erased);
    let fresh = Keyring::fresh(&env).await;
    let again = fresh.for_writing(&bob).await.unwrap_err();
    assert_eq!(
        again.kind(),
        mnemo_bus::BusErrorKind::Erased,
        "another process too"
    );
}

/// Another process's view of the keyring (nothing cached).
struct Keyring;

impl Keyring {
    async fn fresh(env: &TestEnv) -> mnemo_bus::Keyring {
        env.bus_as(mnemo_bus::Role::Api).await.keys
    }
}
