//! `mnemo-bench embed CORPUS`: the embedding model's tokens per CPU-second,
//! measured like `deploy/model/prepare.sh --bench` measures bare
//! onnxruntime in Python, so the two compare on the same model and texts.
//!
//! - *As Python*: the first N documents (title + " " + text), batches of 32
//!   in file order, each padded to its longest text, one intra-op thread.
//! - *As the service*: the same texts sorted by length and cut within the
//!   service's padded-token budget ([`BatchPlan`]), so less padding.
//! - *One text per call*: no padding at all; how a model that quantizes
//!   per call (the int8 one) always runs, whatever it is handed
//!   (decision 020), unless `--shared-quantized-calls`.
//!
//! Tokens are the real (unpadded) word pieces after truncation to the
//! model's max length; CPU time is this process's user + system time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use mnemo_embedder::batcher::{plan_batches, BatchPlan};
use mnemo_embedder::{Embedder, EmbedderConfig};

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ
}

fn read_corpus(path: &Path, docs: usize) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().take(docs) {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        out.push(
            format!("{} {}", field("title"), field("text"))
                .trim()
                .to_owned(),
        );
    }
    if out.is_empty() {
        bail!("{} has no documents", path.display());
    }
    Ok(out)
}

#[derive(serde::Serialize)]
struct Pass {
    mode: &'static str,
    batches: usize,
    tokens: usize,
    padded_tokens: usize,
    cpu_seconds: f64,
    wall_seconds: f64,
    tokens_per_cpu_second: f64,
}

/// Embeds `batches` (index lists into `texts`) `passes` times; keeps the pass
/// with the least CPU time.
fn measure(
    model: &Embedder,
    mode: &'static str,
    texts: &[String],
    lengths: &[usize],
    batches: &[Vec<usize>],
    passes: usize,
) -> Result<Pass> {
    let batch_texts: Vec<Vec<String>> = batches
        .iter()
        .map(|b| b.iter().map(|&i| texts[i].clone()).collect())
        .collect();
    let tokens = batches.iter().flatten().map(|&i| lengths[i]).sum();
    // The model cuts what it is handed into calls of its batch size (1
    // for a per-call quantizer): padding is per call.
    let calls: Vec<&[usize]> = batches
        .iter()
        .flat_map(|b| b.chunks(model.texts_per_call().max(1)))
        .collect();
    let padded_tokens = calls
        .iter()
        .map(|c| c.len() * c.iter().map(|&i| lengths[i]).max().unwrap_or(0))
        .sum();
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..passes.max(1) {
        let (c0, w0) = (cpu_seconds(), Instant::now());
        for b in &batch_texts {
            model.embed(b).map_err(|e| anyhow::anyhow!(e.report()))?;
        }
        let (cpu, wall) = (cpu_seconds() - c0, w0.elapsed().as_secs_f64());
        if best.is_none_or(|(c, _)| cpu < c) {
            best = Some((cpu, wall));
        }
    }
    let (cpu, wall) = best.unwrap_or((0.0, 0.0));
    Ok(Pass {
        mode,
        batches: calls.len(),
        tokens,
        padded_tokens,
        cpu_seconds: cpu,
        wall_seconds: wall,
        tokens_per_cpu_second: if cpu > 0.0 { tokens as f64 / cpu } else { 0.0 },
    })
}

/// What `bench embed` is asked to do.
#[derive(Args)]
pub struct EmbedBench {
    /// A jsonl corpus with `title`/`text` fields (e.g. SciFact's corpus.jsonl).
    pub corpus: PathBuf,
    /// The prepared embedding model (deploy/model/prepare.sh).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Documents read from the start of the corpus.
    #[arg(long, default_value_t = 200)]
    pub docs: usize,
    /// onnxruntime intra-op threads (1 matches the Python measurement).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed passes; the best is kept (as the Python bench does).
    #[arg(long, default_value_t = 2)]
    pub passes: usize,
    /// onnxruntime's CPU memory arena (the service's `--embed-arena`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub arena: bool,
    /// Let a per-call quantized (int8) model take whole batches, to
    /// measure what one text per call saves or costs (its vectors then
    /// depend on their batch: never so in the service).
    #[arg(long)]
    pub shared_quantized_calls: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(bench: EmbedBench) -> Result<ExitCode> {
    let EmbedBench {
        corpus,
        model_dir,
        docs,
        threads,
        passes,
        arena,
        shared_quantized_calls,
        json,
    } = bench;
    let texts = read_corpus(&corpus, docs)?;
    let config = EmbedderConfig::local(model_dir)
        .with_threads(threads.max(1))
        .with_arena(arena)
        .with_shared_quantized_calls(shared_quantized_calls);
    let model = tokio::task::spawn_blocking(move || Embedder::new(config))
        .await?
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    let max = model.max_length();
    let lengths: Vec<usize> = texts
        .iter()
        .map(|t| model.count_tokens(t).map(|n| n.min(max)))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    // Warm-up, as the Python bench does.
    model
        .embed(&texts[..texts.len().min(32)])
        .map_err(|e| anyhow::anyhow!(e.report()))?;

    let in_order: Vec<Vec<usize>> = (0..texts.len())
        .collect::<Vec<_>>()
        .chunks(32)
        .map(<[usize]>::to_vec)
        .collect();
    let mut sorted: Vec<usize> = (0..texts.len()).collect();
    sorted.sort_by_key(|&i| lengths[i]);
    let sorted_lengths: Vec<usize> = sorted.iter().map(|&i| lengths[i]).collect();
    let one_each: Vec<Vec<usize>> = (0..texts.len()).map(|i| vec![i]).collect();
    let plan = BatchPlan::default();
    let service: Vec<Vec<usize>> = plan_batches(&sorted_lengths, plan.token_budget, plan.max_texts)
        .into_iter()
        .map(|r| sorted[r].to_vec())
        .collect();

    let results = [
        measure(
            &model,
            "as Python: file order, batches of 32",
            &texts,
            &lengths,
            &in_order,
            passes,
        )?,
        measure(
            &model,
            "as the service: sorted, 4,096 padded tokens",
            &texts,
            &lengths,
            &service,
            passes,
        )?,
        measure(
            &model,
            "one text per call",
            &texts,
            &lengths,
            &one_each,
            passes,
        )?,
    ];
    if json {
        println!(
            "{}",
            serde_json::json!({"docs": texts.len(), "threads": threads, "arena": arena, "model": model.model_id(), "passes": results})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "embedding {} documents of {} ({} thread(s), model {}, at most {} text(s) per call, {} session(s))",
        texts.len(),
        corpus.display(),
        threads,
        model.model_id(),
        model.texts_per_call(),
        model.sessions()
    );
    println!();
    println!("| batching | model calls | tokens | padded | CPU s | wall s | tok/CPU-s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} | **{:.0}** |",
            r.mode,
            r.batches,
            r.tokens,
            r.padded_tokens,
            r.cpu_seconds,
            r.wall_seconds,
            r.tokens_per_cpu_second
        );
    }
    let peak = crate::services::peak_rss_of(std::process::id()).unwrap_or(0);
    println!();
    println!(
        "onnxruntime arena {}; this process's peak RSS {:.0} MiB",
        if arena { "on" } else { "off" },
        peak as f64 / (1024.0 * 1024.0)
    );
    Ok(ExitCode::SUCCESS)
}
