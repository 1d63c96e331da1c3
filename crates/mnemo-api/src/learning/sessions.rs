//! Study sessions: start and end.

use mnemo_domain::learn::{Session, SessionCommand};
use mnemo_proto::v1 as pb;
use tonic::{Request, Status};
use uuid::Uuid;

use super::commands::LearningCommands;
use super::input;
use crate::auth::caller;
use crate::convert::timestamp;
use crate::documents::command_metadata;

fn accepted(s: &Session, session_id: Uuid, sequence: u64) -> pb::SessionAccepted {
    pb::SessionAccepted {
        session_id: session_id.to_string(),
        started_at: s.started_at.map(timestamp),
        ended_at: s.ended_at.map(timestamp),
        sequence,
    }
}

pub async fn start(
    commands: &LearningCommands,
    req: Request<pb::StartSessionRequest>,
) -> Result<pb::SessionAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.get_ref();
    let session_id = input::uuid_or_new(&r.session_id, "session_id")?;
    let command = SessionCommand::Start {
        session_id,
        owner: who.owner.clone(),
        topic_id: input::optional_uuid(&r.topic_id, "topic_id")?,
        at: input::instant(r.at.as_ref(), "at")?,
    };
    let done = commands
        .session(&who.owner, session_id, command, &md)
        .await?;
    Ok(accepted(&done.aggregate, session_id, done.last_sequence))
}

pub async fn end(
    commands: &LearningCommands,
    req: Request<pb::EndSessionRequest>,
) -> Result<pb::SessionAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.get_ref();
    let session_id = input::uuid(&r.session_id, "session_id")?;
    let command = SessionCommand::End {
        at: input::instant(r.at.as_ref(), "at")?,
    };
    let done = commands
        .session(&who.owner, session_id, command, &md)
        .await?;
    Ok(accepted(&done.aggregate, session_id, done.last_sequence))
}
