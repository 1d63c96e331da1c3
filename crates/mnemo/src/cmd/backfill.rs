//! `mnemo backfill embed --model-dir DIR`: the embedding backfill
//! (`mnemo_embedder::backfill`) in this process, with a progress line (or
//! JSON lines) until it has caught up, Ctrl-C, or `--limit`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mnemo_bus::Namespace;
use mnemo_embedder::backfill::{BackfillOptions, BackfillProgress};

use crate::cli::Backend;

#[derive(Args)]
pub struct BackfillArgs {
    #[command(subcommand)]
    pub command: BackfillCommand,
}

#[derive(Subcommand)]
pub enum BackfillCommand {
    /// Re-embed every indexed document's chunks with another model, from
    /// the event log (sequence 1), beside the current vectors. Ctrl-C stops;
    /// running it again resumes where it stopped.
    Embed {
        /// The other model, prepared (deploy/model/prepare.sh makes an int8 one).
        #[arg(long = "model-dir", env = "MNEMO_BACKFILL_MODEL_DIR")]
        model_dir: PathBuf,
        #[command(flatten)]
        backend: Backend,
        /// Documents re-embedded at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Keep going after catching up: backfill documents as they are indexed.
        #[arg(long)]
        follow: bool,
        /// Pause after this many documents (run again to resume).
        #[arg(long)]
        limit: Option<u64>,
        /// Start over from sequence 1 instead of resuming (e.g. after a
        /// dead-lettered document's cause is fixed); covered documents are skipped.
        #[arg(long)]
        restart: bool,
        /// Onnxruntime threads for the model (default: all cores).
        #[arg(long, env = "MNEMO_EMBED_THREADS")]
        threads: Option<usize>,
        /// One JSON progress object per line.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: BackfillArgs) -> Result<ExitCode> {
    let BackfillCommand::Embed {
        model_dir,
        backend,
        concurrency,
        follow,
        limit,
        restart,
        threads,
        json,
    } = args.command;
    let ns = Namespace::new(&backend.namespace)?;
    let bus = backend.operator_bus(ns).await?;
    let mut config = mnemo_embedder::EmbedderConfig::local(model_dir);
    if let Some(t) = threads {
        config = config.with_threads(t);
    }
    let model = tokio::task::spawn_blocking(move || mnemo_embedder::Embedder::new(config))
        .await?
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    let model = Arc::new(model);
    if !json {
        eprintln!(
            "backfilling {} (Ctrl-C pauses; run again to resume)",
            model.model_id()
        );
    }
    let options = BackfillOptions {
        concurrency,
        follow,
        limit,
        restart,
    };
    let show = |p: &BackfillProgress| {
        if json {
            println!("{}", progress_json(p));
        } else {
            print!("\r{}   ", progress_line(p));
            let _ = std::io::stdout().flush();
        }
    };
    let last =
        mnemo_embedder::backfill::run(&bus, model, options, show, crate::serve::stop_signal())
            .await
            .context("backfill")?;
    if !json {
        println!();
        if last.finished {
            println!(
                "caught up: {} documents and {} chunks re-embedded by this run ({} left alone); `mnemo model show` tells the coverage, `mnemo model use {}` switches search",
                last.documents, last.chunks, last.skipped, last.model
            );
        } else {
            println!(
                "paused at event {} of {}: run the same command again to resume",
                last.done, last.total
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_json(p: &BackfillProgress) -> serde_json::Value {
    serde_json::json!({
        "model": p.model, "done": p.done, "total": p.total, "resumed_at": p.resumed_at,
        "documents": p.documents, "chunks": p.chunks, "skipped": p.skipped,
        "events_per_second": p.rate, "eta_seconds": p.eta.map(|d| d.as_secs_f64()),
        "finished": p.finished,
    })
}

fn progress_line(p: &BackfillProgress) -> String {
    let pct = if p.total == 0 {
        100.0
    } else {
        p.done as f64 * 100.0 / p.total as f64
    };
    let eta = match p.eta {
        Some(d) if !p.finished => format!("ETA {}s", d.as_secs()),
        _ => String::new(),
    };
    format!(
        "{pct:>5.1}%  event {} of {}  {} documents, {} chunks  {:.0} events/s  {eta}",
        p.done, p.total, p.documents, p.chunks, p.rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_says_how_far_and_how_fast() {
        let p = BackfillProgress {
            model: "m".into(),
            done: 50,
            total: 200,
            documents: 3,
            chunks: 40,
            rate: 25.0,
            eta: Some(std::time::Duration::from_secs(6)),
            ..Default::default()
        };
        let line = progress_line(&p);
        assert!(line.contains(" 25.0%"), "{line}");
        assert!(line.contains("event 50 of 200"), "{line}");
        assert!(line.contains("ETA 6s"), "{line}");
        assert_eq!(progress_json(&p)["eta_seconds"], 6.0);
    }
}
