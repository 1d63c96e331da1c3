//! Card commands: create, edit, suspend, resume, delete, and reviews.

use mnemo_domain::learn::card::{CardContent, CardSource};
use mnemo_domain::learn::schedule::Rating;
use mnemo_domain::learn::{Card, CardCommand, CardView};
use mnemo_domain::OwnerId;
use mnemo_proto::v1 as pb;
use time::OffsetDateTime;
use tonic::{Request, Status};
use uuid::Uuid;

use super::commands::LearningCommands;
use super::{convert, input};
use crate::auth::caller;
use crate::documents::{command_metadata, label};

/// Namespace UUID for review command ids derived from (owner, card, review id).
const REVIEW_NAMESPACE: Uuid = Uuid::from_u128(0x6d6e_656d_6f2d_5245_5649_4557_4944_0001);

/// The deck of a card created without one.
pub const DEFAULT_DECK: &str = "default";

/// Longest card side, in bytes.
pub const MAX_SIDE_BYTES: usize = 16 * 1024;

fn side(value: &str, field: &str) -> Result<String, Status> {
    if value.len() > MAX_SIDE_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field} must be at most {MAX_SIDE_BYTES} bytes"
        )));
    }
    Ok(value.to_owned())
}

fn source(s: Option<&pb::LearningCardSource>) -> Result<Option<CardSource>, Status> {
    let Some(s) = s else { return Ok(None) };
    if s.document_id.is_empty() && s.chunk_id.is_empty() {
        return Ok(None);
    }
    Ok(Some(CardSource {
        document_id: crate::documents::parse_document_id(&s.document_id)?,
        chunk_id: label(&s.chunk_id, "source.chunk_id")?
            .ok_or_else(|| Status::invalid_argument("source.chunk_id is empty"))?,
        page: s.page,
    }))
}

fn content(
    deck: &str,
    front: &str,
    back: &str,
    src: Option<&pb::LearningCardSource>,
) -> Result<CardContent, Status> {
    Ok(CardContent {
        deck: label(deck, "deck")?.unwrap_or_else(|| DEFAULT_DECK.to_owned()),
        front: side(front, "front")?,
        back: side(back, "back")?,
        source: source(src)?,
    })
}

/// The card as the aggregate has it after a command.
fn view(card: &Card, card_id: Uuid, last_sequence: u64) -> Option<pb::LearningCard> {
    Some(convert::card(&CardView {
        card_id,
        content: card.content.clone()?,
        created_at: card.created_at?,
        schedule: card.schedule.clone()?,
        reviews: card.reviews,
        suspended: card.suspended,
        deleted: card.deleted,
        last_sequence,
    }))
}

async fn run(
    commands: &LearningCommands,
    owner: &OwnerId,
    card_id: Uuid,
    command: CardCommand,
    metadata: &std::collections::HashMap<String, String>,
) -> Result<pb::CardAccepted, Status> {
    let done = commands.card(owner, card_id, command, metadata).await?;
    Ok(pb::CardAccepted {
        card: view(&done.aggregate, card_id, done.last_sequence),
        sequence: done.last_sequence,
    })
}

pub async fn create(
    commands: &LearningCommands,
    req: Request<pb::CreateCardRequest>,
) -> Result<pb::CardAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.into_inner();
    let card_id = input::uuid_or_new(&r.card_id, "card_id")?;
    let content = content(&r.deck, &r.front, &r.back, r.source.as_ref())?;
    let command = CardCommand::Create {
        card_id,
        owner: who.owner.clone(),
        content,
        at: input::to_micros(OffsetDateTime::now_utc()),
    };
    run(commands, &who.owner, card_id, command, &md).await
}

pub async fn edit(
    commands: &LearningCommands,
    req: Request<pb::EditCardRequest>,
) -> Result<pb::CardAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let r = req.into_inner();
    let card_id = input::uuid(&r.card_id, "card_id")?;
    let content = content(&r.deck, &r.front, &r.back, r.source.as_ref())?;
    run(
        commands,
        &who.owner,
        card_id,
        CardCommand::Edit { content },
        &md,
    )
    .await
}

/// Suspend, resume or delete.
pub async fn simple(
    commands: &LearningCommands,
    req: Request<pb::CardIdRequest>,
    command: CardCommand,
) -> Result<pb::CardAccepted, Status> {
    let who = caller(&req)?;
    let md = command_metadata(&req, None);
    let card_id = input::uuid(&req.get_ref().card_id, "card_id")?;
    run(commands, &who.owner, card_id, command, &md).await
}

pub async fn review(
    commands: &LearningCommands,
    req: Request<pb::SubmitReviewRequest>,
) -> Result<pb::SubmitReviewResponse, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let card_id = input::uuid(&r.card_id, "card_id")?;
    let review_id = input::uuid(&r.review_id, "review_id")?;
    let rating = input::rating(r.rating)?;
    let at = input::instant(r.reviewed_at.as_ref(), "reviewed_at")?;
    // The review id is the command id too: a retried submission is also
    // deduplicated by JetStream, not only by the aggregate.
    let command_id = Uuid::new_v5(
        &REVIEW_NAMESPACE,
        format!("{}/{card_id}/{review_id}", who.owner.token()).as_bytes(),
    );
    let md = command_metadata(&req, Some(command_id.to_string()));
    let done = commands
        .card(
            &who.owner,
            card_id,
            CardCommand::Review {
                review_id,
                rating,
                at,
            },
            &md,
        )
        .await?;
    let schedule = done.aggregate.schedule.as_ref().ok_or_else(|| {
        crate::status::internal("recording a review", &"the reviewed card has no schedule")
    })?;
    tracing::info!(%card_id, %review_id, rating, sequence = done.last_sequence, duplicate = done.appended.is_none(), "review recorded");
    Ok(pb::SubmitReviewResponse {
        schedule: Some(convert::schedule(schedule)),
        sequence: done.last_sequence,
        duplicate: done.appended.is_none(),
    })
}

/// `PreviewReview`: the schedule each rating would give the card at `at`,
/// by the same scheduler as `SubmitReview`, appending nothing.
pub async fn preview(
    commands: &LearningCommands,
    req: Request<pb::PreviewReviewRequest>,
) -> Result<pb::PreviewReviewResponse, Status> {
    let who = caller(&req)?;
    let r = req.get_ref();
    let card_id = input::uuid(&r.card_id, "card_id")?;
    let at = input::instant(r.at.as_ref(), "at")?;
    let card = commands
        .cards
        .store()
        .load(&mnemo_domain::learn::aggregate_id(
            &who.owner, "card", &card_id,
        ))
        .await
        .map_err(|e| crate::status::from_bus_error(&e))?
        .aggregate;
    // Another owner's card is a missing one (the aggregate id has the owner).
    let before = match (&card.id, card.deleted, &card.schedule) {
        (Some(_), false, Some(s)) => s.clone(),
        _ => return Err(Status::not_found("no such card")),
    };
    let previews = [Rating::Again, Rating::Hard, Rating::Good, Rating::Easy]
        .into_iter()
        .map(|rating| pb::ReviewPreview {
            rating: u32::from(rating.number()),
            schedule: Some(convert::schedule(
                &commands.scheduler.review(&before, rating, at),
            )),
        })
        .collect();
    Ok(pb::PreviewReviewResponse { previews })
}
