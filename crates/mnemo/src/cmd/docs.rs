//! `mnemo docs list|get|cancel|reprocess`.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};
use crate::cmd::{document_json, stage_name};

#[derive(Args)]
pub struct DocsArgs {
    #[command(subcommand)]
    pub command: DocsCommand,
}

#[derive(Subcommand)]
pub enum DocsCommand {
    /// List your documents.
    List {
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one document (strongly consistent, from its events).
    Get {
        document_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop a document's processing.
    Cancel {
        document_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Process a document again from its stored upload.
    /// Start a new processing run from the stored upload: one document, a
    /// topic's, or all of yours. The old chunks stay searchable until the
    /// new run is indexed.
    Reprocess {
        #[arg(required_unless_present_any = ["topic", "all"], conflicts_with_all = ["topic", "all"])]
        document_id: Option<String>,
        /// Every document of this topic.
        #[arg(long, conflicts_with = "all")]
        topic: Option<String>,
        /// Every document.
        #[arg(long)]
        all: bool,
        /// Why (recorded in the event).
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, args: DocsArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    match args.command {
        DocsCommand::List { topic, json } => {
            let r = c
                .documents
                .list(pb::ListDocumentsRequest {
                    min_sequence: 0,
                    topic: topic.unwrap_or_default(),
                    limit: 0,
                })
                .await
                .map_err(|s| anyhow!(describe(&s)))?
                .into_inner();
            if json {
                let docs: Vec<_> = r.documents.iter().map(document_json).collect();
                println!(
                    "{}",
                    serde_json::json!({"sequence": r.sequence, "documents": docs})
                );
            } else if r.documents.is_empty() {
                println!("no documents yet: try `mnemo upload FILE`");
            } else {
                println!(
                    "{:<36}  {:<10}  {:>10}  {:<16}  FILENAME",
                    "DOCUMENT", "STAGE", "BYTES", "TOPIC"
                );
                for d in &r.documents {
                    println!(
                        "{:<36}  {:<10}  {:>10}  {:<16}  {}{}",
                        d.document_id,
                        stage_name(d.stage),
                        d.size_bytes,
                        d.topic,
                        d.filename,
                        if !d.reason.is_empty() {
                            format!("  ({})", d.reason)
                        } else if d.pages_failed > 0 {
                            format!(
                                "  (partial: {} of {} pages could not be read)",
                                d.pages_failed, d.pages_total
                            )
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        DocsCommand::Get { document_id, json } => {
            let d = c
                .documents
                .get(pb::GetDocumentRequest { document_id })
                .await
                .map_err(|s| anyhow!(describe(&s)))?
                .into_inner();
            if json {
                println!("{}", document_json(&d));
            } else {
                println!("{}", serde_json::to_string_pretty(&document_json(&d))?);
            }
        }
        DocsCommand::Cancel { document_id, json } => {
            let r = c
                .documents
                .cancel(pb::CancelDocumentRequest {
                    document_id,
                    reason: String::new(),
                })
                .await
                .map_err(|s| anyhow!(describe(&s)))?
                .into_inner();
            print_accepted("cancelled", &r, json);
        }
        DocsCommand::Reprocess {
            document_id,
            topic,
            all: _,
            reason,
            json,
        } => {
            let ids = match document_id {
                Some(id) => vec![id],
                None => {
                    let r = c
                        .documents
                        .list(pb::ListDocumentsRequest {
                            min_sequence: 0,
                            topic: topic.clone().unwrap_or_default(),
                            limit: 10_000,
                        })
                        .await
                        .map_err(|s| anyhow!(describe(&s)))?
                        .into_inner();
                    r.documents.into_iter().map(|d| d.document_id).collect()
                }
            };
            let mut refused = 0;
            for document_id in ids {
                match c
                    .documents
                    .reprocess(pb::ReprocessDocumentRequest {
                        document_id: document_id.clone(),
                        reason: reason.clone(),
                    })
                    .await
                {
                    Ok(r) => print_accepted("reprocessing", &r.into_inner(), json),
                    Err(s) => {
                        refused += 1;
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"document_id": document_id, "error": describe(&s)})
                            );
                        } else {
                            eprintln!("{document_id}: {}", describe(&s));
                        }
                    }
                }
            }
            if refused > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_accepted(what: &str, r: &pb::CommandAccepted, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({"document_id": r.document_id, "run": r.run, "sequence": r.sequence})
        );
    } else {
        println!(
            "{what} {} (run {}, sequence {})",
            r.document_id, r.run, r.sequence
        );
    }
}
