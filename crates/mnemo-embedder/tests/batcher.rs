//! The cross-document batching queue with the real model: every submitter
//! gets exactly its vectors, bit-identical to embedding each text alone,
//! however the queue mixed them; a withdrawn submitter costs nothing.
//!
//! Needs deploy/model/prepare.sh to have run (see `common`).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use mnemo_embedder::batcher::{BatchPlan, Batcher, Results, TextToEmbed};
use mnemo_embedder::{init_runtime, Embedder, EmbedderConfig};

fn model() -> Arc<Embedder> {
    let prepared = common::prepared();
    init_runtime(&prepared.dylib).unwrap_or_else(|e| panic!("{}", e.report()));
    let config = EmbedderConfig::local(prepared.model_dir).with_threads(1);
    Arc::new(Embedder::new(config).unwrap_or_else(|e| panic!("{}", e.report())))
}

/// Texts of varied lengths, so batches mix documents and lengths.
fn texts(document: &str, n: usize, model: &Embedder) -> Vec<TextToEmbed> {
    (0..n)
        .map(|i| {
            let text = format!(
                "{document} chunk {i}: {}",
                "spaced repetition strengthens memory ".repeat(1 + (i * 5) % 23)
            );
            let tokens = model.count_tokens(&text).unwrap_or_else(|e| panic!("{e}"));
            TextToEmbed {
                index: i,
                text,
                tokens,
            }
        })
        .collect()
}

async fn collect(mut rx: Results, n: usize) -> HashMap<usize, Vec<f32>> {
    let mut out = HashMap::new();
    while out.len() < n {
        match rx.recv().await {
            Some(Ok(e)) => {
                assert!(
                    out.insert(e.index, e.vector).is_none(),
                    "index {} twice",
                    e.index
                );
            }
            Some(Err(e)) => panic!("{}", e.report()),
            None => panic!("queue closed after {} of {n}", out.len()),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_documents_get_exactly_their_own_vectors() {
    let model = model();
    // A small window and budget force many batches that mix both documents.
    let plan = BatchPlan {
        token_budget: 1_024,
        max_texts: 8,
        window: 24,
        cache_entries: 0,
    };
    let (batcher, _task) = Batcher::start(model.clone(), plan);
    let a = texts("alpha", 30, &model);
    let b = texts("beta", 17, &model);
    let rx_a = batcher.submit(a.clone()).unwrap_or_else(|e| panic!("{e}"));
    let rx_b = batcher.submit(b.clone()).unwrap_or_else(|e| panic!("{e}"));
    let (got_a, got_b) = tokio::join!(collect(rx_a, a.len()), collect(rx_b, b.len()));
    for (submitted, got) in [(&a, &got_a), (&b, &got_b)] {
        assert_eq!(got.len(), submitted.len());
        for t in submitted {
            let alone = model
                .embed(std::slice::from_ref(&t.text))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got[&t.index], alone[0], "vector of {:?}", &t.text[..20]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_submitter_does_not_block_the_others() {
    let model = model();
    let (batcher, _task) = Batcher::start(model.clone(), BatchPlan::default());
    let gone = batcher
        .submit(texts("gone", 40, &model))
        .unwrap_or_else(|e| panic!("{e}"));
    drop(gone);
    let kept = texts("kept", 5, &model);
    let rx = batcher
        .submit(kept.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let got = collect(rx, kept.len()).await;
    assert_eq!(got.len(), 5);
    assert!(got.values().all(|v| v.len() == model.dims()));
}
