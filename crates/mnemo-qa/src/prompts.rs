//! What the LLM is asked, and reading its card list back.
//!
//! Answers: the sources are numbered `[1]…[n]` in retrieval order and the
//! model is told to cite them that way, so the numbers it writes are the
//! same as the sources the API sent first. Cards: the model replies with a
//! JSON list of `{front, back, chunk}`, `chunk` being the number of the
//! chunk the card comes from, which gives each card its citation.

use std::collections::HashSet;

use serde::Deserialize;

use crate::cards::{CardKind, GeneratedCard};
use crate::llm::{ChatMessage, LlmError};
use crate::Passage;

/// Most characters of one source put into a prompt.
const MAX_SOURCE_CHARS: usize = 2_000;

fn numbered(passages: &[Passage]) -> String {
    passages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let text: String = p.text.chars().take(MAX_SOURCE_CHARS).collect();
            format!("[{}] ({}, page {})\n{}", i + 1, p.title, p.page_start, text)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The chat that answers `question` from `sources`.
pub fn answer_messages(question: &str, sources: &[Passage]) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(
            "You answer a learner's question using only the numbered sources from their own \
             study material. Cite the source of every statement with its number in square \
             brackets, like [1] or [2][3], right after the statement. If the sources do not \
             answer the question, say so briefly. Be concise.",
        ),
        ChatMessage::user(format!(
            "Sources:\n\n{}\n\nQuestion: {question}",
            numbered(sources)
        )),
    ]
}

/// The chat that writes at most `max` cards from `chunks`.
pub fn card_messages(chunks: &[Passage], max: usize) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(format!(
            "You write flashcards from a learner's study material. Write at most {max} cards, \
             each testing one fact stated in the numbered chunks. Reply with only a JSON list, \
             no prose: [{{\"front\": \"question\", \"back\": \"answer\", \"chunk\": n}}], where \
             n is the number of the chunk the fact comes from."
        )),
        ChatMessage::user(format!("Chunks:\n\n{}", numbered(chunks))),
    ]
}

#[derive(Deserialize)]
struct ReplyCard {
    front: String,
    back: String,
    chunk: u32,
}

/// The cards of the model's `reply` (a JSON list, possibly inside a code
/// fence or prose); cards naming no given chunk, blank ones and repeats are
/// dropped, and at most `max` are kept.
pub fn parse_cards(
    reply: &str,
    chunks: &[Passage],
    max: usize,
) -> Result<Vec<GeneratedCard>, LlmError> {
    let (Some(open), Some(close)) = (reply.find('['), reply.rfind(']')) else {
        return Err(LlmError::Protocol("the reply holds no JSON list".into()));
    };
    if close < open {
        return Err(LlmError::Protocol("the reply holds no JSON list".into()));
    }
    let cards: Vec<ReplyCard> = serde_json::from_str(&reply[open..=close])
        .map_err(|e| LlmError::Protocol(format!("the card list is not valid JSON: {e}")))?;
    let mut seen = HashSet::new();
    Ok(cards
        .into_iter()
        .filter_map(|c| {
            let chunk = chunks.get((c.chunk as usize).checked_sub(1)?)?;
            let (front, back) = (c.front.trim(), c.back.trim());
            if front.is_empty() || back.is_empty() || !seen.insert(front.to_lowercase()) {
                return None;
            }
            Some(GeneratedCard {
                kind: CardKind::Llm,
                front: front.to_owned(),
                back: back.to_owned(),
                term: String::new(),
                chunk_id: chunk.chunk_id.clone(),
                document_id: chunk.document_id,
                page: chunk.page_start,
            })
        })
        .take(max)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks() -> Vec<Passage> {
        (1..=2)
            .map(|n| Passage {
                chunk_id: format!("c-{n}"),
                document_id: uuid::Uuid::from_u128(3),
                title: "bio.md".into(),
                page_start: n * 10,
                page_end: n * 10,
                text: format!("chunk {n} text"),
            })
            .collect()
    }

    #[test]
    fn prompts_number_the_sources_in_order() {
        let m = answer_messages("What is ATP?", &chunks());
        assert!(m[0].content.contains("[1]"));
        assert!(m[1]
            .content
            .contains("[1] (bio.md, page 10)\nchunk 1 text\n\n[2] (bio.md, page 20)"));
        assert!(m[1].content.ends_with("Question: What is ATP?"));
        assert!(card_messages(&chunks(), 5)[0].content.contains("at most 5"));
    }

    #[test]
    fn card_replies_are_read_through_fences_and_checked() {
        let reply = "Here you go:\n```json\n[{\"front\": \"Q1?\", \"back\": \"A1\", \"chunk\": 2},\
                     {\"front\": \"q1?\", \"back\": \"again\", \"chunk\": 1},\
                     {\"front\": \"Q3?\", \"back\": \"A3\", \"chunk\": 9},\
                     {\"front\": \" \", \"back\": \"A4\", \"chunk\": 1},\
                     {\"front\": \"Q5?\", \"back\": \"A5\", \"chunk\": 1}]\n```";
        let cards = parse_cards(reply, &chunks(), 10).unwrap();
        let got: Vec<(&str, &str, u32)> = cards
            .iter()
            .map(|c| (c.front.as_str(), c.chunk_id.as_str(), c.page))
            .collect();
        assert_eq!(got, vec![("Q1?", "c-2", 20), ("Q5?", "c-1", 10)]);
        assert_eq!(parse_cards(reply, &chunks(), 1).unwrap().len(), 1);
        assert!(parse_cards("no list here", &chunks(), 3).is_err());
        assert!(parse_cards("[not json]", &chunks(), 3).is_err());
    }
}
