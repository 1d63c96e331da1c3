//! `mnemo learner erase OWNER --yes`: erase a learner (operators).
//!
//! Crypto-shredding (decision 022, `mnemo_bus::erase`): the learner's data
//! key is destroyed, `LearnerErased` appended, their files and dead letters
//! deleted; then this waits until the projector has dropped their rows
//! (the read models are the projector's). Learners erase themselves with
//! `AccountService.EraseLearner`; this is the operator's way, as the
//! operator. Irreversible: `--yes` is required.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mnemo_bus::Namespace;
use mnemo_domain::OwnerId;

use crate::cli::Backend;

#[derive(Args)]
pub struct LearnerArgs {
    #[command(subcommand)]
    pub command: LearnerCommand,
}

#[derive(Subcommand)]
pub enum LearnerCommand {
    /// Erase a learner: their key destroyed, their events tombstones, their rows and files gone.
    Erase {
        #[command(flatten)]
        backend: Backend,
        /// The learner's owner id (their token's `sub`).
        owner: String,
        /// Yes, erase them: this cannot be undone.
        #[arg(long)]
        yes: bool,
        /// How long to wait for the projector to drop their rows.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        wait: Duration,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: LearnerArgs) -> Result<ExitCode> {
    let LearnerCommand::Erase {
        backend,
        owner,
        yes,
        wait,
        json,
    } = args.command;
    let owner = OwnerId::new(owner).context("the owner id")?;
    if !yes {
        bail!("erasing a learner cannot be undone: add --yes");
    }
    let ns = Namespace::new(&backend.namespace)?;
    let bus = backend.operator_bus(ns.clone()).await?;
    let report = mnemo_bus::erase::erase_learner(&bus, &owner.token(), "operator")
        .await
        .context("erasing the learner")?;
    let db = mnemo_projector::db::connect(&backend.database_url, &ns)
        .await
        .context("connecting to the read models")?;
    let [documents, learning] = report.sequences;
    let docs_at = mnemo_projector::runner::wait_for(&db, &ns, documents, wait).await?;
    let learn_at = mnemo_projector::learning::wait_for(&db, &ns, learning, wait).await?;
    let clean = docs_at >= documents && learn_at >= learning;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["read_models_clean"] = clean.into();
        println!("{value}");
    } else {
        let shredded = report.shredded.unwrap_or(mnemo_bus::erase::Shredded {
            key_messages: 0,
            blobs: 0,
            dead_letters: 0,
        });
        println!(
            "erased learner {}: key {}, {} file(s) deleted, {} dead letter(s) erased; LearnerErased at {documents} and {learning}",
            report.owner_token,
            if report.had_key { "erased on disk" } else { "none (nothing was sealed)" },
            shredded.blobs,
            shredded.dead_letters,
        );
        if report.plaintext_events > 0 {
            println!(
                "warning: {} event(s) of theirs were written before keys, in plaintext: mnemo reads them as tombstones now, \
                 but their raw bytes stay on the stream, which is immutable (docs/security.md, *What an erasure cannot do*)",
                report.plaintext_events
            );
        }
        if clean {
            println!("the read models hold nothing of them");
        } else {
            println!(
                "the projector has not applied the erasure yet (documents at {docs_at}, learning at {learn_at}): their rows go when it does"
            );
        }
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
