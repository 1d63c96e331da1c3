//! The study-session aggregate: one sitting of a learner, from start to end.
//!
//! Rules (tests below, given/when/then):
//! - a session starts once; the same start again appends nothing, another
//!   start of the same id is refused (`AlreadyExists`);
//! - it ends once, not before it started; the same end again appends
//!   nothing, a different end of an ended session is refused.
//!
//! A session records when the learner sat down and got up (and optionally
//! the topic studied); which reviews belong to it follows from their
//! instants, so reviews never need a session id.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::LearnError;
use crate::owner::OwnerId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionCommand {
    Start {
        session_id: Uuid,
        owner: OwnerId,
        topic_id: Option<Uuid>,
        at: OffsetDateTime,
    },
    End {
        at: OffsetDateTime,
    },
}

/// Everything that can happen to a study session, on
/// `<ns>.ev.learn.<owner token>.session.<session id>`.
///
/// Every session event is consumed by the learning runner
/// (`mnemo-projector`'s learning projection: `learning_sessions`) and by
/// audit replay (`AuditService.ReplayLearningHistory` streams it;
/// `mnemo replay learner` folds it), both through
/// [`SessionView::apply`](super::learner::SessionView::apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    /// Emitted by the API (`LearningService.StartSession` → `Start`).
    /// Consumed by the learning runner (a `learning_sessions` row) and
    /// audit replay.
    SessionStarted {
        session_id: Uuid,
        owner: OwnerId,
        topic_id: Option<Uuid>,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Emitted by the API (`LearningService.EndSession` → `End`).
    /// Consumed by the learning runner (the row's end) and audit replay.
    SessionEnded {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl SessionEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionEnded { .. } => "SessionEnded",
        }
    }
}

impl DomainEvent for SessionEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl crate::schema::Upcast for SessionEvent {
    fn upcasters() -> &'static [Box<dyn cqrs_es::persist::EventUpcaster>] {
        &[]
    }
}

/// A session as its events describe it. `Default` is "not started".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: Option<Uuid>,
    pub owner: Option<OwnerId>,
    pub topic_id: Option<Uuid>,
    pub started_at: Option<OffsetDateTime>,
    pub ended_at: Option<OffsetDateTime>,
}

impl Session {
    /// Decides which events a command appends (pure).
    pub fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, LearnError> {
        match command {
            SessionCommand::Start {
                session_id,
                owner,
                topic_id,
                at,
            } => {
                if self.id.is_some() {
                    return if self.id == Some(session_id)
                        && self.topic_id == topic_id
                        && self.started_at == Some(at)
                    {
                        Ok(vec![])
                    } else {
                        Err(LearnError::AlreadyExists("session"))
                    };
                }
                Ok(vec![SessionEvent::SessionStarted {
                    session_id,
                    owner,
                    topic_id,
                    at,
                }])
            }
            SessionCommand::End { at } => {
                let started = self.started_at.ok_or(LearnError::NotFound("session"))?;
                if let Some(ended) = self.ended_at {
                    return if ended == at {
                        Ok(vec![])
                    } else {
                        Err(LearnError::FailedPrecondition(format!(
                            "the session already ended at {ended}"
                        )))
                    };
                }
                if at < started {
                    return Err(LearnError::InvalidInput(format!(
                        "a session cannot end ({at}) before it started ({started})"
                    )));
                }
                Ok(vec![SessionEvent::SessionEnded { at }])
            }
        }
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
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
            SessionEvent::SessionStarted {
                session_id,
                owner,
                topic_id,
                at,
            } => {
                self.id = Some(session_id);
                self.owner = Some(owner);
                self.topic_id = topic_id;
                self.started_at = Some(at);
            }
            SessionEvent::SessionEnded { at } => self.ended_at = Some(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;

    use super::*;

    fn start(at: OffsetDateTime) -> SessionCommand {
        SessionCommand::Start {
            session_id: Uuid::from_u128(3),
            owner: OwnerId::new("alice").unwrap(),
            topic_id: None,
            at,
        }
    }

    fn started() -> SessionEvent {
        SessionEvent::SessionStarted {
            session_id: Uuid::from_u128(3),
            owner: OwnerId::new("alice").unwrap(),
            topic_id: None,
            at: datetime!(2026-11-02 09:00 UTC),
        }
    }

    fn given() -> TestFramework<Session> {
        TestFramework::with(())
    }

    #[test]
    fn a_session_starts_once() {
        given()
            .given_no_previous_events()
            .when(start(datetime!(2026-11-02 09:00 UTC)))
            .then_expect_events(vec![started()]);
        given()
            .given(vec![started()])
            .when(start(datetime!(2026-11-02 09:00 UTC)))
            .then_expect_events(vec![]);
        given()
            .given(vec![started()])
            .when(start(datetime!(2026-11-03 09:00 UTC)))
            .then_expect_error(LearnError::AlreadyExists("session"));
    }

    #[test]
    fn a_session_ends_once_and_not_before_it_started() {
        let end = datetime!(2026-11-02 09:30 UTC);
        given()
            .given(vec![started()])
            .when(SessionCommand::End { at: end })
            .then_expect_events(vec![SessionEvent::SessionEnded { at: end }]);
        given()
            .given(vec![started(), SessionEvent::SessionEnded { at: end }])
            .when(SessionCommand::End { at: end })
            .then_expect_events(vec![]);
        given()
            .given(vec![started(), SessionEvent::SessionEnded { at: end }])
            .when(SessionCommand::End {
                at: datetime!(2026-11-02 10:00 UTC),
            })
            .then_expect_error(LearnError::FailedPrecondition(format!(
                "the session already ended at {end}"
            )));
        given()
            .given(vec![started()])
            .when(SessionCommand::End {
                at: datetime!(2026-11-02 08:00 UTC),
            })
            .then_expect_error(LearnError::InvalidInput(
                "a session cannot end (2026-11-02 8:00:00.0 +00:00:00) before it started (2026-11-02 9:00:00.0 +00:00:00)".into(),
            ));
        given()
            .given_no_previous_events()
            .when(SessionCommand::End { at: end })
            .then_expect_error(LearnError::NotFound("session"));
    }
}
