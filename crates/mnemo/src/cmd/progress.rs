//! `mnemo progress DOC_ID | --batch ID | --all [--from SEQ] [--follow] [--json]`:
//! one line per progress update, resumed across API restarts.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::watch_request::Scope;

use crate::cli::Global;
use crate::client::connect;
use crate::cmd::watch::{request, resuming};
use crate::cmd::{count, failure_name, progress_json, stage_name};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["document_id", "batch", "all"])))]
pub struct ProgressArgs {
    /// The document to follow.
    pub document_id: Option<String>,
    /// Every document of this upload batch (`mnemo upload` prints its id).
    #[arg(long)]
    pub batch: Option<String>,
    /// All of your documents.
    #[arg(long)]
    pub all: bool,
    /// Resume after this stream sequence.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Keep following after every document is in a terminal stage.
    #[arg(long)]
    pub follow: bool,
    #[arg(long)]
    pub json: bool,
    /// Reconnect attempts in a row (with backoff) when the API goes away.
    #[arg(long, env = "MNEMO_WATCH_RECONNECTS", default_value_t = crate::cmd::watch::DEFAULT_RECONNECTS)]
    pub reconnects: u32,
}

pub async fn run(global: &Global, args: ProgressArgs) -> Result<ExitCode> {
    let c = connect(global).await?;
    let scope = match (args.document_id, args.batch) {
        (Some(id), _) => Scope::DocumentId(id),
        (None, Some(batch)) => Scope::BatchId(batch),
        (None, None) => Scope::All(pb::AllDocuments {}),
    };
    let mut watch = resuming(
        c.progress,
        request(scope, args.from, args.follow),
        args.reconnects,
    );
    // Each document's latest stage: the exit code says whether any failed.
    let mut stages = HashMap::new();
    let mut summary = None;
    while let Some(u) = watch.next().await? {
        stages.insert(u.document_id.clone(), u.stage);
        if u.summary.is_some() {
            summary = u.summary;
        }
        if args.json {
            println!("{}", progress_json(&u));
            continue;
        }
        let whole = u
            .summary
            .as_ref()
            .map(|s| {
                format!(
                    "  [{}/{} done, {} failed, {} cancelled, {:.1}%]",
                    s.done,
                    s.total,
                    s.failed,
                    s.cancelled,
                    s.fraction * 100.0
                )
            })
            .unwrap_or_default();
        let name = if u.summary.is_some() {
            format!("{:<24.24} ", u.filename)
        } else {
            String::new()
        };
        let code = failure_name(u.failure_code)
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        println!(
            "#{:<8} {name}{:>5.1}%  {:<10}  {}{code}{whole}",
            u.sequence,
            u.fraction * 100.0,
            stage_name(u.stage),
            u.message
        );
    }
    // A batch's or all documents' outcome in one line, once the stream ends
    // (a followed stream ends only when the API or the user stops it).
    if let (false, Some(s)) = (args.json, summary) {
        let rest = s.total.saturating_sub(s.done + s.failed + s.cancelled);
        let mut parts = vec![
            format!("{} indexed", s.done),
            format!("{} failed", s.failed),
        ];
        if s.cancelled > 0 {
            parts.push(format!("{} cancelled", s.cancelled));
        }
        if rest > 0 {
            parts.push(format!("{rest} in progress"));
        }
        println!("{}: {}", count(s.total, "document"), parts.join(", "));
    }
    Ok(if stages.values().any(|s| *s == pb::Stage::Failed as i32) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
