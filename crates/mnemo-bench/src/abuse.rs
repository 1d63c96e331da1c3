//! `mnemo bench abuse`: pathological inputs through one `mnemo serve all`,
//! and how much memory each costs it (issue 18: memory bounded by
//! configuration, not by input).
//!
//! The cases: text with no sentence or paragraph break, one endless line
//! (no whitespace at all), a PDF with one enormous page, and many tiny
//! files. For each, the server's peak RSS is reset (`/proc/PID/clear_refs`),
//! the inputs are uploaded, every document is waited for until it ends
//! (indexed, or failed with its reason), and the peak is read back
//! (`VmHWM`). Targets: peak under 1.5 GiB, and at most 256 MiB over the
//! idle server's peak, for every case.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use mnemo::cli::{Backend, Global};
use mnemo::client::Clients;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;

use crate::services::{connect_when_ready, peak_rss_of, Scratch, Served, ALL_IN_ONE, EACH_ALONE};

#[derive(Args)]
pub struct AbuseBench {
    #[command(flatten)]
    pub backend: Backend,
    /// The embedding model directory (the server's --model-dir).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: std::path::PathBuf,
    /// Size of each big input (no breaks, one line, one page), in MiB.
    #[arg(long, default_value_t = 40)]
    pub mib: usize,
    /// Files in the many-tiny-files case.
    #[arg(long, default_value_t = 10_000)]
    pub tiny_files: usize,
    /// Uploads in flight at once in the many-files case.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
    /// Each service in a process of its own (peak RSS per service) instead
    /// of one `serve all`.
    #[arg(long)]
    pub per_service: bool,
    /// Longest wait for one case's documents to end.
    #[arg(long, default_value = "20min", value_parser = humantime::parse_duration)]
    pub case_timeout: Duration,
}

const OWNER: &str = "abuser";
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// One case's result.
struct CaseResult {
    name: String,
    documents: usize,
    indexed: u64,
    failed: u64,
    reasons: Vec<String>,
    /// Peak RSS of each process during the case.
    peaks: Vec<u64>,
    seconds: f64,
}

pub async fn run(global: &Global, bench: AbuseBench) -> Result<ExitCode> {
    let scratch = Scratch::new(&bench.backend, "abuse").await?;
    let ns = scratch.ns.clone();
    let which: &[&'static str] = if bench.per_service {
        &EACH_ALONE
    } else {
        &ALL_IN_ONE
    };
    let mut served = Served::start(
        global,
        &bench.backend,
        &ns,
        &bench.model_dir,
        OWNER,
        which,
        &[],
    )
    .await?;
    let (port, token) = (served.port, served.token.clone());
    let mut services = std::mem::take(&mut served.services);
    let names: Vec<&str> = services.iter().map(|s| s.name).collect();
    let result = async {
        let clients = connect_when_ready(global, port, token, &mut services).await?;
        let pids = services
            .iter()
            .map(|s| s.child.id().context("the server runs"))
            .collect::<Result<Vec<u32>>>()?;
        let idle = pids
            .iter()
            .map(|&pid| peak_rss_of(pid).context("reading a server's peak RSS"))
            .collect::<Result<Vec<u64>>>()?;
        let mut results = Vec::new();
        for case in cases(&bench) {
            for &pid in &pids {
                reset_peak(pid)?;
            }
            eprintln!("case: {} ({} documents)", case.name, case.files.len());
            results.push(run_case(&clients, &pids, case, &bench).await?);
        }
        anyhow::Ok((idle, results))
    }
    .await;
    for s in services {
        s.stop().await;
    }
    scratch.delete().await?;
    let (idle, results) = result?;
    let mib = |b: u64| format!("{:.0} MiB", b as f64 / MIB);
    let idle_shown: Vec<String> = names
        .iter()
        .zip(&idle)
        .map(|(n, &b)| format!("{n} {}", mib(b)))
        .collect();
    println!(
        "idle peak RSS after start (model loaded): {}",
        idle_shown.join(", ")
    );
    println!();
    let per: Vec<String> = names
        .iter()
        .map(|n| format!("{n} peak (over idle)"))
        .collect();
    println!(
        "| case | documents | indexed | failed (reason) | {} | time |",
        per.join(" | ")
    );
    println!("|---|---:|---:|---|{}---:|", "---:|".repeat(names.len()));
    let mut ok = true;
    for r in &results {
        // The targets are for one `serve all`; per service, the sum.
        let total: u64 = r.peaks.iter().sum();
        let over = total.saturating_sub(idle.iter().sum());
        ok &= (total as f64) < 1.5 * GIB && over as f64 <= 256.0 * MIB;
        ok &= r.indexed + r.failed == r.documents as u64;
        let peaks: Vec<String> = r
            .peaks
            .iter()
            .zip(&idle)
            .map(|(&p, &i)| format!("{} ({})", mib(p), mib(p.saturating_sub(i))))
            .collect();
        println!(
            "| {} | {} | {} | {} {} | {} | {:.0} s |",
            r.name,
            r.documents,
            r.indexed,
            r.failed,
            if r.reasons.is_empty() {
                String::new()
            } else {
                format!("({})", r.reasons.join("; "))
            },
            peaks.join(" | "),
            r.seconds
        );
    }
    Ok(crate::timing::verdict(
        "targets (peak < 1.5 GiB, ≤ 256 MiB over idle, every document ended)",
        ok,
    ))
}

/// Resets the process's peak RSS to its current RSS (Linux: writing 5 to
/// `clear_refs`), so the next `VmHWM` is this case's peak.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .context("resetting the peak RSS (/proc/PID/clear_refs)")
}

struct Case {
    name: String,
    files: Vec<(String, Vec<u8>)>,
}

fn cases(bench: &AbuseBench) -> Vec<Case> {
    let size = bench.mib * 1024 * 1024;
    let repeat_to = |unit: &str| {
        let mut text = unit.repeat(size / unit.len() + 1);
        text.truncate(size);
        text.into_bytes()
    };
    vec![
        Case {
            name: format!("{} MiB of text, no sentence or paragraph break", bench.mib),
            files: vec![(
                "no_breaks.txt".into(),
                repeat_to("lorem ipsum dolor sit amet\n"),
            )],
        },
        Case {
            name: format!("one {} MiB line, no whitespace", bench.mib),
            files: vec![("one_line.txt".into(), repeat_to("x"))],
        },
        Case {
            name: format!("a PDF with one {} MiB page", bench.mib),
            files: vec![("one_page.pdf".into(), one_page_pdf(size))],
        },
        Case {
            name: format!("{} tiny files", bench.tiny_files),
            files: (0..bench.tiny_files)
                .map(|i| {
                    (
                        format!("tiny_{i:05}.txt"),
                        format!("Note {i}. The mitochondrion makes ATP; note {i} says so.\n")
                            .into_bytes(),
                    )
                })
                .collect(),
        },
    ]
}

/// A valid PDF of one page whose content stream shows text lines until it
/// is `size` bytes long.
fn one_page_pdf(size: usize) -> Vec<u8> {
    let line = b"(lorem ipsum dolor sit amet consectetur adipiscing) Tj T*\n";
    let mut content = b"BT /F1 10 Tf 12 TL 40 760 Td\n".to_vec();
    while content.len() + line.len() < size {
        content.extend_from_slice(line);
    }
    content.extend_from_slice(b"ET\n");
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        [
            format!("<< /Length {} >>\nstream\n", content.len()).into_bytes(),
            content,
            b"\nendstream".to_vec(),
        ]
        .concat(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

async fn run_case(
    clients: &Clients,
    pids: &[u32],
    case: Case,
    bench: &AbuseBench,
) -> Result<CaseResult> {
    let started = Instant::now();
    let batch_id = uuid::Uuid::now_v7().to_string();
    let documents = case.files.len();
    let uploaded: Vec<Result<String>> = futures::stream::iter(case.files)
        .map(|(filename, bytes)| {
            let mut client = clients.documents.clone();
            let batch_id = batch_id.clone();
            async move {
                let mut requests = vec![pb::UploadRequest {
                    part: Some(Part::Metadata(pb::UploadMetadata {
                        filename: filename.clone(),
                        batch_id,
                        // Each upload is a new document, whatever its bytes.
                        new_document: true,
                        ..Default::default()
                    })),
                }];
                requests.extend(bytes.chunks(256 * 1024).map(|c| pb::UploadRequest {
                    part: Some(Part::Chunk(c.to_vec())),
                }));
                client
                    .upload(futures::stream::iter(requests))
                    .await
                    .map(|r| r.into_inner().document_id)
                    .map_err(|s| anyhow::anyhow!("uploading {filename}: {}", s.message()))
            }
        })
        .buffer_unordered(bench.parallel.max(1))
        .collect()
        .await;
    let ids = uploaded.into_iter().collect::<Result<Vec<String>>>()?;
    // Every document of the batch ends: one watch of the batch, followed
    // until as many terminal updates as documents have come.
    let deadline = Instant::now() + bench.case_timeout;
    let (mut indexed, mut failed, mut reasons) = (0u64, 0u64, Vec::<String>::new());
    let mut ended = std::collections::HashSet::new();
    let mut progress = clients.progress.clone();
    let mut from = 0;
    while ended.len() < ids.len() {
        if Instant::now() > deadline {
            bail!(
                "{}: {} of {} documents ended within {:?}",
                case.name,
                ended.len(),
                ids.len(),
                bench.case_timeout
            );
        }
        let request = pb::WatchRequest {
            scope: Some(pb::watch_request::Scope::BatchId(batch_id.clone())),
            from_sequence: from,
            follow: true,
        };
        let mut stream = match progress.watch(request).await {
            Ok(s) => s.into_inner(),
            Err(status) => {
                eprintln!("watch: {} (again)", status.message());
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Ok(Some(update)) = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .unwrap_or(Ok(None))
        {
            from = update.sequence;
            let terminal = update.stage == pb::Stage::Indexed as i32
                || update.stage == pb::Stage::Failed as i32
                || update.stage == pb::Stage::Cancelled as i32;
            if terminal && ended.insert(update.document_id.clone()) {
                if update.stage == pb::Stage::Indexed as i32 {
                    indexed += 1;
                } else {
                    failed += 1;
                    if !reasons.contains(&update.message) && reasons.len() < 3 {
                        reasons.push(update.message.clone());
                    }
                }
            }
            if ended.len() >= ids.len() {
                break;
            }
        }
    }
    let peaks = pids
        .iter()
        .map(|&pid| peak_rss_of(pid).context("reading a server's peak RSS"))
        .collect::<Result<Vec<u64>>>()?;
    Ok(CaseResult {
        name: case.name,
        documents,
        indexed,
        failed,
        reasons,
        peaks,
        seconds: started.elapsed().as_secs_f64(),
    })
}
