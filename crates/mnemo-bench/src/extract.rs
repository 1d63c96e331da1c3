//! `mnemo-bench extract DIR`: pdf-rs (the primary extractor, in its worker
//! process, `mnemo extract-worker`) against `pdftotext` on every PDF of a folder.
//!
//! Per file: pages, time of each extractor, word-level F1 of pdf-rs alone
//! against `pdftotext`, and of the text the extractor service would keep
//! (pdf-rs, or `pdftotext` when pdf-rs fails or returns almost nothing).
//! Then medians and means over the files `pdftotext` reads (and over those
//! whose pdf-rs text the extractor keeps: with the fallback, the others
//! score 1.0 by construction), and pages per
//! second of pdf-rs, `pdftotext` and — when installed — `mutool draw -F txt`
//! (Debian `mupdf-tools`), each as one process per file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use mnemo_extractor::pdf_worker::{self, PdfWorker};
use mnemo_extractor::ExtractorConfig;
use mnemo_pdf::quality::word_f1;
use tokio::process::Command;

use crate::services::mnemo_binary;

/// What `bench extract` is asked to do.
#[derive(Args)]
pub struct ExtractBench {
    /// Folder of PDFs.
    pub dir: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct FileResult {
    file: String,
    pages: u32,
    pdf_rs_seconds: f64,
    pdftotext_seconds: f64,
    mutool_seconds: Option<f64>,
    /// None when pdftotext cannot read the file (not scored).
    f1_pdf_rs: Option<f64>,
    f1_final: Option<f64>,
    extractor: &'static str,
    note: String,
}

async fn timed(cmd: &mut Command) -> (Duration, Option<Vec<u8>>) {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.kill_on_drop(true).output()).await;
    let elapsed = started.elapsed();
    match out {
        Ok(Ok(o)) if o.status.success() => (elapsed, Some(o.stdout)),
        _ => (elapsed, None),
    }
}

fn pdfs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pdf")))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no PDF in {}", dir.display());
    }
    Ok(files)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

pub async fn run(bench: ExtractBench) -> Result<ExitCode> {
    let ExtractBench { dir, json } = bench;
    // The worker the extractor service starts, from the `mnemo` binary.
    let worker = PdfWorker {
        program: mnemo_binary()?,
        args: vec!["extract-worker".into()],
    };
    let config = ExtractorConfig::default();
    let has_mutool = std::process::Command::new("mutool")
        .arg("-v")
        .output()
        .is_ok();
    let mut results = Vec::new();
    for path in pdfs(&dir)? {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let ours = pdf_worker::run(&worker, &path, &config, &tx).await;
        let pdf_rs_seconds = started.elapsed().as_secs_f64();
        let (t, reference) = timed(Command::new("pdftotext").arg("-q").arg(&path).arg("-")).await;
        let reference = reference.map(|r| String::from_utf8_lossy(&r).into_owned());
        let mutool_seconds = if has_mutool {
            let (t, _) = timed(
                Command::new("mutool")
                    .args(["draw", "-q", "-F", "txt", "-o", "/dev/null"])
                    .arg(&path),
            )
            .await;
            Some(t.as_secs_f64())
        } else {
            None
        };
        let (pages, alone, usable, note) = match &ours {
            Ok(r) => {
                let why = pdf_worker::unusable(r);
                (
                    r.pages.len() as u32,
                    r.pages.join("\n"),
                    why.is_none(),
                    why.unwrap_or_default(),
                )
            }
            Err(e) => (0, String::new(), false, format!("{e:?}")),
        };
        // As the extractor decides: doubtful pdf-rs text is kept unless
        // pdftotext finds more letters and digits.
        let usable = usable
            || matches!((&ours, &reference), (Ok(r), Some(t))
                if pdf_worker::keep_pdf_rs(&r.pages, &[t]));
        let (f1_pdf_rs, f1_final) = match &reference {
            Some(r) => {
                let a = word_f1(&alone, r);
                (Some(a), Some(if usable { a } else { 1.0 }))
            }
            None => (None, None),
        };
        results.push(FileResult {
            file: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pages,
            pdf_rs_seconds,
            pdftotext_seconds: t.as_secs_f64(),
            mutool_seconds,
            f1_pdf_rs,
            f1_final,
            extractor: if usable { "pdf-rs" } else { "pdftotext" },
            note,
        });
    }
    let scored: Vec<&FileResult> = results.iter().filter(|r| r.f1_pdf_rs.is_some()).collect();
    let alone: Vec<f64> = scored.iter().filter_map(|r| r.f1_pdf_rs).collect();
    let fin: Vec<f64> = scored.iter().filter_map(|r| r.f1_final).collect();
    // The fallback files score 1.0 against pdftotext by construction: this
    // is the figure for the text pdf-rs itself produced and the extractor kept.
    let kept: Vec<f64> = scored
        .iter()
        .filter(|r| r.extractor == "pdf-rs")
        .filter_map(|r| r.f1_pdf_rs)
        .collect();
    // Speed over the files both read (pages as pdf-rs counted them).
    let both: Vec<&&FileResult> = scored.iter().filter(|r| r.pages > 0).collect();
    let pages: u32 = both.iter().map(|r| r.pages).sum();
    let per_s = |secs: f64| {
        if secs > 0.0 {
            f64::from(pages) / secs
        } else {
            0.0
        }
    };
    let rs_speed = per_s(both.iter().map(|r| r.pdf_rs_seconds).sum());
    let pt_speed = per_s(both.iter().map(|r| r.pdftotext_seconds).sum());
    let mu_speed = has_mutool.then(|| per_s(both.iter().filter_map(|r| r.mutool_seconds).sum()));
    if json {
        println!(
            "{}",
            serde_json::json!({
                "files": results,
                "scored_files": scored.len(),
                "f1_pdf_rs": {"median": median(alone.clone()), "mean": mean(&alone)},
                "f1_final": {"median": median(fin.clone()), "mean": mean(&fin)},
                "f1_pdf_rs_kept": {"files": kept.len(), "median": median(kept.clone()), "mean": mean(&kept)},
                "pages": pages,
                "pages_per_second": {"pdf_rs": rs_speed, "pdftotext": pt_speed, "mutool": mu_speed},
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<42} {:>5} {:>8} {:>8} {:>7} {:>7}  {:<9} NOTE",
        "FILE", "PAGES", "PDF-RS", "PDFTOTXT", "F1 RS", "F1 END", "USED"
    );
    for r in &results {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<42} {:>5} {:>7.3}s {:>7.3}s {:>7} {:>7}  {:<9} {}",
            r.file,
            r.pages,
            r.pdf_rs_seconds,
            r.pdftotext_seconds,
            f(r.f1_pdf_rs),
            f(r.f1_final),
            r.extractor,
            r.note
        );
    }
    println!();
    println!(
        "| measure (files pdftotext reads: {}) | value |",
        scored.len()
    );
    println!("|---|---:|");
    println!(
        "| F1 pdf-rs alone vs pdftotext, median / mean | {:.3} / {:.3} |",
        median(alone.clone()),
        mean(&alone)
    );
    println!(
        "| F1 with fallback, median / mean | {:.3} / {:.3} |",
        median(fin.clone()),
        mean(&fin)
    );
    println!(
        "| F1 of the {} files whose pdf-rs text was kept, median / mean | {:.3} / {:.3} |",
        kept.len(),
        median(kept.clone()),
        mean(&kept)
    );
    println!("| pdf-rs pages/s ({pages} pages, worker process per file) | {rs_speed:.0} |");
    println!("| pdftotext pages/s | {pt_speed:.0} |");
    match mu_speed {
        Some(s) => println!("| mutool draw -F txt pages/s | {s:.0} |"),
        None => {
            println!("| mutool draw -F txt pages/s | not installed (apt-get install mupdf-tools) |")
        }
    }
    Ok(ExitCode::SUCCESS)
}
