//! `mnemo topics create|rename|attach`.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Choose the topic's id (a UUID).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rename a topic.
    Rename {
        topic_id: String,
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Attach one of your documents to a topic.
    Attach {
        topic_id: String,
        document_id: String,
        #[arg(long)]
        json: bool,
    },
}

fn print(t: &pb::TopicAccepted, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "topic_id": t.topic_id, "name": t.name,
                "document_ids": t.document_ids, "sequence": t.sequence,
            })
        );
    } else {
        println!(
            "topic {} '{}' ({}, sequence {})",
            t.topic_id,
            t.name,
            super::count(t.document_ids.len() as u64, "document"),
            t.sequence
        );
    }
}

pub async fn run(global: &Global, args: TopicsArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let l = &mut c.learning;
    let (r, json) = match args.command {
        TopicsCommand::Create { name, id, json } => (
            l.create_topic(pb::CreateTopicRequest {
                topic_id: id.unwrap_or_default(),
                name,
            })
            .await,
            json,
        ),
        TopicsCommand::Rename {
            topic_id,
            name,
            json,
        } => (
            l.rename_topic(pb::RenameTopicRequest { topic_id, name })
                .await,
            json,
        ),
        TopicsCommand::Attach {
            topic_id,
            document_id,
            json,
        } => (
            l.attach_document(pb::AttachDocumentRequest {
                topic_id,
                document_id,
            })
            .await,
            json,
        ),
    };
    print(&r.map_err(|s| anyhow!(describe(&s)))?.into_inner(), json);
    Ok(ExitCode::SUCCESS)
}
