//! Hybrid search over indexed documents: full text and meaning, citations,
//! owner isolation, filters, and clear errors for bad requests.

use std::time::Duration;

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
    let db = postgres().await;
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

/// The BM25 side reads each chunk's lexemes as `tsv::text` and parses them
/// (`mnemo_search::terms::parse_tsvector`): for every chunk of a real paper
/// and some awkward words, the parse equals what unnesting the tsvector in
/// PostgreSQL gives.
#[tokio::test]
async fn lexemes_parsed_from_text_equal_postgresqls() {
    let pages = mnemo_pdf::extract(mnemo_tests::corpus_pdf("med_bmc_health_services.pdf"))
        .expect("the corpus paper extracts");
    let mut texts: Vec<String> = pages;
    texts.push(r"O'Brien's back\slash 'quoted' don''t naïve café C:\x 42 3.14 e-mail".into());
    let db = postgres().await;
    let rows = db
        .query(
            "SELECT to_tsvector('english', t)::text,
                    ARRAY(SELECT lexeme FROM unnest(to_tsvector('english', t))),
                    ARRAY(SELECT coalesce(array_length(positions, 1), 1)
                            FROM unnest(to_tsvector('english', t)))
               FROM unnest($1::text[]) t",
            &[&texts],
        )
        .await
        .expect("lexemes");
    let mut lexemes_seen = 0;
    for row in rows {
        let (text, lexemes, counts): (String, Vec<String>, Vec<i32>) =
            (row.get(0), row.get(1), row.get(2));
        let parsed = mnemo_search::terms::parse_tsvector(&text);
        assert_eq!(parsed, Some((lexemes.clone(), counts)), "{text}");
        lexemes_seen += lexemes.len();
    }
    assert!(lexemes_seen > 1000, "{lexemes_seen} lexemes compared");
}

/// A session of the suite's PostgreSQL (no namespace).
async fn postgres() -> tokio_postgres::Client {
    let (db, conn) = tokio_postgres::connect(&mnemo_tests::database_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(conn);
    db
}

/// Uploads `bytes` and waits until the search index has seen them indexed:
/// the document's id and that stream sequence.
async fn searchable(
    env: &TestEnv,
    owner: &str,
    docs: &mut mnemo_tests::Documents,
    (filename, bytes): (&str, &[u8]),
) -> (String, u64) {
    let id = upload(docs, filename, bytes).await.unwrap().document_id;
    let seen = indexed(env, owner, &id).await;
    let index = env.search_index();
    assert!(index.wait_for(seen, Duration::from_secs(30)).await >= seen);
    (id, seen)
}

/// One API replica serves any number of owners in bounded memory
/// (`mnemo_search::resident`): nobody's search state is read until they
/// search; past the budget (here one byte: only the owner just read stays),
/// the owner searched least recently is dropped; a dropped owner's next
/// search reads them again, with what was indexed while they were not held;
/// and a held owner's new document is refreshed in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_read_at_their_first_search_and_dropped_past_the_budget() {
    let env = TestEnv::start_with(EnvOptions {
        run_pipeline: true,
        search_budget: Some(1),
        ..Default::default()
    })
    .await;
    let index = env.search_index();
    let token = |owner: &str| mnemo_domain::OwnerId::new(owner).unwrap().token();
    let (alice_token, bob_token) = (token("alice"), token("bob"));
    let mut alice_docs = env.documents("alice").await;
    let mut bob_docs = env.documents("bob").await;
    let cells = upload(&mut alice_docs, "cells.md", CELLS).await.unwrap();
    let bobs = upload(&mut bob_docs, "history.md", HISTORY).await.unwrap();
    let seen = indexed(&env, "alice", &cells.document_id)
        .await
        .max(indexed(&env, "bob", &bobs.document_id).await);
    assert!(
        !index.is_held(&alice_token) && !index.is_held(&bob_token),
        "nobody has searched: nothing is held"
    );
    let (alice, bob) = (env.search("alice").await, env.search("bob").await);
    let found = |r: &pb::SearchResponse, id: &str| r.hits.iter().any(|h| h.document_id == id);
    // A hybrid search whose first hit is `id`'s, found by words and meaning.
    let first_by_both = |client: &SearchClient, query: &'static str, id: String, seen: u64| {
        let client = client.clone();
        async move {
            let r = search(&client, request_after(query, pb::SearchMode::Hybrid, seen)).await;
            let first = r.hits.first();
            assert!(
                first.is_some_and(|h| h.document_id == id
                    && h.lexical_rank > 0
                    && h.vector_rank > 0),
                "{r:?}"
            );
            r
        }
    };

    // Alice's first search reads her state; both sides find her document.
    first_by_both(&alice, "mitochondria ATP", cells.document_id.clone(), seen).await;
    assert!(index.is_held(&alice_token) && !index.is_held(&bob_token));

    // Bob's first search reads his, and drops alice's (over the budget).
    let r = first_by_both(&bob, "Westphalia treaty", bobs.document_id.clone(), seen).await;
    assert!(index.is_held(&bob_token) && !index.is_held(&alice_token));
    assert!(!found(&r, &cells.document_id), "{r:?}");

    // Alice, not held, indexes another document: nothing of hers is read
    // for it, and her next search reads it with the first.
    let ribosomes: &[u8] =
        b"# Ribosomes\n\nRibosomes translate messenger RNA into polypeptide chains.\n";
    let (notes, seen) =
        searchable(&env, "alice", &mut alice_docs, ("ribosomes.md", ribosomes)).await;
    assert!(
        !index.is_held(&alice_token),
        "a refresh does not read an owner not held"
    );
    first_by_both(&alice, "polypeptide chains", notes.clone(), seen).await;
    first_by_both(&alice, "mitochondria ATP", cells.document_id.clone(), seen).await;
    assert!(index.is_held(&alice_token) && !index.is_held(&bob_token));

    // Held, she indexes a third: the follower refreshes her in place.
    let golgi: &[u8] = b"# Golgi\n\nThe Golgi apparatus packages proteins into vesicles.\n";
    let (third, seen) = searchable(&env, "alice", &mut alice_docs, ("golgi.md", golgi)).await;
    assert!(
        index.is_held(&alice_token),
        "a refresh keeps a held owner held"
    );
    let r = search(
        &alice,
        request_after("Golgi vesicles", pb::SearchMode::Vector, seen),
    )
    .await;
    assert!(found(&r, &third), "{r:?}");
    // Bob was dropped while alice was read again; his search reads him back.
    let r = search(
        &bob,
        request_after("Westphalia treaty", pb::SearchMode::Hybrid, seen),
    )
    .await;
    assert!(found(&r, &bobs.document_id), "{r:?}");
    assert!(index.is_held(&bob_token));
}
