//! The question aggregate: one question a learner asked, the chunks that
//! were retrieved for it, the answer and how it was produced.
//!
//! A question is recorded once, finished: the answer is streamed to the
//! learner first and the whole exchange is then one command
//! ([`QuestionCommand::Record`]) appending one [`QuestionEvent::QuestionAsked`].
//! Nothing is recorded for an answer that was never completed.
//!
//! Rules (tests below, given/when/then):
//! - the question text is not blank;
//! - every citation points at one of the retrieved chunks (by its 1-based
//!   number, with the same chunk id and document);
//! - recording the same question again is a no-op; another record under the
//!   same id is refused (`AlreadyExists`).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::LearnError;
use crate::ids::DocumentId;
use crate::owner::OwnerId;

/// Longest question, in characters.
pub const MAX_QUESTION_CHARS: usize = 2_000;

/// A chunk retrieval found for the question (the answer's sources, in
/// rank order; source `n` is `retrieved[n - 1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrievedChunk {
    pub chunk_id: String,
    pub document_id: DocumentId,
    pub page_start: u32,
    pub page_end: u32,
}

/// One source the answer cites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// 1-based number of the source in `retrieved` (the `[n]` in the answer).
    pub n: u32,
    pub chunk_id: String,
    pub document_id: DocumentId,
    /// The page the cited text is on (the chunk's first page when the chunk
    /// spans several).
    pub page: u32,
}

/// How the answer was produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProducedBy {
    /// The best sentences of the retrieved chunks, offline.
    Extractive,
    /// A chat-completions model.
    Llm { model: String },
}

/// Everything a finished question is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskedQuestion {
    pub question_id: Uuid,
    pub owner: OwnerId,
    pub question: String,
    pub retrieved: Vec<RetrievedChunk>,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub produced_by: ProducedBy,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QuestionCommand {
    /// Records a question with its finished answer (the API, after `Ask`).
    Record(AskedQuestion),
}

/// Everything that can happen to a question, on
/// `<ns>.ev.learn.<owner token>.question.<question id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum QuestionEvent {
    /// A question was answered. Emitted by the API (`QaService.Ask` →
    /// `Record`, once the answer has finished streaming).
    /// Consumed by audit replay alone: `AuditService.ReplayLearningHistory`
    /// streams it with the learner's other events. The learning runner
    /// reads past it (no read model holds questions) and the learner fold
    /// behind `mnemo replay learner` skips it
    /// ([`LearnerEvent::from_json`](super::learner::LearnerEvent::from_json)).
    QuestionAsked(AskedQuestion),
}

impl QuestionEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::QuestionAsked(_) => "QuestionAsked",
        }
    }
}

impl DomainEvent for QuestionEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl crate::schema::Upcast for QuestionEvent {
    fn upcasters() -> &'static [Box<dyn cqrs_es::persist::EventUpcaster>] {
        &[]
    }
}

/// A question as its event describes it. `Default` is "not asked yet".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub asked: Option<AskedQuestion>,
}

impl Question {
    /// Decides which events a command appends (pure).
    pub fn decide(&self, command: QuestionCommand) -> Result<Vec<QuestionEvent>, LearnError> {
        let QuestionCommand::Record(asked) = command;
        if let Some(existing) = &self.asked {
            return if existing == &asked {
                Ok(vec![])
            } else {
                Err(LearnError::AlreadyExists("question"))
            };
        }
        validate(&asked)?;
        Ok(vec![QuestionEvent::QuestionAsked(asked)])
    }
}

fn validate(q: &AskedQuestion) -> Result<(), LearnError> {
    if q.question.trim().is_empty() {
        return Err(LearnError::InvalidInput("the question is empty".into()));
    }
    if q.question.chars().count() > MAX_QUESTION_CHARS {
        return Err(LearnError::InvalidInput(format!(
            "the question is longer than {MAX_QUESTION_CHARS} characters"
        )));
    }
    for c in &q.citations {
        let source = (c.n as usize)
            .checked_sub(1)
            .and_then(|i| q.retrieved.get(i));
        match source {
            Some(s) if s.chunk_id == c.chunk_id && s.document_id == c.document_id => {}
            _ => {
                return Err(LearnError::InvalidInput(format!(
                    "citation [{}] does not name a retrieved chunk",
                    c.n
                )))
            }
        }
    }
    Ok(())
}

impl Aggregate for Question {
    const TYPE: &'static str = "question";
    type Command = QuestionCommand;
    type Event = QuestionEvent;
    type Error = LearnError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            QuestionEvent::QuestionAsked(asked) => self.asked = Some(asked),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;

    use super::*;

    fn given() -> TestFramework<Question> {
        TestFramework::with(())
    }

    fn document() -> DocumentId {
        serde_json::from_str("\"0190b5a0-0000-7000-8000-000000000001\"").unwrap()
    }

    fn asked() -> AskedQuestion {
        AskedQuestion {
            question_id: Uuid::from_u128(9),
            owner: OwnerId::new("alice").unwrap(),
            question: "What makes ATP?".into(),
            retrieved: vec![
                RetrievedChunk {
                    chunk_id: "c-0".into(),
                    document_id: document(),
                    page_start: 1,
                    page_end: 2,
                },
                RetrievedChunk {
                    chunk_id: "c-1".into(),
                    document_id: document(),
                    page_start: 3,
                    page_end: 3,
                },
            ],
            answer: "Mitochondria produce most of the cell's ATP. [2]".into(),
            citations: vec![Citation {
                n: 2,
                chunk_id: "c-1".into(),
                document_id: document(),
                page: 3,
            }],
            produced_by: ProducedBy::Extractive,
            at: datetime!(2026-11-02 10:00 UTC),
        }
    }

    #[test]
    fn a_finished_question_is_recorded_once() {
        given()
            .given_no_previous_events()
            .when(QuestionCommand::Record(asked()))
            .then_expect_events(vec![QuestionEvent::QuestionAsked(asked())]);
        given()
            .given(vec![QuestionEvent::QuestionAsked(asked())])
            .when(QuestionCommand::Record(asked()))
            .then_expect_events(vec![]);
        given()
            .given(vec![QuestionEvent::QuestionAsked(asked())])
            .when(QuestionCommand::Record(AskedQuestion {
                answer: "something else".into(),
                ..asked()
            }))
            .then_expect_error(LearnError::AlreadyExists("question"));
    }

    #[test]
    fn citations_must_name_a_retrieved_chunk() {
        let wrong_chunk = Citation {
            chunk_id: "c-0".into(),
            ..asked().citations[0].clone()
        };
        let out_of_range = Citation {
            n: 3,
            ..asked().citations[0].clone()
        };
        for c in [wrong_chunk, out_of_range] {
            let n = c.n;
            given()
                .given_no_previous_events()
                .when(QuestionCommand::Record(AskedQuestion {
                    citations: vec![c],
                    ..asked()
                }))
                .then_expect_error(LearnError::InvalidInput(format!(
                    "citation [{n}] does not name a retrieved chunk"
                )));
        }
    }

    #[test]
    fn a_blank_question_is_refused() {
        given()
            .given_no_previous_events()
            .when(QuestionCommand::Record(AskedQuestion {
                question: "  ".into(),
                ..asked()
            }))
            .then_expect_error(LearnError::InvalidInput("the question is empty".into()));
    }

    #[test]
    fn the_payload_names_how_the_answer_was_produced() {
        let e = QuestionEvent::QuestionAsked(AskedQuestion {
            produced_by: ProducedBy::Llm {
                model: "gpt-test".into(),
            },
            ..asked()
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "QuestionAsked");
        assert_eq!(
            json["data"]["produced_by"],
            serde_json::json!({"kind": "llm", "model": "gpt-test"})
        );
        assert_eq!(json["data"]["at"], "2026-11-02T10:00:00Z");
        let back: QuestionEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }
}
