//! The index's promises, on a few thousand clustered vectors: the graph
//! agrees with the exact scan, updates never leave stale or duplicate
//! rows, filters hold on every path, the threshold switches paths.

use std::collections::{BTreeMap, HashSet};

use rand::{Rng, SeedableRng};

use super::*;

const DIMS: usize = 32;

fn normalised(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// Clustered unit vectors: a random centre per cluster plus noise.
struct Gen {
    rng: rand::rngs::StdRng,
    centres: Vec<Vec<f32>>,
}

impl Gen {
    fn new(clusters: usize) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let centres = (0..clusters)
            .map(|_| {
                let mut c: Vec<f32> = (0..DIMS).map(|_| normal(&mut rng)).collect();
                normalised(&mut c);
                c
            })
            .collect();
        Self { rng, centres }
    }

    fn vector(&mut self) -> Vec<f32> {
        let c = self.rng.random_range(0..self.centres.len());
        let mut v: Vec<f32> = self.centres[c]
            .iter()
            .map(|x| x + 0.6 * normal(&mut self.rng) / (DIMS as f32).sqrt())
            .collect();
        normalised(&mut v);
        v
    }

    fn document(&mut self, name: &str, rows: usize, topic: Option<&str>) -> DocumentVectors {
        let mut data = Vec::with_capacity(rows * DIMS);
        for _ in 0..rows {
            data.extend(self.vector());
        }
        DocumentVectors {
            topic: topic.map(str::to_string),
            chunk_ids: (0..rows).map(|i| format!("{name}-{i}")).collect(),
            data,
        }
    }
}

fn doc(i: u128) -> Uuid {
    Uuid::from_u128(i)
}

fn scope(owner: &str) -> Scope {
    Scope {
        owner_token: owner.into(),
        documents: None,
        topic: None,
    }
}

fn config(exact_below: usize) -> VectorConfig {
    VectorConfig {
        exact_below,
        ann: AnnConfig {
            build_threads: 2,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// 100 documents × 30 rows for alice, topics "odd" / "even" by number.
fn alice(index: &VectorIndex, gen: &mut Gen) {
    for d in 0..100u128 {
        let topic = if d % 2 == 1 { "odd" } else { "even" };
        let rows = gen.document(&format!("d{d}"), 30, Some(topic));
        index.replace_document("alice", doc(d), Some(rows));
    }
}

fn ids(hits: &[(String, f32)]) -> Vec<&str> {
    hits.iter().map(|(c, _)| c.as_str()).collect()
}

fn recall(got: &[(String, f32)], want: &[(String, f32)]) -> f64 {
    let want: HashSet<&str> = ids(want).into_iter().collect();
    got.iter()
        .filter(|(c, _)| want.contains(c.as_str()))
        .count() as f64
        / want.len().max(1) as f64
}

#[test]
fn the_graph_agrees_with_the_exact_scan() {
    let (index, mut gen) = (VectorIndex::with_config(DIMS, config(1_000)), Gen::new(40));
    alice(&index, &mut gen);
    let r = index.rebuild("alice").expect("rebuilt");
    assert!(r.graph && r.rows == 3_000, "{r:?}");
    let mut total = 0.0;
    for _ in 0..50 {
        let q = gen.vector();
        let exact = index.top_scored(&scope("alice"), &q, 10, Path::Exact);
        let graph = index.top_scored(&scope("alice"), &q, 10, Path::Graph);
        assert_eq!(graph.len(), 10);
        total += recall(&graph, &exact);
        // Above the threshold, the default path is the graph's.
        assert_eq!(index.top_scored(&scope("alice"), &q, 10, Path::Auto), graph);
    }
    assert!(total / 50.0 >= 0.95, "recall@10 {}", total / 50.0);
}

#[test]
fn a_reindexed_document_replaces_its_rows_and_a_removed_one_disappears() {
    let (index, mut gen) = (VectorIndex::with_config(DIMS, config(1_000)), Gen::new(40));
    alice(&index, &mut gen);
    index.rebuild("alice").expect("rebuilt");
    // Document 7 comes back with new rows under new chunk ids; document 8
    // is removed. Both were in the graph.
    let new7 = gen.document("d7-run2", 12, Some("odd"));
    let probe = new7.data[..DIMS].to_vec();
    index.replace_document("alice", doc(7), Some(new7));
    index.remove_document(doc(8));
    assert_eq!(index.len(), 3_000 - 30 - 30 + 12);
    let check = |index: &VectorIndex| {
        for path in [Path::Auto, Path::Exact, Path::Graph] {
            // Everything on the exact path; the graph's best 50.
            let n = if path == Path::Exact { 3_000 } else { 50 };
            let hits = index.top_scored(&scope("alice"), &probe, n, path);
            let got = ids(&hits);
            assert_eq!(got[0], "d7-run2-0", "{path:?}");
            let unique: HashSet<&str> = got.iter().copied().collect();
            assert_eq!(unique.len(), got.len(), "{path:?}: duplicates");
            assert!(
                !got.iter()
                    .any(|c| c.starts_with("d8-")
                        || (c.starts_with("d7-") && !c.starts_with("d7-run2"))),
                "{path:?}: stale rows"
            );
            let want = if path == Path::Exact {
                3_000 - 60 + 12
            } else {
                50
            };
            assert_eq!(got.len(), want, "{path:?}");
        }
    };
    check(&index);
    // The same after the churn is folded into a new graph.
    assert!(index.rebuild("alice").is_some());
    check(&index);
}

#[test]
fn a_rebuild_catches_up_with_updates_made_while_it_ran() {
    let mut gen = Gen::new(10);
    let docs: BTreeMap<Uuid, Arc<DocumentVectors>> = (0..20u128)
        .map(|d| (doc(d), Arc::new(gen.document(&format!("d{d}"), 5, None))))
        .collect();
    let then =
        Owner::exact(DIMS, docs).replace(doc(3), Some(Arc::new(gen.document("d3b", 4, None))));
    // While the rebuild runs: 3 changes again, 4 goes, 25 arrives, 5 changes.
    let now = then
        .replace(doc(3), Some(Arc::new(gen.document("d3c", 2, None))))
        .replace(doc(4), None)
        .replace(doc(25), Some(Arc::new(gen.document("d25", 3, None))))
        .replace(doc(5), Some(Arc::new(gen.document("d5b", 5, None))));
    let rebuilt = Owner::exact(DIMS, then.live_documents());
    let caught = Owner::catch_up(rebuilt, &then, &now);
    assert_eq!(caught.live_documents(), now.live_documents());
    assert_eq!(caught.len(), now.len());
}

#[test]
fn filters_hold_on_every_path() {
    let (index, mut gen) = (VectorIndex::with_config(DIMS, config(1_000)), Gen::new(40));
    alice(&index, &mut gen);
    index.rebuild("alice").expect("rebuilt");
    let q = gen.vector();
    // A few documents: few rows, answered exactly, only theirs.
    let few = Scope {
        documents: Some(vec![doc(3), doc(10), doc(999)]),
        ..scope("alice")
    };
    let hits = index.top_scored(&few, &q, 100, Path::Auto);
    assert_eq!(hits.len(), 60, "every row of the two documents that exist");
    assert!(ids(&hits)
        .iter()
        .all(|c| c.starts_with("d3-") || c.starts_with("d10-")));
    assert_eq!(hits, index.top_scored(&few, &q, 100, Path::Exact));
    // A topic: half the rows, through the graph (over-fetched), only odd.
    let odd = Scope {
        topic: Some("odd".into()),
        ..scope("alice")
    };
    let mut total = 0.0;
    for _ in 0..30 {
        let q = gen.vector();
        let graph = index.top_scored(&odd, &q, 10, Path::Auto);
        assert_eq!(graph.len(), 10);
        for (c, _) in &graph {
            let d: u32 = c[1..c.find('-').unwrap_or(c.len())].parse().unwrap_or(0);
            assert_eq!(d % 2, 1, "{c} is not an odd document");
        }
        total += recall(&graph, &index.top_scored(&odd, &q, 10, Path::Exact));
    }
    assert!(total / 30.0 >= 0.9, "filtered recall@10 {}", total / 30.0);
    // Both filters, and another owner's view: nothing of alice's.
    let both = Scope {
        documents: Some(vec![doc(3), doc(4)]),
        topic: Some("odd".into()),
        ..scope("alice")
    };
    assert!(ids(&index.top_scored(&both, &q, 100, Path::Auto))
        .iter()
        .all(|c| c.starts_with("d3-")));
    assert!(index.top(&scope("bob"), &q, 10).is_empty());
}

#[test]
fn the_threshold_switches_an_owner_to_the_graph() {
    let (index, mut gen) = (VectorIndex::with_config(DIMS, config(1_000)), Gen::new(40));
    for d in 0..30u128 {
        index.replace_document(
            "alice",
            doc(d),
            Some(gen.document(&format!("d{d}"), 30, None)),
        );
    }
    // 900 rows: a rebuild compacts, without a graph.
    let r = index.rebuild("alice").expect("rebuilt");
    assert!(!r.graph && !index.has_graph("alice"), "{r:?}");
    assert!(index
        .top_scored(&scope("alice"), &gen.vector(), 10, Path::Graph)
        .is_empty());
    for d in 30..40u128 {
        index.replace_document(
            "alice",
            doc(d),
            Some(gen.document(&format!("d{d}"), 30, None)),
        );
    }
    assert!(index
        .inner
        .due(&index.inner.snapshot("alice").expect("alice")));
    let r = index.rebuild("alice").expect("rebuilt");
    assert!(
        r.graph && index.has_graph("alice") && r.rows == 1_200,
        "{r:?}"
    );
}

#[test]
fn the_same_state_answers_the_same_way() {
    let (index, mut gen) = (VectorIndex::with_config(DIMS, config(1_000)), Gen::new(40));
    alice(&index, &mut gen);
    index.rebuild("alice").expect("rebuilt");
    let q = gen.vector();
    let first = index.top(&scope("alice"), &q, 50);
    for _ in 0..5 {
        assert_eq!(index.top(&scope("alice"), &q, 50), first);
    }
    // Equal scores are ordered by chunk id.
    let twin = DocumentVectors {
        topic: None,
        chunk_ids: vec!["b".into(), "a".into()],
        data: [q.clone(), q.clone()].concat(),
    };
    index.replace_document("carol", doc(1), Some(twin));
    assert_eq!(index.top(&scope("carol"), &q, 2), vec!["a", "b"]);
}

#[test]
fn nearest_first_and_only_the_owners() {
    let index = VectorIndex::new(2);
    let row = |chunks: &[&str], data: &[f32]| DocumentVectors {
        topic: None,
        chunk_ids: chunks.iter().map(|c| c.to_string()).collect(),
        data: data.to_vec(),
    };
    index.replace_document(
        "alice",
        doc(1),
        Some(row(&["a", "b"], &[1.0, 0.0, 0.0, 1.0])),
    );
    index.replace_document("alice", doc(2), Some(row(&["c"], &[0.7, 0.7])));
    assert_eq!(index.top(&scope("alice"), &[1.0, 0.1], 2), vec!["a", "c"]);
    assert!(index.top(&scope("bob"), &[1.0, 0.1], 2).is_empty());
    // A vector of the wrong width is refused, not misread.
    index.replace_document("alice", doc(3), Some(row(&["d"], &[1.0, 0.0, 0.0])));
    assert_eq!(index.len(), 3);
    index.remove_document(doc(1));
    assert_eq!(index.top(&scope("alice"), &[0.0, 1.0], 3), vec!["c"]);
}
