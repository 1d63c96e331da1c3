//! `mnemo cards add|list|edit|suspend|resume|delete`: your flashcards
//! through `LearningService` (`cards generate` is [`super::cards_generate`]).

use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Args)]
pub struct CardsArgs {
    #[command(subcommand)]
    pub command: CardsCommand,
}

/// A card's content on the command line.
#[derive(Args, Clone)]
pub struct CardContentArgs {
    #[arg(long)]
    pub front: Option<String>,
    #[arg(long)]
    pub back: Option<String>,
    /// Default: `default`.
    #[arg(long)]
    pub deck: Option<String>,
    /// The cited document (with --chunk and --page).
    #[arg(long, requires = "chunk")]
    pub source_document: Option<String>,
    #[arg(long, requires = "source_document")]
    pub chunk: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub page: u32,
}

#[derive(Subcommand)]
pub enum CardsCommand {
    /// Add a card (needs --front and --back).
    Add {
        #[command(flatten)]
        content: CardContentArgs,
        /// Choose the card's id (a UUID): adding it again is a no-op.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List your cards (with --due: only those due now).
    List {
        #[arg(long)]
        due: bool,
        /// Include deleted cards.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a card's front, back, deck or source (others stay).
    Edit {
        card_id: String,
        #[command(flatten)]
        content: CardContentArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop reviewing a card (it keeps its schedule).
    Suspend {
        card_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Review a suspended card again.
    Resume {
        card_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a card (its history stays in the events).
    Delete {
        card_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Make cards from one of your indexed documents (each cites its chunk and page).
    Generate {
        document_id: String,
        /// Deck of the new cards (default: the document's file name).
        #[arg(long)]
        deck: Option<String>,
        /// Most cards (1..=100).
        #[arg(long, default_value_t = 20)]
        max: u32,
        /// Ask the server's LLM (falls back to the offline generator).
        #[arg(long)]
        llm: bool,
        #[arg(long)]
        json: bool,
    },
}

/// A protobuf timestamp as RFC 3339 (empty when absent).
pub fn rfc3339(t: Option<&prost_types::Timestamp>) -> String {
    use time::format_description::well_known::Rfc3339;
    t.and_then(|t| {
        time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
        )
        .ok()
    })
    .and_then(|t| t.format(&Rfc3339).ok())
    .unwrap_or_default()
}

pub fn schedule_json(s: Option<&pb::LearningSchedule>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "state": s.state,
            "step": s.step,
            "stability": s.stability,
            "difficulty": s.difficulty,
            "due": rfc3339(s.due.as_ref()),
            "last_review": s.last_review.as_ref().map(|t| rfc3339(Some(t))),
        }),
    }
}

pub fn card_json(c: &pb::LearningCard) -> serde_json::Value {
    serde_json::json!({
        "card_id": c.card_id,
        "deck": c.deck,
        "front": c.front,
        "back": c.back,
        "source": c.source.as_ref().map(|s| serde_json::json!({
            "document_id": s.document_id, "chunk_id": s.chunk_id, "page": s.page,
        })),
        "created_at": rfc3339(c.created_at.as_ref()),
        "schedule": schedule_json(c.schedule.as_ref()),
        "reviews": c.reviews,
        "suspended": c.suspended,
        "deleted": c.deleted,
        "last_sequence": c.last_sequence,
    })
}

fn source(a: &CardContentArgs) -> Option<pb::LearningCardSource> {
    a.source_document
        .as_ref()
        .map(|document_id| pb::LearningCardSource {
            document_id: document_id.clone(),
            chunk_id: a.chunk.clone().unwrap_or_default(),
            page: a.page,
        })
}

fn print_card(c: &pb::CardAccepted, what: &str, json: bool) {
    match (&c.card, json) {
        (Some(card), true) => println!(
            "{}",
            serde_json::json!({"card": card_json(card), "sequence": c.sequence})
        ),
        (Some(card), false) => println!(
            "{what} card {} (due {}, sequence {})",
            card.card_id,
            rfc3339(card.schedule.as_ref().and_then(|s| s.due.as_ref())),
            c.sequence
        ),
        (None, _) => println!("{what} (sequence {})", c.sequence),
    }
}

pub async fn run(global: &Global, args: CardsArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let l = &mut c.learning;
    let fail = |s: tonic::Status| anyhow!(describe(&s));
    match args.command {
        CardsCommand::Add { content, id, json } => {
            let (Some(front), Some(back)) = (content.front.clone(), content.back.clone()) else {
                bail!("a card needs --front and --back");
            };
            let r = l
                .create_card(pb::CreateCardRequest {
                    card_id: id.unwrap_or_default(),
                    deck: content.deck.clone().unwrap_or_default(),
                    front,
                    back,
                    source: source(&content),
                })
                .await
                .map_err(fail)?
                .into_inner();
            print_card(&r, "added", json);
        }
        CardsCommand::List { due, all, json } => {
            let cards = if due {
                l.due_cards(pb::DueCardsRequest {
                    limit: 1000,
                    ..Default::default()
                })
                .await
            } else {
                l.list_cards(pb::ListCardsRequest {
                    include_deleted: all,
                    ..Default::default()
                })
                .await
            }
            .map_err(fail)?
            .into_inner();
            if json {
                let list: Vec<_> = cards.cards.iter().map(card_json).collect();
                println!(
                    "{}",
                    serde_json::json!({"cards": list, "sequence": cards.sequence})
                );
            } else if cards.cards.is_empty() {
                println!("no cards{}", if due { " due" } else { "" });
            } else {
                println!(
                    "{:<36}  {:<12}  {:<10}  {:<25}  FRONT",
                    "CARD", "DECK", "STATE", "DUE"
                );
                for card in &cards.cards {
                    let s = card.schedule.as_ref();
                    let mut state = s.map(|s| s.state.clone()).unwrap_or_default();
                    if card.suspended {
                        state = "suspended".into();
                    }
                    if card.deleted {
                        state = "deleted".into();
                    }
                    println!(
                        "{:<36}  {:<12}  {:<10}  {:<25}  {}",
                        card.card_id,
                        card.deck,
                        state,
                        rfc3339(s.and_then(|s| s.due.as_ref())),
                        card.front.lines().next().unwrap_or_default()
                    );
                }
            }
        }
        CardsCommand::Edit {
            card_id,
            content,
            json,
        } => {
            // Fields not given keep their current value.
            let current = l
                .list_cards(pb::ListCardsRequest::default())
                .await
                .map_err(fail)?
                .into_inner()
                .cards
                .into_iter()
                .find(|c| c.card_id == card_id)
                .ok_or_else(|| anyhow!("no card {card_id}"))?;
            let r = l
                .edit_card(pb::EditCardRequest {
                    card_id,
                    deck: content.deck.clone().unwrap_or(current.deck),
                    front: content.front.clone().unwrap_or(current.front),
                    back: content.back.clone().unwrap_or(current.back),
                    source: source(&content).or(current.source),
                })
                .await
                .map_err(fail)?
                .into_inner();
            print_card(&r, "edited", json);
        }
        CardsCommand::Suspend { card_id, json } => {
            let r = l.suspend_card(pb::CardIdRequest { card_id }).await;
            print_card(&r.map_err(fail)?.into_inner(), "suspended", json);
        }
        CardsCommand::Resume { card_id, json } => {
            let r = l.resume_card(pb::CardIdRequest { card_id }).await;
            print_card(&r.map_err(fail)?.into_inner(), "resumed", json);
        }
        CardsCommand::Generate {
            document_id,
            deck,
            max,
            llm,
            json,
        } => return super::cards_generate::run(global, document_id, deck, max, llm, json).await,
        CardsCommand::Delete { card_id, json } => {
            let r = l.delete_card(pb::CardIdRequest { card_id }).await;
            print_card(&r.map_err(fail)?.into_inner(), "deleted", json);
        }
    }
    Ok(ExitCode::SUCCESS)
}
