//! Topic commands: create, rename, attach a document.

use mnemo_domain::learn::{Topic, TopicCommand};
use mnemo_proto::v1 as pb;
use tonic::{Request, Status};
use uuid::Uuid;

use super::commands::LearningCommands;
use super::input;
use crate::auth::caller;
use crate::documents::{command_metadata, parse_document_id};

fn accepted(topic: &Topic, topic_id: Uuid, sequence: u64) -> pb::TopicAccepted {
    pb::TopicAccepted {
        topic_id: topic_id.to_string(),
        name: topic.name.clone(),
        document_ids: topic.documents.iter().map(|d| d.to_string()).collect(),
        sequence,
    }
}

pub async fn create(
    commands: &LearningCommands,
    req: Request<pb::CreateTopicRequest>,
) -> Result<pb::TopicAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.get_ref();
    let topic_id = input::uuid_or_new(&r.topic_id, "topic_id")?;
    let command = TopicCommand::Create {
        topic_id,
        owner: who.owner.clone(),
        name: r.name.clone(),
    };
    let done = commands.topic(&who.owner, topic_id, command, &md).await?;
    Ok(accepted(&done.aggregate, topic_id, done.last_sequence))
}

pub async fn rename(
    commands: &LearningCommands,
    req: Request<pb::RenameTopicRequest>,
) -> Result<pb::TopicAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.get_ref();
    let topic_id = input::uuid(&r.topic_id, "topic_id")?;
    let command = TopicCommand::Rename {
        name: r.name.clone(),
    };
    let done = commands.topic(&who.owner, topic_id, command, &md).await?;
    Ok(accepted(&done.aggregate, topic_id, done.last_sequence))
}

pub async fn attach(
    commands: &LearningCommands,
    req: Request<pb::AttachDocumentRequest>,
) -> Result<pb::TopicAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.get_ref();
    let topic_id = input::uuid(&r.topic_id, "topic_id")?;
    let document_id = parse_document_id(&r.document_id)?;
    let done = commands
        .topic(
            &who.owner,
            topic_id,
            TopicCommand::Attach { document_id },
            &md,
        )
        .await?;
    Ok(accepted(&done.aggregate, topic_id, done.last_sequence))
}
