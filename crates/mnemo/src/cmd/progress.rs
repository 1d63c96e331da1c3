//! `mnemo progress DOC_ID | --batch ID | --all [--from SEQ] [--follow] [--json]`:
//! one line per progress update, resumed across API restarts.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::watch_request::Scope;

use crate::cli::{Global, ProgressArgs};
use crate::client::connect;
use crate::cmd::watch::{request, resuming};
use crate::cmd::{progress_json, stage_name};

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
    while let Some(u) = watch.next().await? {
        stages.insert(u.document_id.clone(), u.stage);
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
        println!(
            "#{:<8} {name}{:>5.1}%  {:<10}  {}{whole}",
            u.sequence,
            u.fraction * 100.0,
            stage_name(u.stage),
            u.message
        );
    }
    Ok(if stages.values().any(|s| *s == pb::Stage::Failed as i32) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
