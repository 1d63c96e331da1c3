//! The embedder against the prepared all-MiniLM-L6-v2 export: agreement with
//! the numpy reference vectors, batch invariance, batching, token counts.
//!
//! Needs deploy/model/prepare.sh to have run (see `common`); fails otherwise.

mod common;

use std::sync::OnceLock;
use std::time::Instant;

use mnemo_embedder::{init_runtime, Embedder, EmbedderConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Fixture {
    dim: usize,
    max_length: usize,
    pooling: String,
    normalization: String,
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    text: String,
    num_tokens: usize,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn config() -> EmbedderConfig {
    let prepared = common::prepared();
    // Load the runtime from the located file explicitly, so the tests do not
    // depend on ORT_DYLIB_PATH being exported.
    let info = init_runtime(&prepared.dylib).unwrap_or_else(|e| panic!("{}", e.report()));
    eprintln!("onnxruntime {} from {}", info.version, info.dylib.display());
    EmbedderConfig::local(prepared.model_dir)
}

/// One embedder for the whole binary: it is `Sync`, and loading the model
/// per test would only measure loading.
fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let started = Instant::now();
        let embedder = Embedder::new(config()).unwrap_or_else(|e| panic!("{}", e.report()));
        eprintln!(
            "loaded {} in {:.2?}",
            embedder.model_id(),
            started.elapsed()
        );
        embedder
    })
}

/// 40 texts of 1 to 19 sentences (8 to ~250 word pieces), in an order that
/// puts short texts next to long ones.
fn mixed_texts() -> Vec<String> {
    let mut sentences: Vec<String> = fixture().sentences.into_iter().map(|s| s.text).collect();
    sentences.extend(
        [
            "The mitochondria is the powerhouse of the cell.",
            "Newton's second law states that force equals mass times acceleration.",
            "In 1789 the French Revolution began with the storming of the Bastille.",
            "Recall is stronger when you test yourself than when you reread.",
            "The derivative of sin(x) is cos(x), and of cos(x) is -sin(x).",
            "Photosynthesis happens in chloroplasts; respiration in mitochondria.",
            "Interleaving different topics during practice improves transfer.",
            "Le chat dort sur le canapé depuis ce matin.",
        ]
        .map(String::from),
    );
    (0..40)
        .map(|i| {
            let count = 1 + (i * 7) % 19;
            (0..count)
                .map(|j| sentences[(i + j * 3) % sentences.len()].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn matches_the_numpy_reference() {
    let fixture = fixture();
    let embedder = embedder();
    assert_eq!(fixture.dim, 384);
    assert_eq!(embedder.dims(), fixture.dim);
    assert_eq!(embedder.max_length(), fixture.max_length);
    assert_eq!(
        (fixture.pooling.as_str(), fixture.normalization.as_str()),
        ("mean", "l2")
    );

    let texts: Vec<String> = fixture.sentences.iter().map(|s| s.text.clone()).collect();
    let vectors = embedder
        .embed(&texts)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(vectors.len(), texts.len());
    let mut worst = f64::INFINITY;
    for (sentence, vector) in fixture.sentences.iter().zip(&vectors) {
        assert_eq!(vector.len(), 384);
        let cos = common::cosine(vector, &sentence.embedding);
        worst = worst.min(cos);
        assert!(cos >= 0.9999, "cosine {cos} for {:?}", sentence.text);
        let tokens = embedder.count_tokens(&sentence.text).unwrap_or(0);
        assert_eq!(tokens, sentence.num_tokens, "{:?}", sentence.text);
    }
    eprintln!("min cosine vs numpy reference: 1 - {:.3e}", 1.0 - worst);

    // The paraphrase is nearer than the unrelated sentence.
    let (food, bread, baby) = (&vectors[0], &vectors[1], &vectors[2]);
    assert!(common::cosine(food, bread) > common::cosine(food, baby));
}

#[test]
fn vectors_are_unit_length() {
    let vectors = embedder()
        .embed(&mixed_texts())
        .unwrap_or_else(|e| panic!("{}", e.report()));
    for vector in &vectors {
        let norm: f64 = vector
            .iter()
            .map(|x| (*x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn model_id_names_the_export_and_its_hash() {
    let model = std::fs::read(common::prepared().model_dir.join("model.onnx"))
        .unwrap_or_else(|e| panic!("model.onnx: {e}"));
    let digest = hex::encode(Sha256::digest(&model));
    assert_eq!(
        embedder().model_id(),
        format!("all-MiniLM-L6-v2@{}", &digest[..12])
    );
}

#[test]
fn alone_and_in_a_batch_agree_bit_for_bit() {
    let embedder = embedder();
    let texts = mixed_texts();
    let tokens: Vec<usize> = texts
        .iter()
        .map(|t| embedder.count_tokens(t).unwrap_or(usize::MAX))
        .collect();
    let total_tokens: usize = tokens.iter().sum();
    let longest = tokens.iter().copied().max().unwrap_or(0);
    assert!(
        longest <= 256,
        "a test text is longer than max_length: {longest}"
    );
    assert!(
        tokens.iter().copied().min().unwrap_or(0) < 20,
        "need short texts too"
    );

    let started = Instant::now();
    let batched = embedder
        .embed(&texts)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    let batch_time = started.elapsed();

    let started = Instant::now();
    let alone: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| {
            let mut one = embedder
                .embed(std::slice::from_ref(t))
                .unwrap_or_else(|e| panic!("{}", e.report()));
            one.remove(0)
        })
        .collect();
    let alone_time = started.elapsed();

    let mut min_cos = f64::INFINITY;
    let mut max_abs = 0f32;
    let mut identical = 0;
    for (a, b) in alone.iter().zip(&batched) {
        min_cos = min_cos.min(common::cosine(a, b));
        max_abs = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(max_abs, f32::max);
        identical += usize::from(a == b);
    }
    eprintln!(
        "batch invariance over {} texts ({}..={} tokens): {identical} bit-identical, \
         max |diff| {max_abs:.3e}, min cosine 1 - {:.3e}",
        texts.len(),
        tokens.iter().min().unwrap_or(&0),
        longest,
        1.0 - min_cos
    );
    eprintln!(
        "throughput: one padded batch of {} texts / {total_tokens} tokens in {:.3} s \
         ({:.0} tok/s); one at a time in {:.3} s ({:.0} tok/s)",
        texts.len(),
        batch_time.as_secs_f64(),
        total_tokens as f64 / batch_time.as_secs_f64(),
        alone_time.as_secs_f64(),
        total_tokens as f64 / alone_time.as_secs_f64(),
    );
    assert!(min_cos >= 0.99999, "min cosine {min_cos}");
    assert_eq!(identical, texts.len(), "max |diff| {max_abs}");
}

#[test]
fn batches_are_split_at_batch_size() {
    let texts = mixed_texts();
    let whole = embedder()
        .embed(&texts)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    // A second session with small batches: 40 texts → 5 calls of 8.
    let small = Embedder::new(config().with_batch_size(8).with_threads(1))
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(small.model_id(), embedder().model_id());
    let split = small
        .embed(&texts)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(split.len(), texts.len());
    for (a, b) in whole.iter().zip(&split) {
        let cos = common::cosine(a, b);
        assert!(cos >= 0.99999, "cosine {cos}");
    }
}

#[test]
fn count_tokens_is_not_truncated() {
    let embedder = embedder();
    assert_eq!(embedder.count_tokens("").ok(), Some(2), "[CLS] [SEP]");
    let long = "Spaced repetition helps you remember vocabulary. ".repeat(60);
    let count = embedder.count_tokens(&long).unwrap_or(0);
    assert!(count > 256, "{count}");
    // Over-long texts are truncated at max_length, not refused.
    let vectors = embedder
        .embed(&[long])
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(vectors[0].len(), 384);
}

#[test]
fn empty_input_is_empty_output() {
    let vectors = embedder()
        .embed(&[])
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert!(vectors.is_empty());
}

#[test]
fn concurrent_callers_get_the_same_vectors() {
    let embedder = embedder();
    let text = vec!["What is the capital of France?".to_string()];
    let expected = embedder
        .embed(&text)
        .unwrap_or_else(|e| panic!("{}", e.report()));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| embedder.embed(&text).map_err(|e| e.report())))
            .collect();
        for handle in handles {
            let got = handle
                .join()
                .unwrap_or_else(|_| panic!("embedding thread panicked"));
            assert_eq!(got.as_ref().ok(), Some(&expected));
        }
    });
}
