//! `GenerateCards`: one of the caller's indexed documents → cards, created
//! through the card aggregate, each citing its chunk and page.
//!
//! Card ids are derived from (owner, document, deck, front, back), so
//! generating again creates nothing new (the aggregate treats the same
//! create as a no-op) and a card is never duplicated by a retry.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use mnemo_domain::learn::card::CardContent;
use mnemo_domain::learn::{CardCommand, CardSource};
use mnemo_proto::v1 as pb;
use mnemo_qa::{CardLimits, GeneratedCard, Llm, Passage};
use mnemo_search::passages::{self, DocumentChunks};
use tonic::Status;
use uuid::Uuid;

use crate::auth::Caller;
use crate::documents::{label, parse_document_id};
use crate::server::ApiState;

/// Most cards per call.
pub const MAX_CARDS: u32 = 100;
/// Cards when the request says 0.
pub const DEFAULT_CARDS: u32 = 20;
/// Cards the offline generator makes from one chunk at most.
pub const PER_CHUNK: usize = 3;
/// Chunks shown to the LLM at most (the prompt stays bounded).
pub const LLM_CHUNKS: usize = 24;
/// Longest the LLM may take for the whole card list.
pub const LLM_LIMIT: Duration = Duration::from_secs(120);

/// Names card ids (UUIDv5 under this namespace).
const CARD_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d6e_656d_6f2d_6361_7264_732d_7631_0001);

pub async fn generate(
    state: &ApiState,
    who: &Caller,
    metadata: HashMap<String, String>,
    r: pb::GenerateCardsRequest,
) -> Result<pb::GenerateCardsResponse, Status> {
    let document = parse_document_id(&r.document_id)?;
    let max = match r.max {
        0 => DEFAULT_CARDS,
        m if m > MAX_CARDS => {
            return Err(Status::invalid_argument(format!(
                "max must be 1..={MAX_CARDS}, got {m}"
            )))
        }
        m => m,
    } as usize;
    let deck = label(&r.deck, "deck")?;
    let db = state.read_db().await?;
    state.wait_for_read_models(&db, r.min_sequence).await?;
    let owner_token = who.owner.token();
    let chunks = match passages::of_document(&*db, &owner_token, document.as_uuid())
        .await
        .map_err(|e| crate::status::from_search_error(&e))?
    {
        DocumentChunks::Missing => return Err(Status::not_found("document not found")),
        DocumentChunks::NotIndexed(stage) => {
            return Err(Status::failed_precondition(format!(
                "the document is not indexed yet (stage: {stage})"
            )))
        }
        DocumentChunks::Chunks(c) if c.is_empty() => {
            return Err(Status::failed_precondition("the document has no text"))
        }
        DocumentChunks::Chunks(c) => c,
    };
    let deck = deck.unwrap_or_else(|| chunks[0].title.clone());
    let chunks: Vec<Passage> = chunks
        .into_iter()
        .map(|c| Passage {
            chunk_id: c.chunk_id,
            document_id: c.document_id,
            title: c.title,
            page_start: c.page_start,
            page_end: c.page_end,
            text: c.text,
        })
        .collect();
    let (generated, produced_by, fallback_reason) = match (r.use_llm, &state.qa.llm) {
        (true, Some(llm)) => match from_llm(llm.as_ref(), &chunks, max).await {
            Ok(cards) if !cards.is_empty() => (cards, "llm", String::new()),
            Ok(_) => (
                offline(&chunks, max),
                "offline",
                "the LLM wrote no usable card".into(),
            ),
            Err(reason) => {
                tracing::warn!(%reason, "the LLM failed; generating cards offline");
                (offline(&chunks, max), "offline", reason)
            }
        },
        (true, None) => (
            offline(&chunks, max),
            "offline",
            "no LLM is configured on this server".into(),
        ),
        (false, _) => (offline(&chunks, max), "offline", String::new()),
    };
    let mut cards = Vec::with_capacity(generated.len());
    for g in generated {
        cards.push(create(state, who, &metadata, &deck, g).await?);
    }
    tracing::info!(document_id = %document, cards = cards.len(), produced_by, "cards generated");
    Ok(pb::GenerateCardsResponse {
        cards,
        produced_by: produced_by.into(),
        fallback_reason,
    })
}

fn offline(chunks: &[Passage], max: usize) -> Vec<GeneratedCard> {
    mnemo_qa::generate_cards(
        chunks,
        CardLimits {
            max,
            per_chunk: PER_CHUNK,
        },
    )
}

/// The LLM's cards, or why there are none.
async fn from_llm(
    llm: &dyn Llm,
    chunks: &[Passage],
    max: usize,
) -> Result<Vec<GeneratedCard>, String> {
    let shown = &chunks[..chunks.len().min(LLM_CHUNKS)];
    let messages = mnemo_qa::prompts::card_messages(shown, max);
    let reply = tokio::time::timeout(LLM_LIMIT, async {
        let mut stream = llm.chat(&messages).await?;
        let mut reply = String::new();
        while let Some(token) = stream.next().await {
            reply.push_str(&token?);
        }
        Ok::<_, mnemo_qa::LlmError>(reply)
    })
    .await
    .map_err(|_| format!("the LLM did not finish within {LLM_LIMIT:?}"))?
    .map_err(|e| e.to_string())?;
    mnemo_qa::prompts::parse_cards(&reply, shown, max).map_err(|e| e.to_string())
}

/// Creates one card (a no-op when it exists already).
async fn create(
    state: &ApiState,
    who: &Caller,
    metadata: &HashMap<String, String>,
    deck: &str,
    g: GeneratedCard,
) -> Result<pb::GeneratedCard, Status> {
    let card_id = Uuid::new_v5(
        &CARD_ID_NAMESPACE,
        format!(
            "{}\n{}\n{deck}\n{}\n{}",
            who.owner.token(),
            g.document_id,
            g.front,
            g.back
        )
        .as_bytes(),
    );
    let content = CardContent {
        deck: deck.to_owned(),
        front: g.front.clone(),
        back: g.back.clone(),
        source: Some(CardSource {
            document_id: g.document_id.into(),
            chunk_id: g.chunk_id.clone(),
            page: g.page,
        }),
    };
    // One command id per card: a reused id would be taken for a retry.
    let mut metadata = metadata.clone();
    metadata.insert(
        mnemo_bus::envelope::meta::COMMAND_ID.to_owned(),
        Uuid::now_v7().to_string(),
    );
    let id = mnemo_domain::learn::aggregate_id(&who.owner, "card", &card_id);
    let done = state
        .qa
        .cards
        .execute(
            &id,
            CardCommand::Create {
                card_id,
                owner: who.owner.clone(),
                content,
                at: time::OffsetDateTime::now_utc(),
            },
            &metadata,
        )
        .await
        .map_err(|e| crate::status::from_learn_execute_error(&e))?;
    Ok(pb::GeneratedCard {
        card_id: card_id.to_string(),
        deck: deck.to_owned(),
        front: g.front,
        back: g.back,
        kind: g.kind.name().into(),
        document_id: g.document_id.to_string(),
        chunk_id: g.chunk_id,
        page: g.page,
        created: !done.events.is_empty(),
        sequence: done.last_sequence,
    })
}
