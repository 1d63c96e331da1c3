//! Hybrid search over indexed documents: full text and meaning, citations,
//! owner isolation, filters, and clear errors for bad requests.

use mnemo_proto::v1 as pb;
use mnemo_tests::{indexed, upload, EnvOptions, SearchClient, TestEnv};

/// A request that reads the index at `SEEN` or later (read-your-writes).
fn request_after(query: &str, mode: pb::SearchMode, seen: u64) -> pb::SearchRequest {
    pb::SearchRequest {
        query: query.into(),
        k: 5,
        document_ids: vec![],
        topic: String::new(),
        mode: mode as i32,
        min_sequence: seen,
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
    let seen = [
        indexed(&env, "alice", &cells.document_id).await,
        indexed(&env, "alice", &history.document_id).await,
        indexed(&env, "bob", &bobs.document_id).await,
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    let request = |q: &str, mode| request_after(q, mode, seen);
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

    // A natural query ranks by BM25: any of its words matches, so a chunk
    // with "treaty war" and one with "mitochondria" are both found (a
    // websearch AND of all three would find nothing).
    let r = search(
        &alice,
        request("treaty war mitochondria", pb::SearchMode::Lexical),
    )
    .await;
    let found: std::collections::HashSet<&str> =
        r.hits.iter().map(|h| h.document_id.as_str()).collect();
    assert!(found.contains(cells.document_id.as_str()), "{r:?}");
    assert!(found.contains(history.document_id.as_str()), "{r:?}");
    assert!(
        r.hits.iter().any(|h| h.snippet.contains("«Treaty»")),
        "{r:?}"
    );
    // Websearch syntax keeps its meaning: a phrase and an exclusion.
    let r = search(
        &alice,
        request("\"thirty years\" -mitochondria", pb::SearchMode::Lexical),
    )
    .await;
    assert_eq!(r.hits.len(), 1, "{r:?}");
    assert_eq!(r.hits[0].document_id, history.document_id);
    let r = search(
        &alice,
        request("\"years thirty\" OR -war", pb::SearchMode::Lexical),
    )
    .await;
    assert!(
        r.hits.iter().all(|h| h.document_id != history.document_id),
        "{r:?}"
    );

    // Meaning: no shared word, found by the vector side (the index has
    // reached every DocumentIndexed: min_sequence).
    let r = search(
        &alice,
        request(
            "which organelle is the powerhouse that makes energy",
            pb::SearchMode::Hybrid,
        ),
    )
    .await;
    assert!(r.vector_used);
    let first = r.hits.first().expect("a hit");
    assert_eq!(first.document_id, cells.document_id, "{r:?}");
    assert_eq!(first.vector_rank, 1, "{r:?}");

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

/// PostgreSQL restarts (or its sessions are ended): every long-lived user
/// of it reconnects. The search index reconnects and refreshes what was
/// indexed meanwhile, so a document indexed after the restart is found by
/// both sides of search, not only by the ones that read PostgreSQL per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_what_was_indexed_after_postgresql_dropped_its_sessions() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        ..Default::default()
    })
    .await;
    let mut docs = env.documents("alice").await;
    let cells = upload(&mut docs, "cells.md", CELLS).await.unwrap();
    let seen = indexed(&env, "alice", &cells.document_id).await;
    let alice = env.search("alice").await;
    let r = search(
        &alice,
        request_after("mitochondria", pb::SearchMode::Vector, seen),
    )
    .await;
    assert_eq!(r.hits.len(), 1, "{r:?}");

    // What a PostgreSQL restart does to every session of this install.
    let (admin, connection) =
        tokio_postgres::connect(&mnemo_tests::database_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let ended = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1) t",
            &[&mnemo_projector::db::application_name(&env.ns)],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(
        ended >= 2,
        "the search index's and the projector's sessions ({ended})"
    );

    let history = upload(&mut docs, "history.md", HISTORY).await.unwrap();
    let seen = indexed(&env, "alice", &history.document_id).await;
    for mode in [
        pb::SearchMode::Vector,
        pb::SearchMode::Lexical,
        pb::SearchMode::Hybrid,
    ] {
        let r = search(&alice, request_after("Treaty of Westphalia", mode, seen)).await;
        assert!(
            r.hits.iter().any(|h| h.document_id == history.document_id),
            "{mode:?} misses the document indexed after the sessions ended: {r:?}"
        );
    }
}

/// Snippets mark a word when its Snowball stem is a query lexeme
/// (`mnemo_search::snippet`); the lexemes come from PostgreSQL. The two
/// stemmers must agree, or snippets would miss the very words that made a
/// hit: every distinct word of a real paper, each as a one-word query.
#[tokio::test]
async fn a_words_stem_is_postgresqls_lexeme() {
    use mnemo_search::snippet::QueryWords;
    let pages = mnemo_pdf::extract(mnemo_tests::corpus_pdf("med_bmc_health_services.pdf"))
        .expect("the corpus paper extracts");
    let mut words: Vec<String> = pages
        .join(" ")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    words.sort();
    words.dedup();
    assert!(words.len() > 300, "{} words", words.len());
    let (db, conn) = tokio_postgres::connect(&mnemo_tests::database_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(conn);
    let rows = db
        .query(
            "SELECT w, ARRAY(SELECT lexeme FROM unnest(to_tsvector('english', w)))
               FROM unnest($1::text[]) w",
            &[&words],
        )
        .await
        .expect("lexemes");
    let (mut compared, mut differ) = (0, Vec::new());
    for row in rows {
        let (word, lexemes): (String, Vec<String>) = (row.get(0), row.get(1));
        if lexemes.is_empty() {
            continue; // a stop word: never a query lexeme
        }
        compared += 1;
        if !QueryWords::new(&lexemes).matches(&word) {
            differ.push(format!("{word} → {lexemes:?}"));
        }
    }
    assert!(compared > 300, "{compared} words compared");
    // Found on this paper: none. A few in a thousand would still do.
    assert!(
        differ.len() * 1000 <= compared * 2,
        "{} of {compared} words stem otherwise than in PostgreSQL: {differ:?}",
        differ.len()
    );
}
