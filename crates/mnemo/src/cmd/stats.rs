//! `mnemo stats [--all-owners] [--json]`: documents by state, how long
//! each stage takes, the caller's quota and (for admins) the namespace's
//! store sizes, from the API's `StatsService`.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Args;
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Args)]
pub struct StatsArgs {
    /// Every owner's figures (needs an admin token).
    #[arg(long)]
    pub all_owners: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: StatsArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let s = c
        .stats
        .get_stats(pb::GetStatsRequest {
            all_owners: args.all_owners,
        })
        .await
        .map_err(|s| anyhow!(describe(&s)))?
        .into_inner();
    let t = s.totals.unwrap_or_default();
    if args.json {
        let stages: Vec<_> = s
            .stages
            .iter()
            .map(|st| {
                serde_json::json!({
                    "stage": st.stage,
                    "finished": st.finished,
                    "running": st.running,
                    "p50_seconds": st.p50_seconds,
                    "p95_seconds": st.p95_seconds,
                    "failed": st.failed,
                    "error_rate": st.error_rate,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "sequence": s.sequence,
                "totals": {
                    "queued": t.queued, "processing": t.processing, "indexed": t.indexed,
                    "failed": t.failed, "cancelled": t.cancelled, "total": t.total,
                },
                "stages": stages,
                "quota": s.quota.as_ref().map(|q| serde_json::json!({
                    "documents": q.documents, "max_documents": q.max_documents,
                    "bytes": q.bytes, "max_bytes": q.max_bytes,
                })),
                "store": s.store.as_ref().map(|st| serde_json::json!({
                    "event_bytes": st.event_bytes, "event_max_bytes": st.event_max_bytes,
                    "blob_bytes": st.blob_bytes, "blob_max_bytes": st.blob_max_bytes,
                })),
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "documents: {} total — {} queued, {} processing, {} indexed, {} failed, {} cancelled",
        t.total, t.queued, t.processing, t.indexed, t.failed, t.cancelled
    );
    if !s.stages.is_empty() {
        println!();
        println!(
            "{:<11} {:>8} {:>8} {:>10} {:>10} {:>8}",
            "STAGE", "FINISHED", "RUNNING", "P50", "P95", "ERRORS"
        );
        for st in &s.stages {
            println!(
                "{:<11} {:>8} {:>8} {:>9.2}s {:>9.2}s {:>7.1}%",
                st.stage,
                st.finished,
                st.running,
                st.p50_seconds,
                st.p95_seconds,
                st.error_rate * 100.0
            );
        }
    }
    if let Some(q) = &s.quota {
        println!();
        println!(
            "your quota: {} of {} documents, {} of {} uploaded",
            q.documents,
            limit(q.max_documents, |n| n.to_string()),
            mib(q.bytes),
            limit(q.max_bytes, mib)
        );
    }
    if let Some(st) = &s.store {
        println!(
            "namespace store: events {} of {}, uploads {} of {}",
            mib(st.event_bytes),
            limit(st.event_max_bytes, mib),
            mib(st.blob_bytes),
            limit(st.blob_max_bytes, mib)
        );
    }
    println!("(read models at stream sequence {})", s.sequence);
    Ok(ExitCode::SUCCESS)
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// A limit, or "no limit" for 0.
fn limit(max: u64, show: impl Fn(u64) -> String) -> String {
    if max == 0 {
        "no limit".to_owned()
    } else {
        show(max)
    }
}
