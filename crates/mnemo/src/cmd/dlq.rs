//! `mnemo dlq list|retry [--json]`: the events services gave up on.
//!
//! An operator command (it talks to NATS directly, like `serve`). `retry`
//! starts a new processing run of the dead letter's document through the
//! document aggregate (the same `Reprocess` a user can ask for), then clears
//! the dead letter. A dead letter whose document cannot be reprocessed
//! (e.g. it was deleted from under it) stays, with the reason printed.
//!
//! The learning runner's letters (events it could not decode, stepped
//! over) are retried by rebuilding the learning read model from the event
//! log, once this build reads every such event again (after a fix, e.g. an
//! upcaster): the rebuild folds them in their place in history. A letter
//! whose event this build still cannot read stays, with why.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use mnemo_bus::dlq::{self, DeadLetter};
use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, Namespace, RetryPolicy};
use mnemo_domain::{Document, DocumentCommand};

use crate::cli::Backend;

#[derive(Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Every dead letter: which service gave up on which event, and why.
    List {
        #[command(flatten)]
        backend: Backend,
        #[arg(long)]
        json: bool,
    },
    /// Start a new processing run for dead letters' documents, then clear them.
    Retry {
        #[command(flatten)]
        backend: Backend,
        /// Dead-letter sequences (from `mnemo dlq list`).
        #[arg(required_unless_present = "all")]
        sequence: Vec<u64>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "sequence")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: DlqArgs) -> Result<ExitCode> {
    let backend = match &args.command {
        DlqCommand::List { backend, .. } | DlqCommand::Retry { backend, .. } => backend,
    };
    let database_url = &backend.database_url.clone();
    let ns = Namespace::new(&backend.namespace)?;
    let bus = backend.operator_bus(ns).await?;
    let letters = dlq::list(&bus).await?;
    match args.command {
        DlqCommand::List { json, .. } => {
            if json {
                println!("{}", serde_json::to_string(&letters)?);
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                println!(
                    "{:>6}  {:<10} {:<22} {:>8}  {:<45} REASON",
                    "DLQ", "SERVICE", "EVENT", "EVENT#", "AGGREGATE"
                );
                for l in &letters {
                    println!(
                        "{:>6}  {:<10} {:<22} {:>8}  {:<45} {}",
                        l.sequence,
                        l.service,
                        l.event_type,
                        l.event_sequence,
                        l.aggregate_id,
                        l.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Retry {
            sequence,
            all,
            json,
            ..
        } => {
            let chosen: Vec<&DeadLetter> = letters
                .iter()
                .filter(|l| all || sequence.contains(&l.sequence))
                .collect();
            if chosen.is_empty() {
                anyhow::bail!("no such dead letter: see `mnemo dlq list`");
            }
            let executor = CommandExecutor::new(
                JetStreamEventStore::<Document>::new(&bus, "doc", 0),
                (),
                RetryPolicy::default(),
            );
            let (learning, documents): (Vec<&DeadLetter>, Vec<&DeadLetter>) = chosen
                .into_iter()
                .partition(|l| l.service == mnemo_projector::learning::DLQ_SERVICE);
            let mut outcomes = Vec::new();
            for l in documents {
                outcomes.push((l, retry(&bus, &executor, l).await));
            }
            let folded =
                mnemo_projector::learning::dead_letters::retry(&bus, database_url, &learning).await;
            outcomes.extend(folded.into_iter().map(|(l, outcome)| {
                (
                    l,
                    outcome
                        .map(Retried::LearningRebuilt)
                        .map_err(|kept| kept.to_string()),
                )
            }));
            let mut failures = 0;
            let mut results = Vec::new();
            for (l, outcome) in outcomes {
                if outcome.is_err() {
                    failures += 1;
                }
                results.push(match &outcome {
                    Ok(Retried::Reprocessing(run)) => serde_json::json!({"sequence": l.sequence, "aggregate_id": l.aggregate_id, "run": run}),
                    Ok(Retried::BackfillCleared) => serde_json::json!({"sequence": l.sequence, "aggregate_id": l.aggregate_id, "backfill": BACKFILL_AGAIN}),
                    Ok(Retried::LearningRebuilt(version)) => serde_json::json!({"sequence": l.sequence, "aggregate_id": l.aggregate_id, "learning_version": version}),
                    Err(e) => serde_json::json!({"sequence": l.sequence, "aggregate_id": l.aggregate_id, "error": e}),
                });
                if !json {
                    match outcome {
                        Ok(Retried::Reprocessing(run)) => println!(
                            "dead letter {}: {} reprocessing as run {run}",
                            l.sequence, l.aggregate_id
                        ),
                        Ok(Retried::BackfillCleared) => println!(
                            "dead letter {}: {} cleared; {BACKFILL_AGAIN}",
                            l.sequence, l.aggregate_id
                        ),
                        Ok(Retried::LearningRebuilt(version)) => println!(
                            "dead letter {}: {} folded in: the learning read model was rebuilt (version {version})",
                            l.sequence, l.aggregate_id
                        ),
                        Err(e) => println!("dead letter {}: kept: {e}", l.sequence),
                    }
                }
            }
            if json {
                println!("{}", serde_json::Value::Array(results));
            }
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// What retrying a dead letter did.
enum Retried {
    /// The document's new processing run.
    Reprocessing(u32),
    /// A backfill's letter, cleared: the document is still indexed and
    /// searchable with its pipeline model, and reprocessing it would start
    /// a run the user sees; backfilling it again is the operator's step.
    BackfillCleared,
    /// A learning event now read: the learning read model was rebuilt
    /// from the log (this version serves now), the event folded in.
    LearningRebuilt(i32),
}

const BACKFILL_AGAIN: &str = "the document still has its pipeline model's vectors: once the cause is fixed, `mnemo backfill embed --restart` replays from sequence 1 and re-embeds what is missing";

/// Reprocesses the dead letter's document and clears the letter (a
/// backfill's letter is only cleared).
async fn retry(
    bus: &Bus,
    executor: &CommandExecutor<Document>,
    letter: &DeadLetter,
) -> Result<Retried, String> {
    if letter.aggregate_type != "document" || letter.aggregate_id.is_empty() {
        return Err(format!(
            "not a document event ({}), nothing to retry",
            letter.aggregate_type
        ));
    }
    if letter.service.starts_with("backfill-embed-") {
        dlq::remove(bus, letter.sequence)
            .await
            .map_err(|e| format!("cannot clear the dead letter: {e}"))?;
        return Ok(Retried::BackfillCleared);
    }
    let mut metadata = HashMap::new();
    metadata.insert("dlq_sequence".to_owned(), letter.sequence.to_string());
    let executed = executor
        .execute(
            &letter.aggregate_id,
            DocumentCommand::Reprocess {
                reason: format!(
                    "retry of dead letter {} ({} gave up: {})",
                    letter.sequence, letter.service, letter.reason
                ),
            },
            &metadata,
        )
        .await
        .map_err(|e| e.to_string())?;
    dlq::remove(bus, letter.sequence)
        .await
        .map_err(|e| format!("reprocessing started, but the dead letter stays: {e}"))?;
    Ok(Retried::Reprocessing(executed.aggregate.run))
}
