//! Producing an answer as stream deltas: the LLM's tokens when one is
//! configured (citations found in its text), else — or when it fails —
//! the extractive answer. Every wait on the LLM is bounded by
//! [`LLM_WAIT`]; a failure after tokens were sent is announced with a
//! `restart` delta before the extractive answer, so a client never keeps
//! half an LLM answer as if it were whole.

use std::time::Duration;

use futures::StreamExt;
use mnemo_domain::learn::{Citation, ProducedBy};
use mnemo_proto::v1 as pb;
use mnemo_qa::{CitationTracker, Llm, Passage};
use tokio::time::timeout;

use super::ask::Out;

/// Longest wait for the LLM's first response and between two tokens.
pub const LLM_WAIT: Duration = Duration::from_secs(60);
/// Sentences in an extractive answer.
pub const MAX_SENTENCES: usize = 3;
/// The answer when retrieval found nothing.
pub const NOTHING_FOUND: &str = "Nothing in your documents matches this question.";

/// A finished answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    pub citations: Vec<Citation>,
    pub produced_by: ProducedBy,
    /// Why the configured LLM was not used.
    pub fallback_reason: Option<String>,
}

fn delta(text: &str, citations: Vec<u32>, restart: bool) -> pb::ask_response::Part {
    pb::ask_response::Part::Delta(pb::AnswerDelta {
        text: text.to_owned(),
        citations,
        restart,
    })
}

fn citation(passages: &[Passage], n: u32) -> Option<Citation> {
    let p = passages.get((n as usize).checked_sub(1)?)?;
    Some(Citation {
        n,
        chunk_id: p.chunk_id.clone(),
        document_id: p.document_id.into(),
        page: p.page_start,
    })
}

/// Streams the answer's deltas into `out`; None when the client went away.
pub async fn produce(
    llm: Option<&dyn Llm>,
    question: &str,
    passages: &[Passage],
    out: &Out,
) -> Option<Answer> {
    if passages.is_empty() {
        if !out.send(delta(NOTHING_FOUND, vec![], false)).await {
            return None;
        }
        return Some(Answer {
            text: NOTHING_FOUND.into(),
            citations: vec![],
            produced_by: ProducedBy::Extractive,
            fallback_reason: None,
        });
    }
    let (mut fallback, mut restart) = (None, false);
    if let Some(llm) = llm {
        match from_llm(llm, question, passages, out).await {
            Outcome::Done(answer) => return Some(answer),
            Outcome::ClientGone => return None,
            Outcome::Failed { reason, sent_any } => {
                tracing::warn!(%reason, "the LLM failed; answering extractively");
                fallback = Some(reason);
                restart = sent_any;
            }
        }
    }
    extractive(question, passages, out, restart, fallback).await
}

enum Outcome {
    Done(Answer),
    ClientGone,
    Failed { reason: String, sent_any: bool },
}

async fn from_llm(llm: &dyn Llm, question: &str, passages: &[Passage], out: &Out) -> Outcome {
    let messages = mnemo_qa::prompts::answer_messages(question, passages);
    let mut stream = match timeout(LLM_WAIT, llm.chat(&messages)).await {
        Err(_) => {
            return Outcome::Failed {
                reason: format!("the LLM did not answer within {LLM_WAIT:?}"),
                sent_any: false,
            }
        }
        Ok(Err(e)) => {
            return Outcome::Failed {
                reason: e.to_string(),
                sent_any: false,
            }
        }
        Ok(Ok(s)) => s,
    };
    let mut tracker = CitationTracker::new(passages.len() as u32);
    let mut sent_any = false;
    loop {
        match timeout(LLM_WAIT, stream.next()).await {
            Err(_) => {
                return Outcome::Failed {
                    reason: format!("the LLM stalled for {LLM_WAIT:?}"),
                    sent_any,
                }
            }
            Ok(Some(Err(e))) => {
                return Outcome::Failed {
                    reason: e.to_string(),
                    sent_any,
                }
            }
            Ok(None) => break,
            Ok(Some(Ok(token))) => {
                let cited = tracker.push(&token);
                if !out.send(delta(&token, cited, false)).await {
                    return Outcome::ClientGone;
                }
                sent_any = true;
            }
        }
    }
    if tracker.text().trim().is_empty() {
        return Outcome::Failed {
            reason: "the LLM returned an empty answer".into(),
            sent_any,
        };
    }
    Outcome::Done(Answer {
        text: tracker.text().trim().to_owned(),
        citations: tracker
            .cited()
            .iter()
            .filter_map(|n| citation(passages, *n))
            .collect(),
        produced_by: ProducedBy::Llm {
            model: llm.model().to_owned(),
        },
        fallback_reason: None,
    })
}

async fn extractive(
    question: &str,
    passages: &[Passage],
    out: &Out,
    restart: bool,
    fallback_reason: Option<String>,
) -> Option<Answer> {
    if restart && !out.send(delta("", vec![], true)).await {
        return None;
    }
    let found = mnemo_qa::extractive_answer(question, passages, MAX_SENTENCES);
    if found.sentences.is_empty() {
        // Sources of headings and fragments only.
        if !out.send(delta(NOTHING_FOUND, vec![], false)).await {
            return None;
        }
        return Some(Answer {
            text: NOTHING_FOUND.into(),
            citations: vec![],
            produced_by: ProducedBy::Extractive,
            fallback_reason,
        });
    }
    let mut text = String::new();
    let mut cited: Vec<u32> = Vec::new();
    for s in &found.sentences {
        let n = s.source as u32 + 1;
        let sep = if text.is_empty() { "" } else { " " };
        let piece = format!("{sep}{} [{n}]", s.text);
        if !out.send(delta(&piece, vec![n], false)).await {
            return None;
        }
        text.push_str(&piece);
        if !cited.contains(&n) {
            cited.push(n);
        }
    }
    Some(Answer {
        text,
        citations: cited
            .into_iter()
            .filter_map(|n| citation(passages, n))
            .collect(),
        produced_by: ProducedBy::Extractive,
        fallback_reason,
    })
}
