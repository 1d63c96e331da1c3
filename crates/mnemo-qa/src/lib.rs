//! Questions answered from a learner's material, and cards made from it.
//!
//! Owns: the offline card generator (definitions and key terms of a
//! document's chunks → question and cloze cards, each citing its chunk and
//! page), the extractive answerer (the retrieved chunks' best sentences,
//! each with its citation), the [`Llm`] trait with an OpenAI-compatible
//! chat-completions client (streamed tokens), and the prompts and parsing
//! for the LLM path.
//! Must not: retrieve (the API passes the chunks it found through
//! `mnemo-search`), append events, or know who the caller is. Everything
//! but [`llm::openai`] and [`http`] is pure and deterministic.
//!
//! # Layout
//! - [`text`]: sentences, words, stop words (shared by the two below).
//! - [`cards`]: the offline card generator.
//! - [`extractive`]: the extractive answerer.
//! - [`citations`]: `[n]` markers found in streamed answer text.
//! - [`llm`]: the `Llm` trait, the chat-completions client and its SSE reader.
//! - [`http`]: outbound HTTP (the LLM; an identity provider's keys for the API).
//! - [`prompts`]: the LLM prompts (answers citing `[n]`, cards as JSON) and
//!   parsing the cards' reply.

pub mod cards;
pub mod citations;
pub mod extractive;
pub mod http;
pub mod llm;
pub mod prompts;
pub mod text;

pub use cards::{generate_cards, CardKind, CardLimits, GeneratedCard};
pub use citations::CitationTracker;
pub use extractive::{answer as extractive_answer, AnswerSentence, ExtractiveAnswer};
pub use llm::{ChatMessage, Llm, LlmConfig, LlmError, TokenStream};

/// A chunk of a learner's document, as retrieval or the read model gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub chunk_id: String,
    pub document_id: uuid::Uuid,
    /// The document's file name.
    pub title: String,
    pub page_start: u32,
    pub page_end: u32,
    pub text: String,
}
