//! `mnemo stats [--all-owners] [--json]`: documents by state and how long
//! each stage takes, from the API's `StatsService`.

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
    println!("(read models at stream sequence {})", s.sequence);
    Ok(ExitCode::SUCCESS)
}
