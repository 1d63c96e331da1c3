//! `mnemo study stats [--json]`: retention, reviews per day and streak.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Args)]
pub struct StudyArgs {
    #[command(subcommand)]
    pub command: StudyCommand,
}

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Retention, reviews per day and streak.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

pub fn stats_json(s: &pb::StudyStatsResponse) -> serde_json::Value {
    serde_json::json!({
        "reviews": s.reviews,
        "review_state_reviews": s.review_state_reviews,
        "review_state_recalled": s.review_state_recalled,
        "retention": s.retention,
        "reviews_per_day": s.reviews_per_day,
        "days_studied": s.days_studied,
        "current_streak_days": s.current_streak_days,
        "reviews_today": s.reviews_today,
        "sequence": s.sequence,
    })
}

pub async fn run(global: &Global, args: StudyArgs) -> Result<ExitCode> {
    let StudyCommand::Stats { json } = args.command;
    let mut c = connect(global).await?;
    let s = c
        .learning
        .study_stats(pb::StudyStatsRequest::default())
        .await
        .map_err(|s| anyhow!(describe(&s)))?
        .into_inner();
    if json {
        println!("{}", stats_json(&s));
        return Ok(ExitCode::SUCCESS);
    }
    let retention = s
        .retention
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "n/a (no reviews of cards in review yet)".into());
    println!(
        "reviews:          {} ({} today)",
        s.reviews, s.reviews_today
    );
    println!(
        "retention:        {retention} ({} of {} reviews of cards in review)",
        s.review_state_recalled, s.review_state_reviews
    );
    println!("reviews per day:  {:.2}", s.reviews_per_day);
    println!(
        "streak:           {} ({} studied)",
        super::count(s.current_streak_days, "day"),
        super::count(s.days_studied, "day")
    );
    println!("(read model at stream sequence {})", s.sequence);
    Ok(ExitCode::SUCCESS)
}
