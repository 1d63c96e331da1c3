//! `Ask`: the request is checked and the sources retrieved before the
//! stream starts (so bad input and retrieval failures are plain statuses);
//! a task then streams the sources, the answer's deltas and the done
//! message, recording `QuestionAsked` in between.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use mnemo_domain::learn::question::MAX_QUESTION_CHARS;
use mnemo_domain::learn::{AskedQuestion, QuestionCommand, RetrievedChunk};
use mnemo_proto::v1 as pb;
use mnemo_qa::Passage;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::Instrument;
use uuid::Uuid;

use super::answer::{self, Answer};
use crate::auth::Caller;
use crate::search::{document_filter, retrieve, Retrieval};
use crate::server::ApiState;

/// Most sources per question.
pub const MAX_K: u32 = 20;
/// Sources when the request says 0.
pub const DEFAULT_K: u32 = 5;

pub type AskStream = Pin<Box<dyn Stream<Item = Result<pb::AskResponse, Status>> + Send>>;

/// Checks the request, retrieves, and starts the answering task.
pub async fn ask(
    state: Arc<ApiState>,
    who: Caller,
    metadata: HashMap<String, String>,
    r: pb::AskRequest,
) -> Result<AskStream, Status> {
    let question = r.question.trim().to_owned();
    if question.is_empty() {
        return Err(Status::invalid_argument("the question is empty"));
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return Err(Status::invalid_argument(format!(
            "the question is longer than {MAX_QUESTION_CHARS} characters"
        )));
    }
    let k = match r.k {
        0 => DEFAULT_K,
        k if k > MAX_K => {
            return Err(Status::invalid_argument(format!(
                "k must be 1..={MAX_K}, got {k}"
            )))
        }
        k => k,
    } as usize;
    let documents = document_filter(&r.document_ids)?;
    let db = state.read_db().await?;
    if let Some(ids) = &documents {
        let known = mnemo_search::passages::owned_documents(&*db, &who.owner.token(), ids)
            .await
            .map_err(|e| crate::status::from_search_error(&e))?;
        if let Some(missing) = ids.iter().find(|id| !known.contains(id)) {
            return Err(Status::not_found(format!("document {missing} not found")));
        }
    }
    let found = retrieve(
        &state,
        &who,
        Retrieval {
            text: &question,
            k,
            documents,
            topic: None,
            mode: pb::SearchMode::Hybrid,
            min_sequence: r.min_sequence,
        },
    )
    .await?;
    let ids: Vec<String> = found
        .hits
        .iter()
        .map(|h| h.details.chunk_id.clone())
        .collect();
    let mut texts = mnemo_search::passages::by_ids(&*db, &who.owner.token(), &ids)
        .await
        .map_err(|e| crate::status::from_search_error(&e))?;
    // In retrieval order; a chunk dropped since retrieval is left out.
    let mut sources = Vec::new();
    let mut passages = Vec::new();
    for h in &found.hits {
        let Some(pos) = texts.iter().position(|t| t.chunk_id == h.details.chunk_id) else {
            continue;
        };
        let t = texts.swap_remove(pos);
        sources.push(pb::AskSource {
            n: sources.len() as u32 + 1,
            chunk_id: t.chunk_id.clone(),
            document_id: t.document_id.to_string(),
            title: t.title.clone(),
            page_start: t.page_start,
            page_end: t.page_end,
            snippet: h.details.snippet.clone(),
        });
        passages.push(Passage {
            chunk_id: t.chunk_id,
            document_id: t.document_id,
            title: t.title,
            page_start: t.page_start,
            page_end: t.page_end,
            text: t.text,
        });
    }
    let extractive_only = pb::AnswerMode::try_from(r.mode) == Ok(pb::AnswerMode::Extractive);
    let llm = state.qa.llm.clone().filter(|_| !extractive_only);
    let question_id = Uuid::now_v7();
    let (tx, rx) = mpsc::channel(64);
    let span = tracing::info_span!("ask", %question_id, owner = %who.owner.token(), sources = passages.len());
    tokio::spawn(
        async move {
            let out = Out(tx);
            if !out
                .send(pb::ask_response::Part::Sources(pb::AskSources { sources }))
                .await
            {
                return;
            }
            let Some(answer) = answer::produce(llm.as_deref(), &question, &passages, &out).await
            else {
                tracing::debug!("the client went away; nothing recorded");
                return;
            };
            match record(
                &state,
                &who,
                &metadata,
                question_id,
                &question,
                &passages,
                &answer,
            )
            .await
            {
                Ok(done) => {
                    out.send(pb::ask_response::Part::Done(done)).await;
                }
                Err(status) => {
                    tracing::warn!(%status, "recording the question failed");
                    let _ = out.0.send(Err(status)).await;
                }
            }
        }
        .instrument(span),
    );
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// The stream's sending side.
pub struct Out(mpsc::Sender<Result<pb::AskResponse, Status>>);

impl Out {
    /// Sends a part; false when the client has gone.
    pub async fn send(&self, part: pb::ask_response::Part) -> bool {
        self.0
            .send(Ok(pb::AskResponse { part: Some(part) }))
            .await
            .is_ok()
    }
}

/// Appends `QuestionAsked`; the done message for the stream.
async fn record(
    state: &ApiState,
    who: &Caller,
    metadata: &HashMap<String, String>,
    question_id: Uuid,
    question: &str,
    passages: &[Passage],
    answer: &Answer,
) -> Result<pb::AskDone, Status> {
    let retrieved: Vec<RetrievedChunk> = passages
        .iter()
        .map(|p| RetrievedChunk {
            chunk_id: p.chunk_id.clone(),
            document_id: p.document_id.into(),
            page_start: p.page_start,
            page_end: p.page_end,
        })
        .collect();
    let asked = AskedQuestion {
        question_id,
        owner: who.owner.clone(),
        question: question.to_owned(),
        retrieved,
        answer: answer.text.clone(),
        citations: answer.citations.clone(),
        produced_by: answer.produced_by.clone(),
        at: time::OffsetDateTime::now_utc(),
    };
    let id = mnemo_domain::learn::aggregate_id(&who.owner, "question", &question_id);
    let done = state
        .qa
        .questions
        .execute(&id, QuestionCommand::Record(asked), metadata)
        .await
        .map_err(|e| crate::status::from_learn_execute_error(&e))?;
    let (produced_by, model) = match &answer.produced_by {
        mnemo_domain::learn::ProducedBy::Extractive => ("extractive", String::new()),
        mnemo_domain::learn::ProducedBy::Llm { model } => ("llm", model.clone()),
    };
    Ok(pb::AskDone {
        question_id: question_id.to_string(),
        sequence: done.last_sequence,
        produced_by: produced_by.into(),
        model,
        fallback_reason: answer.fallback_reason.clone().unwrap_or_default(),
        citations: answer
            .citations
            .iter()
            .map(|c| pb::AnswerCitation {
                n: c.n,
                chunk_id: c.chunk_id.clone(),
                document_id: c.document_id.to_string(),
                page: c.page,
            })
            .collect(),
        answer: answer.text.clone(),
    })
}
