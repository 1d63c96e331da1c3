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
fn int8_model(threads: usize) -> Arc<Embedder> {
    let prepared = common::prepared();
    init_runtime(&prepared.dylib).unwrap_or_else(|e| panic!("{}", e.report()));
    let dir = std::env::var_os("MNEMO_BACKFILL_MODEL_DIR")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join(".mnemo/models/all-MiniLM-L6-v2-int8"));
    assert!(
        dir.join("model.onnx").is_file(),
        "no int8 model at {}: run deploy/model/prepare.sh",
        dir.display()
    );
    let config = EmbedderConfig::local(dir).with_threads(threads);
    Arc::new(Embedder::new(config).unwrap_or_else(|e| panic!("{}", e.report())))
}

/// Issue 25: a dynamically quantized model computes its activation scales
/// per call, so in shared batches a text's vector depends on its company;
/// one text per call (`--embed-max-texts 1`) makes it the text's alone,
/// whatever the queue mixed and whatever the thread count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_text_per_call_makes_the_int8_model_deterministic() {
    let two_threads = int8_model(2);
    let one_thread = int8_model(1);
    let run = |model: Arc<Embedder>, max_texts: usize| async move {
        let plan = BatchPlan {
            token_budget: 4_096,
            max_texts,
            window: 64,
            cache_entries: 0,
        };
        let (batcher, _task) = Batcher::start(model.clone(), plan);
        let a = texts("alpha", 20, &model);
        let b = texts("beta", 11, &model);
        let rx_a = batcher.submit(a.clone()).unwrap_or_else(|e| panic!("{e}"));
        let rx_b = batcher.submit(b.clone()).unwrap_or_else(|e| panic!("{e}"));
        let (got_a, _) = tokio::join!(collect(rx_a, a.len()), collect(rx_b, b.len()));
        (a, got_a)
    };
    let (a, mixed_one_per_call) = run(two_threads.clone(), 1).await;
    let (_, mixed_in_batches) = run(two_threads.clone(), 8).await;
    let mut differ_in_batches = 0;
    for t in &a {
        let alone = one_thread
            .embed(std::slice::from_ref(&t.text))
            .unwrap_or_else(|e| panic!("{e}"));
        // Another batch composition, another thread count: the same bytes.
        assert_eq!(
            mixed_one_per_call[&t.index],
            alone[0],
            "vector of {:?}",
            &t.text[..20]
        );
        differ_in_batches += usize::from(mixed_in_batches[&t.index] != alone[0]);
    }
    // Why the setting matters: in shared batches the vectors move.
    assert!(
        differ_in_batches > 0,
        "int8 batches now batch-independent: revisit issue 25"
    );
}
