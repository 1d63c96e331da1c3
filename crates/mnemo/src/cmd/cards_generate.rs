//! `mnemo cards generate DOC_ID [--deck D] [--max N] [--llm] [--json]`:
//! cards made from a document by `QaService.GenerateCards`.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

pub async fn run(
    global: &Global,
    document_id: String,
    deck: Option<String>,
    max: u32,
    llm: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let r =
        c.qa.generate_cards(pb::GenerateCardsRequest {
            document_id,
            deck: deck.unwrap_or_default(),
            max,
            use_llm: llm,
            min_sequence: 0,
        })
        .await
        .map_err(|s| anyhow!(describe(&s)))?
        .into_inner();
    if json {
        let cards: Vec<_> = r
            .cards
            .iter()
            .map(|c| {
                serde_json::json!({
                    "card_id": c.card_id, "deck": c.deck, "front": c.front, "back": c.back,
                    "kind": c.kind, "document_id": c.document_id, "chunk_id": c.chunk_id,
                    "page": c.page, "created": c.created, "sequence": c.sequence,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"cards": cards, "produced_by": r.produced_by, "fallback_reason": r.fallback_reason})
        );
        return Ok(ExitCode::SUCCESS);
    }
    if r.cards.is_empty() {
        println!("no cards: nothing in this document looked like a definition or a key term");
    }
    for (i, c) in r.cards.iter().enumerate() {
        let new = if c.created { "" } else { " (existed)" };
        println!("{:>2}. [{}] {}{new}", i + 1, c.kind, c.front);
        println!("    → {}  (p. {})", c.back, c.page);
    }
    if !r.fallback_reason.is_empty() {
        eprintln!("(made offline: {})", r.fallback_reason);
    }
    Ok(ExitCode::SUCCESS)
}
