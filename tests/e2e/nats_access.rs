//! Who may do what on the event log (issue 17, item 1): a nats-server
//! started from the repo's `nats.conf` (a [`PrivateNats`]) is tried as an
//! attacker would — without a credential, with a key it does not know, and
//! with each service role's own credential reaching beyond its grant. The
//! server refuses every attempt (it reports a permissions violation), the
//! log is unchanged afterwards, and what each role needs still works (the
//! rest of the suite runs every service as its role; a PDF reaches
//! `indexed` in `pipeline`).

use std::time::Duration;

use async_nats::{Event, ServerError};
use bytes::Bytes;
use mnemo_bus::{Bus, Role};
use mnemo_tests::{PrivateNats, TestEnv};
use tokio::sync::mpsc;

/// A connection as `role` that reports the server's errors to the test.
struct Client {
    client: async_nats::Client,
    errors: mpsc::UnboundedReceiver<String>,
}

async fn client_as(nats: &PrivateNats, role: Role) -> Client {
    let (tx, errors) = mpsc::unbounded_channel();
    let options = nats
        .nats()
        .connect_options(role, "attacker")
        .expect("the role's seed")
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(ServerError::Other(e)) = event {
                    let _ = tx.send(e);
                }
            }
        });
    let client = options
        .connect(nats.url())
        .await
        .expect("the role signs in");
    Client { client, errors }
}

impl Client {
    /// Waits (bounded) for the server to report a permissions violation
    /// naming `subject`.
    async fn refused(&mut self, subject: &str) -> bool {
        let wanted = format!("\"{subject}\"");
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(e) = self.errors.recv().await {
                if e.contains("Permissions Violation") && e.contains(&wanted) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false)
    }

    /// Publishes to `subject` and says whether the server refused it.
    async fn publish_refused(&mut self, subject: &str, payload: &'static str) -> bool {
        self.client
            .publish(subject.to_owned(), Bytes::from_static(payload.as_bytes()))
            .await
            .expect("handed to the connection");
        self.client.flush().await.expect("flushed");
        self.refused(subject).await
    }

    /// Subscribes to `subject` and says whether the server refused it.
    async fn subscribe_refused(&mut self, subject: &str) -> bool {
        let _sub = self
            .client
            .subscribe(subject.to_owned())
            .await
            .expect("handed to the connection");
        self.client.flush().await.expect("flushed");
        self.refused(subject).await
    }
}

/// Connecting with `options` to `url` is refused as unauthorized.
async fn refused_at_connect(options: async_nats::ConnectOptions, url: String, who: &str) {
    let err = options.connect(url).await.map(|_| ()).expect_err(who);
    assert_eq!(
        err.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{who}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_reaches_the_log_without_a_credential_the_server_knows() {
    let nats = PrivateNats::start();
    let anonymous = async_nats::ConnectOptions::new();
    refused_at_connect(anonymous, nats.url(), "an anonymous client").await;
    let stranger = nkeys::KeyPair::new_user().seed().expect("a seed");
    let stranger = async_nats::ConnectOptions::with_nkey(stranger);
    refused_at_connect(stranger, nats.url(), "a key nats.conf does not list").await;
    // And the suite's own server (the one deploy/local/test.sh started
    // from the same nats.conf) is just as closed.
    if std::env::var_os("MNEMO_NATS_CREDS").is_some() {
        let anonymous = async_nats::ConnectOptions::new();
        refused_at_connect(
            anonymous,
            mnemo_tests::nats_url(),
            "anonymous, on the suite's NATS",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_role_is_refused_everything_beyond_its_grant() {
    let nats = PrivateNats::start();
    let env = TestEnv::start_with(mnemo_tests::EnvOptions {
        nats: Some(nats.nats()),
        run_api: false,
        run_projector: false,
        ..Default::default()
    })
    .await;
    let ns = env.ns.clone();
    let events = ns.event_stream();
    let before = env.event_count().await;
    // A stolen-looking event: a card for alice with a real envelope's headers.
    let forged_learn = format!("{}.ev.learn.alice.card1", ns.as_str());

    for role in [
        Role::Api,
        Role::Extractor,
        Role::Chunker,
        Role::Embedder,
        Role::Projector,
    ] {
        let mut c = client_as(&nats, role).await;
        let js = |what: &str| format!("$JS.API.{what}");
        // The log's existence and history: no delete, purge, update,
        // message delete, or new stream. The projector alone may erase
        // messages and purge (shredding an erased learner: their key,
        // dead letters and blobs); the event stream itself refuses both,
        // below. The API alone writes erasure markers, and no pipeline
        // role may append a LearnerErased.
        let shredding = [
            js(&format!("STREAM.PURGE.{events}")),
            js(&format!("STREAM.MSG.DELETE.{events}")),
            js(&format!("STREAM.PURGE.OBJ_{}", ns.blob_bucket())),
            js(&format!("STREAM.MSG.DELETE.{}", ns.keys_stream())),
        ];
        let mut refused: Vec<String> = Vec::new();
        if role != Role::Projector {
            refused.extend(shredding);
        }
        if role != Role::Api {
            refused.push(ns.erased_subject("someonestoken"));
            refused.push(format!("{}.someonestoken.erased", ns.events_of("doc")));
        }
        for subject in refused.into_iter().chain([
            js(&format!("STREAM.DELETE.{events}")),
            js(&format!("STREAM.UPDATE.{events}")),
            js(&format!("STREAM.DELETE.{}", ns.keys_stream())),
            js(&format!("STREAM.UPDATE.{}", ns.keys_stream())),
            js(&format!("STREAM.DELETE.OBJ_{}", ns.blob_bucket())),
            js("STREAM.CREATE.STOLEN"),
            // A consumer whose filter the server does not check...
            js(&format!("CONSUMER.CREATE.{events}")),
            js(&format!("CONSUMER.DURABLE.CREATE.{events}.sneaky")),
            // ...or removing another role's consumer.
            js(&format!(
                "CONSUMER.DELETE.{events}.{}",
                ns.consumer("extractor")
            )),
        ]) {
            assert!(
                c.publish_refused(&subject, "{}").await,
                "{role}: {subject} is refused"
            );
        }
        // Consumers on subjects outside the role's grant.
        let learn_consumer = js(&format!(
            "CONSUMER.CREATE.{events}.sneaky.{}.ev.learn.>",
            ns.as_str()
        ));
        let everything = js(&format!(
            "CONSUMER.CREATE.{events}.sneaky.{}.>",
            ns.as_str()
        ));
        assert!(
            c.publish_refused(&everything, "{}").await,
            "{role}: a consumer on every subject"
        );
        if role != Role::Projector {
            assert!(
                c.publish_refused(&learn_consumer, "{}").await,
                "{role}: a consumer on learning events"
            );
        }
        // Learning events come from the API alone; dead letters from
        // their own service; nobody listens to the live subjects or to
        // another role's replies.
        if role != Role::Api {
            assert!(
                c.publish_refused(&forged_learn, "{\"CardCreated\":{}}")
                    .await,
                "{role}: a forged learning event"
            );
        }
        for other in [Role::Api, Role::Extractor, Role::Projector] {
            if other != role {
                let dlq = ns.dlq_subject(other.as_str());
                assert!(
                    c.publish_refused(&dlq, "x").await,
                    "{role}: {other}'s dead letters"
                );
                let inbox = format!("{}.>", other.inbox_prefix());
                assert!(
                    c.subscribe_refused(&inbox).await,
                    "{role}: {other}'s replies"
                );
            }
        }
        assert!(
            c.subscribe_refused(&format!("{}.ev.>", ns.as_str())).await,
            "{role}: listening to the live event subjects"
        );
        assert!(
            c.subscribe_refused("_INBOX.>").await,
            "{role}: the default reply subjects"
        );

        // What the role needs still works: it opens the namespace.
        let bus = Bus::start(&nats.nats(), role, ns.clone(), 1)
            .await
            .unwrap_or_else(|e| panic!("{role} opens the namespace: {e}"));
        assert_eq!(bus.events.cached_info().config.name, events);
    }

    // A role may not declare streams either: a namespace nobody declared
    // stays undeclared, with a clear error.
    let fresh = mnemo_tests::fresh_namespace();
    let err = Bus::start(&nats.nats(), Role::Extractor, fresh.clone(), 1)
        .await
        .err()
        .expect("a service cannot create the namespace's streams");
    assert!(err.to_string().contains("mnemo nats setup"), "{err}");

    // The projector's shredding grant stops at the stream's config: the
    // event log denies message delete and purge to everyone.
    let projector = Bus::start(&nats.nats(), Role::Projector, ns.clone(), 1)
        .await
        .expect("the projector opens the namespace");
    assert!(
        projector.events.delete_message(1).await.is_err(),
        "the log denies message delete"
    );
    assert!(
        projector.events.purge().await.is_err(),
        "the log denies purge"
    );

    // Nothing reached the log, and it still has every property it had.
    assert_eq!(env.event_count().await, before, "no forged event landed");
    let mut stream = env.bus.events.clone();
    let info = stream.info().await.expect("the stream is still there");
    assert!(info.config.deny_delete && info.config.deny_purge);

    // And a grant is a grant: the extractor's own dead letters land.
    let extractor = client_as(&nats, Role::Extractor).await;
    let js = async_nats::jetstream::new(extractor.client);
    js.publish(ns.dlq_subject("extractor"), Bytes::from_static(b"letter"))
        .await
        .expect("handed over")
        .await
        .expect("the extractor may write its dead letters");
    drop(env);
}

/// Deployments that must not see each other get accounts of their own
/// (docs/security.md): with the repo's account copied as a second one, the
/// second deployment — even its operator — cannot find the first's
/// streams, and the same namespace name there is another, empty log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_deployments_namespace_is_out_of_reach() {
    let nats = PrivateNats::with_second_deployment();
    let ns = mnemo_tests::fresh_namespace();
    let first = Bus::start(&nats.nats(), Role::Operator, ns.clone(), 1)
        .await
        .expect("the first deployment declares its namespace");
    async_nats::jetstream::new(first.client.clone())
        .publish(ns.dlq_subject("extractor"), Bytes::from_static(b"theirs"))
        .await
        .expect("handed over")
        .await
        .expect("stored");
    for role in Role::ALL {
        let client = mnemo_bus::setup::connect_once(&nats.other_nats(), role, "other deployment")
            .await
            .expect("the second deployment's roles sign in");
        let js = async_nats::jetstream::new(client);
        for stream in [ns.event_stream(), ns.dlq_stream()] {
            let err = js
                .get_stream(&stream)
                .await
                .err()
                .unwrap_or_else(|| panic!("{role} of the other deployment found {stream}"));
            assert!(err.to_string().contains("not found"), "{role}: {err}");
        }
    }
    // Its operator declaring the same name gets a log of its own.
    let second = Bus::start(&nats.other_nats(), Role::Operator, ns.clone(), 1)
        .await
        .expect("the second deployment declares the same name");
    let mut theirs = first.jetstream.get_stream(ns.dlq_stream()).await.unwrap();
    let mut ours = second.jetstream.get_stream(ns.dlq_stream()).await.unwrap();
    assert_eq!(theirs.info().await.unwrap().state.messages, 1);
    assert_eq!(ours.info().await.unwrap().state.messages, 0);
}
