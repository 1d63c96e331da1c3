//! `mnemo progress DOC_ID`: one line per progress update.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use mnemo_proto::v1 as pb;

use crate::cli::{Global, ProgressArgs};
use crate::client::{connect, describe};
use crate::cmd::{progress_json, stage_name};

pub async fn run(global: &Global, args: ProgressArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let mut stream = c
        .progress
        .watch(pb::WatchRequest {
            document_id: args.document_id,
            from_sequence: args.from,
            follow: args.follow,
        })
        .await
        .map_err(|s| anyhow!(describe(&s)))?
        .into_inner();
    let mut last_stage = 0;
    while let Some(u) = stream.message().await.map_err(|s| anyhow!(describe(&s)))? {
        last_stage = u.stage;
        if args.json {
            println!("{}", progress_json(&u));
        } else {
            println!(
                "#{:<8} {:>5.1}%  {:<10}  {}",
                u.sequence,
                u.fraction * 100.0,
                stage_name(u.stage),
                u.message
            );
        }
    }
    Ok(if last_stage == pb::Stage::Failed as i32 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
