//! Hybrid search over indexed documents: full text and meaning, citations,
//! owner isolation, filters, and clear errors for bad requests.

use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_tests::{eventually, terminal_update, upload, EnvOptions, SearchClient, TestEnv};

async fn indexed(env: &TestEnv, owner: &str, document_id: &str) {
    let last = terminal_update(env, owner, document_id).await;
    assert_eq!(last.stage, pb::Stage::Indexed as i32, "{last:?}");
}

fn request(query: &str, mode: pb::SearchMode) -> pb::SearchRequest {
    pb::SearchRequest {
        query: query.into(),
        k: 5,
        document_ids: vec![],
        topic: String::new(),
        mode: mode as i32,
    }
}

async fn search(client: &SearchClient, r: pb::SearchRequest) -> pb::SearchResponse {
    client.clone().search(r).await.unwrap().into_inner()
}

const CELLS: &[u8] = b"# Cell biology\n\nMitochondria produce most of the cell's ATP through oxidative phosphorylation.\n\nRibosomes translate messenger RNA into proteins.\n";
const HISTORY: &[u8] =
    b"# History\n\nThe Treaty of Westphalia ended the Thirty Years' War in 1648.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_by_words_and_by_meaning_only_in_the_callers_documents() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut alice_docs = env.documents("alice").await;
    let mut bob_docs = env.documents("bob").await;
    let cells = upload(&mut alice_docs, "cells.md", CELLS).await.unwrap();
    let history = upload(&mut alice_docs, "history.md", HISTORY)
        .await
        .unwrap();
    let bobs = upload(&mut bob_docs, "bob.md", CELLS).await.unwrap();
    indexed(&env, "alice", &cells.document_id).await;
    indexed(&env, "alice", &history.document_id).await;
    indexed(&env, "bob", &bobs.document_id).await;
    let alice = env.search("alice").await;

    // Words: the full-text side, with a highlighted snippet and pages.
    let r = search(&alice, request("mitochondria ATP", pb::SearchMode::Lexical)).await;
    assert_eq!(r.hits.len(), 1, "{r:?}");
    let hit = &r.hits[0];
    assert_eq!(hit.document_id, cells.document_id);
    assert_eq!(hit.title, "cells.md");
    assert!(hit.snippet.contains("«Mitochondria»"), "{}", hit.snippet);
    assert_eq!((hit.page_start, hit.page_end), (1, 1));
    assert_eq!(hit.lexical_rank, 1);

    // Meaning: no shared word, found by the vector side once the index
    // has caught up with the DocumentIndexed events.
    let paraphrase = request(
        "which organelle is the powerhouse that makes energy",
        pb::SearchMode::Hybrid,
    );
    let found = eventually(Duration::from_secs(30), || {
        let (client, r) = (alice.clone(), paraphrase.clone());
        let want = cells.document_id.clone();
        async move {
            let mut client = client;
            client.search(r).await.is_ok_and(|r| {
                let r = r.into_inner();
                r.vector_used
                    && r.hits
                        .first()
                        .is_some_and(|h| h.document_id == want && h.vector_rank == 1)
            })
        }
    })
    .await;
    if !found {
        let r = search(&alice, paraphrase.clone()).await;
        panic!("the paraphrase should find the mitochondria chunk first: {r:?}");
    }

    // Filters: only the history document.
    let mut only_history = request("war", pb::SearchMode::Hybrid);
    only_history.document_ids = vec![history.document_id.clone()];
    let r = search(&alice, only_history).await;
    assert!(!r.hits.is_empty());
    assert!(r.hits.iter().all(|h| h.document_id == history.document_id));

    // Isolation: bob's identical text never shows up for alice, and alice's
    // documents never for bob.
    let r = search(
        &alice,
        request("ribosomes proteins", pb::SearchMode::Hybrid),
    )
    .await;
    assert!(
        r.hits.iter().all(|h| h.document_id != bobs.document_id),
        "{r:?}"
    );
    let bob = env.search("bob").await;
    let r = search(&bob, request("Westphalia treaty", pb::SearchMode::Hybrid)).await;
    assert!(
        r.hits.iter().all(|h| h.document_id == bobs.document_id),
        "{r:?}"
    );

    // Bad requests: a clear InvalidArgument each.
    for bad in [
        request("   ", pb::SearchMode::Hybrid),
        pb::SearchRequest {
            k: 1000,
            ..request("cells", pb::SearchMode::Hybrid)
        },
        pb::SearchRequest {
            document_ids: vec!["not-a-uuid".into()],
            ..request("cells", pb::SearchMode::Hybrid)
        },
    ] {
        let status = alice.clone().search(bad).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(!status.message().is_empty());
    }
}
