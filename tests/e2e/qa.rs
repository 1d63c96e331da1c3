//! Questions with cited answers and cards from material, end to end: real
//! pipeline (NATS, PostgreSQL, the model), the QaService over gRPC, the
//! events on the stream; the LLM path against a fake chat-completions
//! server on 127.0.0.1.

use std::sync::Arc;

use mnemo_bus::JetStreamEventStore;
use mnemo_domain::learn::{Card, CardEvent, ProducedBy, Question, QuestionEvent};
use mnemo_domain::OwnerId;
use mnemo_proto::v1 as pb;
use mnemo_tests::fake_llm::{Behaviour, FakeLlm};
use mnemo_tests::{indexed, upload, EnvOptions, QaClient, TestEnv};
use pb::ask_response::Part;

const CELLS: &[u8] = b"Cell biology notes.\n\nMitochondria are membrane-bound organelles that produce most of the cell's ATP. They do so through oxidative phosphorylation.\n\nRibosomes translate messenger RNA into proteins. Oxidative phosphorylation needs oxygen.\n\nOsmosis: the movement of water across a semipermeable membrane.\n";
const BOBS: &[u8] = b"Bob's private notes.\n\nMitochondria are the secret organelles of Bob's cells and produce ATP for Bob.\n";

/// Everything one Ask streamed.
#[derive(Debug, Default)]
struct Asked {
    sources: Vec<pb::AskSource>,
    deltas: Vec<pb::AnswerDelta>,
    done: Option<pb::AskDone>,
}

impl Asked {
    /// The answer as a client shows it (a restart drops what came before).
    fn text(&self) -> String {
        let mut text = String::new();
        for d in &self.deltas {
            if d.restart {
                text.clear();
            }
            text.push_str(&d.text);
        }
        text
    }

    fn done(&self) -> &pb::AskDone {
        self.done.as_ref().expect("a done message")
    }
}

fn question(q: &str, seen: u64, mode: pb::AnswerMode) -> pb::AskRequest {
    pb::AskRequest {
        question: q.into(),
        k: 5,
        document_ids: vec![],
        min_sequence: seen,
        mode: mode as i32,
    }
}

async fn ask(client: &QaClient, r: pb::AskRequest) -> Asked {
    let mut stream = client.clone().ask(r).await.expect("ask").into_inner();
    let mut out = Asked::default();
    while let Some(m) = stream.message().await.expect("the answer stream") {
        match m.part.expect("a part") {
            Part::Sources(s) => {
                assert!(out.deltas.is_empty() && out.done.is_none(), "sources first");
                out.sources = s.sources;
            }
            Part::Delta(d) => {
                assert!(out.done.is_none(), "no delta after done");
                out.deltas.push(d);
            }
            Part::Done(d) => out.done = Some(d),
        }
    }
    out
}

/// The QuestionAsked event the done message names.
async fn recorded(
    env: &TestEnv,
    owner: &str,
    done: &pb::AskDone,
) -> mnemo_domain::learn::AskedQuestion {
    let store = JetStreamEventStore::<Question>::new(&env.bus, "learn", 0);
    let id = mnemo_domain::learn::aggregate_id(
        &OwnerId::new(owner).unwrap(),
        "question",
        &done.question_id.parse().unwrap(),
    );
    let messages = store
        .read_messages(&id)
        .await
        .expect("the question's subject");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].stream_sequence, done.sequence);
    assert!(
        messages[0].subject.contains(".ev.learn."),
        "{}",
        messages[0].subject
    );
    let QuestionEvent::QuestionAsked(asked) = messages[0].events[0].clone();
    asked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_answers_from_the_callers_sentences_with_citations_and_records_it() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut alice_docs = env.documents("alice").await;
    let mut bob_docs = env.documents("bob").await;
    let cells = upload(&mut alice_docs, "cells.md", CELLS).await.unwrap();
    let bobs = upload(&mut bob_docs, "bob.md", BOBS).await.unwrap();
    let seen = indexed(&env, "alice", &cells.document_id)
        .await
        .max(indexed(&env, "bob", &bobs.document_id).await);
    let alice = env.qa("alice").await;

    let a = ask(
        &alice,
        question("What do mitochondria produce?", seen, pb::AnswerMode::Auto),
    )
    .await;
    // Sources: only alice's document, numbered from 1, with pages.
    assert!(!a.sources.is_empty());
    for (i, s) in a.sources.iter().enumerate() {
        assert_eq!(s.n as usize, i + 1);
        assert_eq!(s.document_id, cells.document_id, "{s:?}");
        assert_eq!((s.title.as_str(), s.page_start), ("cells.md", 1));
    }
    let text = a.text();
    assert!(
        text.starts_with(
            "Mitochondria are membrane-bound organelles that produce most of the cell's ATP. [1]"
        ),
        "{text}"
    );
    assert!(!text.contains("Bob"), "{text}");
    let done = a.done();
    assert_eq!(done.produced_by, "extractive");
    assert_eq!(done.answer, text);
    assert!(done.fallback_reason.is_empty());
    assert_eq!(done.citations[0].n, 1);
    for c in &done.citations {
        assert_eq!(c.document_id, cells.document_id);
        assert_eq!(c.chunk_id, a.sources[c.n as usize - 1].chunk_id);
        assert_eq!(c.page, 1);
    }
    // Each delta names the source it cites.
    assert!(a
        .deltas
        .iter()
        .all(|d| d.citations.len() == 1 && !d.restart));

    // The question is on the learner's history, as streamed.
    let asked = recorded(&env, "alice", done).await;
    assert_eq!(asked.question, "What do mitochondria produce?");
    assert_eq!(asked.answer, done.answer);
    assert_eq!(asked.produced_by, ProducedBy::Extractive);
    assert_eq!(asked.retrieved.len(), a.sources.len());
    assert!(asked
        .retrieved
        .iter()
        .all(|r| r.document_id.to_string() == cells.document_id));
    assert_eq!(asked.citations.len(), done.citations.len());

    // Bob asks the same: only his document, never alice's.
    let b = ask(
        &env.qa("bob").await,
        question("What do mitochondria produce?", seen, pb::AnswerMode::Auto),
    )
    .await;
    assert!(b.sources.iter().all(|s| s.document_id == bobs.document_id));
    assert!(b.text().contains("Bob"), "{}", b.text());
    assert!(b
        .done()
        .citations
        .iter()
        .all(|c| c.document_id == bobs.document_id));

    // Bad requests: clear statuses, no stream.
    for (bad, code) in [
        (
            question("   ", seen, pb::AnswerMode::Auto),
            tonic::Code::InvalidArgument,
        ),
        (
            pb::AskRequest {
                k: 500,
                ..question("cells", seen, pb::AnswerMode::Auto)
            },
            tonic::Code::InvalidArgument,
        ),
        (
            pb::AskRequest {
                document_ids: vec![bobs.document_id.clone()],
                ..question("cells", seen, pb::AnswerMode::Auto)
            },
            tonic::Code::NotFound,
        ),
        (
            pb::AskRequest {
                document_ids: vec!["not-a-uuid".into()],
                ..question("cells", seen, pb::AnswerMode::Auto)
            },
            tonic::Code::InvalidArgument,
        ),
    ] {
        let status = alice.clone().ask(bad).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(!status.message().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_cards_creates_cited_cards_through_the_card_aggregate_once() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut alice_docs = env.documents("alice").await;
    let cells = upload(&mut alice_docs, "cells.md", CELLS).await.unwrap();
    let seen = indexed(&env, "alice", &cells.document_id).await;
    let alice = env.qa("alice").await;
    let request = pb::GenerateCardsRequest {
        document_id: cells.document_id.clone(),
        deck: "biology".into(),
        max: 10,
        use_llm: false,
        min_sequence: seen,
    };
    let r = alice
        .clone()
        .generate_cards(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.produced_by, "offline");
    assert!(r.cards.len() >= 3, "{r:?}");
    let mito = r
        .cards
        .iter()
        .find(|c| c.front == "What are Mitochondria?")
        .expect("a definition card");
    assert_eq!(mito.kind, "definition");
    assert!(mito.back.contains("produce most of the cell's ATP"));
    assert!(r.cards.iter().any(|c| c.front == "What is Osmosis?"));
    assert!(r
        .cards
        .iter()
        .any(|c| c.kind == "cloze" && c.front.contains("[…]")));
    for c in &r.cards {
        assert!(c.created);
        assert_eq!(c.deck, "biology");
        assert_eq!(
            (c.document_id.as_str(), c.page),
            (cells.document_id.as_str(), 1)
        );
        assert!(c.chunk_id.starts_with(&cells.document_id), "{c:?}");
    }

    // On the stream: CardCreated through the card aggregate, with its source.
    let store = JetStreamEventStore::<Card>::new(&env.bus, "learn", 0);
    let id = mnemo_domain::learn::aggregate_id(
        &OwnerId::new("alice").unwrap(),
        "card",
        &mito.card_id.parse().unwrap(),
    );
    let messages = store.read_messages(&id).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].stream_sequence, mito.sequence);
    let CardEvent::CardCreated { content, .. } = &messages[0].events[0] else {
        panic!("{:?}", messages[0].events);
    };
    let source = content.source.as_ref().expect("a cited card");
    assert_eq!(source.document_id.to_string(), cells.document_id);
    assert_eq!(
        (source.chunk_id.as_str(), source.page),
        (mito.chunk_id.as_str(), 1)
    );

    // Again: the same cards, none new.
    let again = alice
        .clone()
        .generate_cards(request.clone())
        .await
        .unwrap()
        .into_inner();
    let ids = |r: &pb::GenerateCardsResponse| {
        r.cards
            .iter()
            .map(|c| c.card_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again), ids(&r));
    assert!(again.cards.iter().all(|c| !c.created));

    // LLM asked for, none configured: offline, and said so.
    let llm = alice
        .clone()
        .generate_cards(pb::GenerateCardsRequest {
            use_llm: true,
            ..request.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(llm.produced_by, "offline");
    assert!(
        llm.fallback_reason.contains("no LLM"),
        "{}",
        llm.fallback_reason
    );

    // Unknown, another owner's, or malformed documents; bad limits.
    let bob = env.qa("bob").await;
    let status = bob
        .clone()
        .generate_cards(request.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    for (bad, code) in [
        (
            pb::GenerateCardsRequest {
                document_id: uuid::Uuid::now_v7().to_string(),
                ..request.clone()
            },
            tonic::Code::NotFound,
        ),
        (
            pb::GenerateCardsRequest {
                document_id: "nope".into(),
                ..request.clone()
            },
            tonic::Code::InvalidArgument,
        ),
        (
            pb::GenerateCardsRequest {
                max: 1000,
                ..request.clone()
            },
            tonic::Code::InvalidArgument,
        ),
    ] {
        let status = alice.clone().generate_cards(bad).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_llm_the_answer_is_its_streamed_tokens_and_failures_fall_back() {
    let tokens: Vec<String> = ["Mitochondria ", "make ATP ", "[", "1", "]."]
        .map(String::from)
        .to_vec();
    let fake = FakeLlm::start(Behaviour::Stream(tokens.clone())).await;
    let client = mnemo_qa::llm::openai::OpenAiClient::new(
        mnemo_qa::LlmConfig::new(fake.base_url(), "fake-model")
            .with_api_key(Some("test-key".into())),
    )
    .unwrap();
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        llm: Some(Arc::new(client)),
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let cells = upload(&mut docs, "cells.md", CELLS).await.unwrap();
    let seen = indexed(&env, "alice", &cells.document_id).await;
    let alice = env.qa("alice").await;
    let q = || question("What do mitochondria produce?", seen, pb::AnswerMode::Auto);

    // The tokens as they came, the marker split across three of them.
    let a = ask(&alice, q()).await;
    let texts: Vec<&str> = a.deltas.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts, tokens.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(a.deltas[4].citations, vec![1]);
    let done = a.done();
    assert_eq!(
        (done.produced_by.as_str(), done.model.as_str()),
        ("llm", "fake-model")
    );
    assert_eq!(done.answer, "Mitochondria make ATP [1].");
    assert_eq!(done.citations.len(), 1);
    assert_eq!(done.citations[0].chunk_id, a.sources[0].chunk_id);
    let asked = recorded(&env, "alice", done).await;
    assert_eq!(
        asked.produced_by,
        ProducedBy::Llm {
            model: "fake-model".into()
        }
    );
    // What the server was sent: a streamed chat with the numbered sources.
    let seen_request = fake.requests().pop().expect("a request");
    assert!(seen_request
        .head
        .starts_with("POST /v1/chat/completions HTTP/1.1"));
    assert!(seen_request
        .head
        .to_lowercase()
        .contains("authorization: bearer test-key"));
    let body: serde_json::Value = serde_json::from_str(&seen_request.body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "fake-model");
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("[1] (cells.md, page 1)"), "{prompt}");
    assert!(prompt.ends_with("Question: What do mitochondria produce?"));

    // Extractive on request, though an LLM is there.
    let n = fake.requests().len();
    let e = ask(
        &alice,
        question(
            "What do mitochondria produce?",
            seen,
            pb::AnswerMode::Extractive,
        ),
    )
    .await;
    assert_eq!(e.done().produced_by, "extractive");
    assert_eq!(fake.requests().len(), n, "the LLM was not asked");

    // HTTP 500: the extractive answer, with the reason.
    fake.set(Behaviour::Status(500));
    let f = ask(&alice, q()).await;
    let done = f.done();
    assert_eq!(done.produced_by, "extractive");
    assert!(
        done.fallback_reason.contains("HTTP 500"),
        "{}",
        done.fallback_reason
    );
    assert!(
        done.fallback_reason.contains("overloaded"),
        "{}",
        done.fallback_reason
    );
    assert!(
        f.text().starts_with("Mitochondria are membrane-bound"),
        "{}",
        f.text()
    );
    assert!(f.deltas.iter().all(|d| !d.restart));
    assert_eq!(
        recorded(&env, "alice", done).await.produced_by,
        ProducedBy::Extractive
    );

    // Cut off mid-answer: a restart, then the extractive answer.
    fake.set(Behaviour::BreakAfter(vec![
        "Mito".into(),
        "chondria".into(),
    ]));
    let cut = ask(&alice, q()).await;
    let restart = cut
        .deltas
        .iter()
        .position(|d| d.restart)
        .expect("a restart delta");
    assert!(restart > 0, "{:?}", cut.deltas);
    assert_eq!(cut.done().produced_by, "extractive");
    assert!(!cut.done().fallback_reason.is_empty());
    assert_eq!(cut.text(), cut.done().answer);

    // Cards from the LLM: its JSON list, cited by chunk number.
    let reply = r#"[{"front": "What do mitochondria make?", "back": "ATP", "chunk": 1}, {"front": "Bad", "back": "x", "chunk": 99}]"#;
    fake.set(Behaviour::Stream(vec![
        reply[..20].into(),
        reply[20..].into(),
    ]));
    let r = alice
        .clone()
        .generate_cards(pb::GenerateCardsRequest {
            document_id: cells.document_id.clone(),
            deck: String::new(),
            max: 5,
            use_llm: true,
            min_sequence: seen,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.produced_by, "llm", "{r:?}");
    assert_eq!(r.cards.len(), 1);
    let card = &r.cards[0];
    assert_eq!(
        (card.front.as_str(), card.back.as_str(), card.kind.as_str()),
        ("What do mitochondria make?", "ATP", "llm")
    );
    assert_eq!(card.deck, "cells.md");
    assert!(card.chunk_id.starts_with(&cells.document_id));
}
