use super::*;

fn doc(topic: Option<&str>, chunks: &[(&str, &str)]) -> DocumentTerms {
    let mut d = DocumentTerms {
        topic: topic.map(str::to_owned),
        ..Default::default()
    };
    for (id, text) in chunks {
        // Words as lexemes, counted (the tests stand in for to_tsvector).
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        for w in text.split_whitespace() {
            *counts.entry(w.to_owned()).or_default() += 1;
        }
        let (lexemes, counts): (Vec<String>, Vec<i32>) = counts.into_iter().unzip();
        d.push_chunk((*id).to_owned(), &lexemes, &counts);
    }
    d
}

fn scope(owner: &str) -> Scope {
    Scope {
        owner_token: owner.into(),
        documents: None,
        topic: None,
    }
}

fn words(q: &str) -> Vec<String> {
    q.split_whitespace().map(str::to_owned).collect()
}

fn ids(hits: &[(String, f64)]) -> Vec<&str> {
    hits.iter().map(|(c, _)| c.as_str()).collect()
}

#[test]
fn any_query_word_matches_and_rare_words_count_more() {
    let index = TermIndex::new(Bm25::default());
    let d = Uuid::from_u128(1);
    index.replace_document(
        "alice",
        d,
        doc(
            None,
            &[
                ("common", "cell cell membrane"),
                ("rare", "mitochondria energy"),
                ("none", "treaty war"),
                ("filler1", "cell wall"),
                ("filler2", "cell division"),
            ],
        ),
    );
    let hits = index.top(&scope("alice"), &words("cell mitochondria absent"), 10);
    // "mitochondria" is in one chunk of five, "cell" in three: the rare
    // word's chunk wins although it matches one word, like the others.
    assert_eq!(hits[0].0, "rare");
    assert!(!ids(&hits).contains(&"none"));
    assert_eq!(hits.len(), 4);
    assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn a_chunk_with_more_of_the_words_ranks_higher_and_length_is_normalised() {
    let index = TermIndex::new(Bm25::default());
    index.replace_document(
        "alice",
        Uuid::from_u128(1),
        doc(
            None,
            &[
                ("both", "atp synthase"),
                ("one", "atp"),
                (
                    "long",
                    "synthase a b c d e f g h i j k l m n o p q r s t u v w",
                ),
                ("short", "synthase"),
            ],
        ),
    );
    let hits = index.top(&scope("alice"), &words("atp synthase"), 10);
    assert_eq!(hits[0].0, "both");
    let rank = |c: &str| ids(&hits).iter().position(|h| *h == c).unwrap();
    assert!(rank("short") < rank("long"), "{hits:?}");
}

#[test]
fn statistics_and_results_are_per_owner_and_scoped() {
    let index = TermIndex::new(Bm25::default());
    let (a1, a2, b1) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    index.replace_document("alice", a1, doc(Some("bio"), &[("a1", "enzyme kinetics")]));
    index.replace_document(
        "alice",
        a2,
        doc(Some("chem"), &[("a2", "enzyme catalysis")]),
    );
    index.replace_document("bob", b1, doc(None, &[("b1", "enzyme enzyme")]));
    assert_eq!(ids(&index.top(&scope("bob"), &words("enzyme"), 10)), ["b1"]);
    assert_eq!(index.top(&scope("carol"), &words("enzyme"), 10), vec![]);
    let mut bio = scope("alice");
    bio.topic = Some("bio".into());
    assert_eq!(ids(&index.top(&bio, &words("enzyme"), 10)), ["a1"]);
    let mut only = scope("alice");
    only.documents = Some(vec![a2, b1]);
    assert_eq!(ids(&index.top(&only, &words("enzyme"), 10)), ["a2"]);
    assert_eq!(index.top(&scope("alice"), &words("enzyme"), 1).len(), 1);
}

#[test]
fn replacing_a_document_replaces_its_chunks_and_statistics() {
    let index = TermIndex::new(Bm25::default());
    let d = Uuid::from_u128(7);
    index.replace_document("alice", d, doc(None, &[("old", "glycolysis")]));
    index.replace_document(
        "alice",
        Uuid::from_u128(8),
        doc(None, &[("other", "krebs")]),
    );
    index.replace_document(
        "alice",
        d,
        doc(None, &[("new1", "krebs cycle"), ("new2", "cycle")]),
    );
    assert_eq!(index.len(), 3);
    assert_eq!(index.top(&scope("alice"), &words("glycolysis"), 10), vec![]);
    assert_eq!(
        ids(&index.top(&scope("alice"), &words("cycle"), 10)).len(),
        2
    );
    index.remove_document(d);
    assert_eq!(index.len(), 1);
    assert_eq!(
        ids(&index.top(&scope("alice"), &words("krebs"), 10)),
        ["other"]
    );
    index.remove_document(Uuid::from_u128(8));
    assert!(index.is_empty());
}

#[test]
fn scores_match_the_bm25_formula() {
    let index = TermIndex::new(Bm25 { k1: 1.2, b: 0.75 });
    index.replace_document(
        "alice",
        Uuid::from_u128(1),
        doc(None, &[("x", "a a b"), ("y", "b c")]),
    );
    let hits = index.top(&scope("alice"), &words("a"), 10);
    // N = 2, df(a) = 1, tf = 2, len = 3, avg = 2.5.
    let idf = (1.0f64 + (2.0 - 1.0 + 0.5) / 1.5).ln();
    let expected = idf * 2.0 * 2.2 / (2.0 + 1.2 * (0.25 + 0.75 * 3.0 / 2.5));
    assert_eq!(hits.len(), 1);
    assert!(
        (hits[0].1 - expected).abs() < 1e-12,
        "{} vs {expected}",
        hits[0].1
    );
}

#[test]
fn a_tsvectors_text_gives_its_lexemes_and_counts() {
    let (lexemes, counts) = parse_tsvector("'atp':4 'cell':1,7B,9 'mitochondria':2A").unwrap();
    assert_eq!(lexemes, ["atp", "cell", "mitochondria"]);
    assert_eq!(counts, [1, 3, 1]);
    // Without positions (a tsvector stripped or cast from text): once.
    let (lexemes, counts) = parse_tsvector("'a' 'b':3,5").unwrap();
    assert_eq!(
        (lexemes, counts),
        (vec!["a".into(), "b".into()], vec![1, 2])
    );
    // A quote and a backslash inside a lexeme come doubled.
    let (lexemes, _) = parse_tsvector(r"'o''brien':1 'c:\\x':2 'ünïcode':3").unwrap();
    assert_eq!(lexemes, ["o'brien", r"c:\x", "ünïcode"]);
    assert_eq!(parse_tsvector("").unwrap(), (vec![], vec![]));
}

#[test]
fn text_postgresql_would_not_print_is_refused() {
    for bad in ["atp:1", "'atp", "'atp':", "'atp':x", "'a':1 b", r"'a\"] {
        assert!(parse_tsvector(bad).is_none(), "{bad:?}");
    }
}

/// Lexemes are held as the owner's ids: one that every document lost is
/// found nowhere (its frequency 0), and comes back with its right
/// frequency when a document has it again; a document's lexemes are found
/// whatever their order among the owner's ids; and after a series of
/// changes the owner scores exactly as one built from its documents now.
#[test]
fn a_lexeme_gone_from_every_document_and_back_counts_right() {
    let index = TermIndex::new(Bm25::default());
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let a_before = [("a0", "zebra apple apple kiwi"), ("a1", "apple zebra")];
    let a_after = [("a0", "apple pear pear kiwi"), ("a1", "pear apple")];
    let b_now = [
        ("b0", "zebra kiwi zebra"),
        ("b1", "mango pear"),
        ("b2", "apple"),
    ];
    index.replace_document("alice", a, doc(None, &a_before));
    index.replace_document("alice", a, doc(None, &a_after));
    assert!(index.top(&scope("alice"), &words("zebra"), 10).is_empty());
    index.replace_document("alice", b, doc(None, &b_now));
    let query = words("zebra pear apple kiwi mango");
    let hits = index.top(&scope("alice"), &query, 10);
    assert_eq!(hits.len(), 5, "{hits:?}");
    let fresh = TermIndex::new(Bm25::default());
    fresh.replace_document("bob", b, doc(None, &b_now));
    fresh.replace_document("bob", a, doc(None, &a_after));
    assert_eq!(fresh.top(&scope("bob"), &query, 10), hits);
}

/// Lexemes no document has any more are forgotten once they outnumber the
/// others (ids renumbered), and nothing else changes: frequencies, scores
/// and every document's lookups are as in an owner built afresh.
#[test]
fn forgotten_lexemes_are_compacted_away_without_changing_a_score() {
    let many: String = (0..3_000).map(|i| format!("word{i} ")).collect();
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let keep = [
        ("b0", "zebra kiwi zebra word7"),
        ("b1", "mango pear word2999"),
    ];
    let mut owner = OwnerTerms::default();
    owner.add(b, doc(None, &keep));
    owner.add(
        a,
        doc(None, &[("a0", many.as_str()), ("a1", "pear pear apple")]),
    );
    let bytes_before = owner.bytes;
    assert_eq!(owner.lexicon.len(), 3_005);
    // a loses its 3,000 words: they outnumber the rest, so they go.
    owner.add(
        a,
        doc(None, &[("a0", "apple kiwi"), ("a1", "pear word2999")]),
    );
    assert_eq!(
        owner.lexicon.len(),
        owner.live,
        "only live lexemes are kept"
    );
    assert_eq!(owner.frequency.len(), owner.live);
    assert!(
        owner.bytes < bytes_before / 2,
        "{} → {}",
        bytes_before,
        owner.bytes
    );
    let mut fresh = OwnerTerms::default();
    fresh.add(
        a,
        doc(None, &[("a0", "apple kiwi"), ("a1", "pear word2999")]),
    );
    fresh.add(b, doc(None, &keep));
    for (lexeme, &id) in &owner.lexicon {
        let other = fresh.lexicon[lexeme];
        assert_eq!(
            owner.frequency[id as usize], fresh.frequency[other as usize],
            "{lexeme}"
        );
    }
    let query = words("zebra kiwi mango pear apple word7 word2999 word5");
    let p = Bm25::default();
    assert_eq!(
        owner.top(&scope("x"), &query, 10, p),
        fresh.top(&scope("x"), &query, 10, p)
    );
    assert_eq!(owner.top(&scope("x"), &query, 10, p).len(), 4);
    // Each document's ids are still sorted (its lookups binary-search).
    for d in owner.documents.values() {
        assert!(d.lexemes.windows(2).all(|w| w[0] < w[1]));
    }
}

/// A filter naming a document twice gives its chunks once.
#[test]
fn a_document_named_twice_in_the_filter_is_scored_once() {
    let index = TermIndex::new(Bm25::default());
    let a = Uuid::from_u128(1);
    index.replace_document(
        "alice",
        a,
        doc(None, &[("a0", "cell"), ("a1", "cell wall")]),
    );
    let mut twice = scope("alice");
    twice.documents = Some(vec![a, a]);
    assert_eq!(ids(&index.top(&twice, &words("cell"), 10)), ["a0", "a1"]);
}
