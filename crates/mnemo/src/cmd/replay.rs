//! `mnemo replay learner OWNER --as-of T [--verify] [--json]`: a learner's
//! cards (with their schedules) and study stats rebuilt from their events
//! alone, streamed by `AuditService`; the fold is the domain's
//! (`mnemo_domain::learn::learner`). `--verify` rebuilds at now and
//! compares with the read model (ListCards, StudyStats at the same
//! instant, after the read model reached the replay's last sequence);
//! any difference exits 1.

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use mnemo_api::learning::convert;
use mnemo_domain::learn::learner::{card_differences, stats_differences};
use mnemo_domain::learn::LearnerState;
use mnemo_proto::v1 as pb;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Args)]
pub struct ReplayArgs {
    #[command(subcommand)]
    pub command: ReplayCommand,
}

#[derive(Subcommand)]
pub enum ReplayCommand {
    /// A learner's cards (with schedules) and stats as of an instant, from
    /// the events alone (AuditService). Only the learner or an admin token.
    Learner {
        owner: String,
        /// RFC 3339 instant, or `now`.
        #[arg(long, default_value = "now")]
        as_of: String,
        /// Compare the rebuild at now with the read model; exit 1 on any difference.
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
}

fn micros(t: OffsetDateTime) -> OffsetDateTime {
    mnemo_api::learning::input::to_micros(t)
}

fn card_json(c: &mnemo_domain::learn::CardView) -> serde_json::Value {
    crate::cmd::cards::card_json(&convert::card(c))
}

pub async fn run(global: &Global, args: ReplayArgs) -> Result<ExitCode> {
    let ReplayCommand::Learner {
        owner,
        as_of,
        verify,
        json,
    } = args.command;
    let now = micros(OffsetDateTime::now_utc());
    let as_of = if as_of == "now" {
        now
    } else {
        OffsetDateTime::parse(&as_of, &Rfc3339)
            .with_context(|| format!("--as-of '{as_of}' is not an RFC 3339 instant (or `now`)"))?
    };
    let mut c = connect(global).await?;
    let fail = |s: tonic::Status| anyhow!(describe(&s));
    let mut stream = c
        .audit
        .replay_learning_history(pb::ReplayLearningHistoryRequest {
            owner: owner.clone(),
            from: None,
            until: None,
        })
        .await
        .map_err(fail)?
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = stream.message().await.map_err(fail)? {
        if let Some(r) = convert::recorded_from_wire(&e)? {
            events.push(r);
        }
    }
    let state = LearnerState::as_of(&events, as_of);
    let stats = state.stats(as_of);
    if !verify {
        if json {
            let cards: Vec<_> = state.cards.values().map(card_json).collect();
            println!(
                "{}",
                serde_json::json!({
                    "owner": owner, "as_of": as_of.format(&Rfc3339)?,
                    "last_sequence": state.last_sequence, "cards": cards,
                    "topics": state.topics.len(), "sessions": state.sessions.len(),
                    "stats": stats,
                })
            );
        } else {
            println!(
                "{owner} as of {} (through sequence {}): {} cards, {} topics, {} sessions, {} reviews",
                as_of.format(&Rfc3339)?,
                state.last_sequence,
                state.cards.len(),
                state.topics.len(),
                state.sessions.len(),
                state.reviews.len()
            );
            for card in state.cards.values() {
                let s = &card.schedule;
                println!(
                    "{}  {:<10}  due {}  stability {}  {}{}",
                    card.card_id,
                    s.state.name(),
                    s.due.format(&Rfc3339)?,
                    s.stability
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "-".into()),
                    card.content.front.lines().next().unwrap_or_default(),
                    if card.deleted {
                        "  (deleted)"
                    } else if card.suspended {
                        "  (suspended)"
                    } else {
                        ""
                    }
                );
            }
            if let Some(r) = stats.retention {
                println!(
                    "retention {:.1}%, streak {}",
                    r * 100.0,
                    super::count(stats.current_streak_days, "day")
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Verify: the rebuild at now against the read model.
    let rebuilt = LearnerState::as_of(&events, now);
    let read = c
        .learning
        .list_cards(pb::ListCardsRequest {
            min_sequence: rebuilt.last_sequence,
            include_deleted: true,
            limit: 0,
            owner: owner.clone(),
        })
        .await
        .map_err(fail)?
        .into_inner();
    let read_cards = read
        .cards
        .iter()
        .map(convert::card_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    let read_stats = c
        .learning
        .study_stats(pb::StudyStatsRequest {
            min_sequence: rebuilt.last_sequence,
            now: Some(mnemo_api::convert::timestamp(now)),
            owner: owner.clone(),
        })
        .await
        .map_err(fail)?
        .into_inner();
    let mut differences = card_differences(&rebuilt.cards, &read_cards);
    differences.extend(stats_differences(
        &rebuilt.stats(now),
        &convert::stats_from_wire(&read_stats),
    ));
    if json {
        println!(
            "{}",
            serde_json::json!({
                "owner": owner, "cards": rebuilt.cards.len(), "events_through": rebuilt.last_sequence,
                "read_model_sequence": read.sequence, "differences": differences,
                "ok": differences.is_empty(),
            })
        );
    } else if differences.is_empty() {
        println!(
            "ok: {} cards and the study stats rebuilt from events (through sequence {}) match the read model",
            rebuilt.cards.len(),
            rebuilt.last_sequence
        );
    } else {
        for d in &differences {
            println!("{d}");
        }
        println!("{} differences", differences.len());
    }
    Ok(if differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
