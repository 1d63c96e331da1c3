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

/// The int8 copy (`deploy/model/quantize_int8.py`; dynamic quantization):
/// `MNEMO_BACKFILL_MODEL_DIR`, else where prepare.sh puts it.
fn int8_model(threads: usize, shared_calls: bool) -> Arc<Embedder> {
    let prepared = common::prepared();
    init_runtime(&prepared.dylib).unwrap_or_else(|e| panic!("{}", e.report()));
    let config = EmbedderConfig::local(prepared.int8_dir)
        .with_threads(threads)
        .with_shared_quantized_calls(shared_calls);
    Arc::new(Embedder::new(config).unwrap_or_else(|e| panic!("{}", e.report())))
}

/// Issue 25: a dynamically quantized model computes its activation scales
/// per call, so in shared calls a text's vector depends on its company.
/// The embedder finds that in the graph and gives such a model one text
/// per call, so a text gets the same bytes whatever the queue mixed it
/// with, whatever the batch plan and whatever the thread count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_int8_model_is_deterministic_whatever_the_batch_and_threads() {
    let models = [
        int8_model(1, false),
        int8_model(2, false),
        int8_model(3, false),
    ];
    for (m, threads) in models.iter().zip([1, 2, 3]) {
        assert_eq!(m.texts_per_call(), 1, "one text per model call");
        assert_eq!(m.sessions(), threads, "a one-thread session per thread");
    }
    // Through the batching queue with the service's default plan (up to
    // 64 texts per call asked for), two documents mixed in one window.
    let run = |model: Arc<Embedder>, plan: BatchPlan| async move {
        let (batcher, _task) = Batcher::start(model.clone(), plan);
        let a = texts("alpha", 20, &model);
        let b = texts("beta", 11, &model);
        let rx_a = batcher.submit(a.clone()).unwrap_or_else(|e| panic!("{e}"));
        let rx_b = batcher.submit(b.clone()).unwrap_or_else(|e| panic!("{e}"));
        let (got_a, _) = tokio::join!(collect(rx_a, a.len()), collect(rx_b, b.len()));
        (a, b, got_a)
    };
    let (a, b, queued) = run(models[1].clone(), BatchPlan::default()).await;
    // One direct call with every text of both documents, other order.
    let mut all: Vec<String> = b.iter().map(|t| t.text.clone()).collect();
    all.extend(a.iter().rev().map(|t| t.text.clone()));
    let direct = models[2].embed(&all).unwrap_or_else(|e| panic!("{e}"));
    for (i, t) in a.iter().enumerate() {
        let alone = models[0]
            .embed(std::slice::from_ref(&t.text))
            .unwrap_or_else(|e| panic!("{e}"));
        let what = &t.text[..20];
        assert_eq!(queued[&t.index], alone[0], "queued vs alone: {what:?}");
        assert_eq!(
            direct[all.len() - 1 - i],
            alone[0],
            "direct vs alone: {what:?}"
        );
    }
    // Why: allowed to share calls, the same model moves the vectors.
    let shared = int8_model(2, true);
    assert!(shared.texts_per_call() > 1);
    let plan = BatchPlan {
        max_texts: 8,
        ..BatchPlan::default()
    };
    let (_, _, in_batches) = run(shared, plan).await;
    let moved = a
        .iter()
        .filter(|t| in_batches[&t.index] != queued[&t.index])
        .count();
    assert!(
        moved > 0,
        "int8 batches now batch-independent: revisit issue 25"
    );
}

/// The fp32 export has no per-call quantizer: it keeps its batches.
#[test]
fn the_fp32_model_keeps_its_batches() {
    let prepared = common::prepared();
    init_runtime(&prepared.dylib).unwrap_or_else(|e| panic!("{}", e.report()));
    let config = EmbedderConfig::local(&prepared.model_dir).with_batch_size(32);
    let model = Embedder::new(config).unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!((model.texts_per_call(), model.sessions()), (32, 1));
}
