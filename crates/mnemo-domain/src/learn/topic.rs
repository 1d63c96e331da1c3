//! The topic aggregate: a named subject a learner studies, with the
//! documents attached to it (search and card generation can be scoped to a
//! topic).

use std::collections::BTreeSet;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::LearnError;
use crate::ids::DocumentId;
use crate::owner::OwnerId;

/// Longest topic name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicCommand {
    Create {
        topic_id: Uuid,
        owner: OwnerId,
        name: String,
    },
    Rename {
        name: String,
    },
    Attach {
        document_id: DocumentId,
    },
    Detach {
        document_id: DocumentId,
    },
}

/// Everything that can happen to a topic, on
/// `<ns>.ev.learn.<owner token>.topic.<topic id>`.
///
/// Every topic event is consumed by the learning runner
/// (`mnemo-projector`'s learning projection: `learning_topics` and
/// `learning_topic_documents`) and by audit replay
/// (`AuditService.ReplayLearningHistory` streams it; `mnemo replay learner`
/// folds it), both through [`TopicView::apply`](super::learner::TopicView::apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TopicEvent {
    /// Emitted by the API (`LearningService.CreateTopic` → `Create`).
    /// Consumed by the learning runner (a `learning_topics` row) and audit
    /// replay.
    TopicCreated {
        topic_id: Uuid,
        owner: OwnerId,
        name: String,
    },
    /// Emitted by the API (`LearningService.RenameTopic` → `Rename`).
    /// Consumed by the learning runner (the row's name) and audit replay.
    TopicRenamed { name: String },
    /// Emitted by the API (`LearningService.AttachDocument` → `Attach`).
    /// Consumed by the learning runner (a `learning_topic_documents` row)
    /// and audit replay.
    DocumentAttached { document_id: DocumentId },
    /// Emitted by the aggregate's `Detach` alone: no API call sends it
    /// yet. Consumed by the learning runner (removes the
    /// `learning_topic_documents` row) and audit replay.
    DocumentDetached { document_id: DocumentId },
}

impl TopicEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::TopicCreated { .. } => "TopicCreated",
            Self::TopicRenamed { .. } => "TopicRenamed",
            Self::DocumentAttached { .. } => "DocumentAttached",
            Self::DocumentDetached { .. } => "DocumentDetached",
        }
    }
}

impl DomainEvent for TopicEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl crate::schema::Upcast for TopicEvent {
    fn upcasters() -> &'static [Box<dyn cqrs_es::persist::EventUpcaster>] {
        &[]
    }
}

/// A topic as its events describe it. `Default` is "does not exist yet".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub id: Option<Uuid>,
    pub owner: Option<OwnerId>,
    pub name: String,
    pub documents: BTreeSet<DocumentId>,
}

fn valid_name(name: &str) -> Result<String, LearnError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(LearnError::InvalidInput("a topic needs a name".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(LearnError::InvalidInput(format!(
            "a topic name has at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

impl Topic {
    /// Decides which events a command appends (pure).
    pub fn decide(&self, command: TopicCommand) -> Result<Vec<TopicEvent>, LearnError> {
        use TopicCommand as C;
        use TopicEvent as E;
        if !matches!(command, C::Create { .. }) && self.id.is_none() {
            return Err(LearnError::NotFound("topic"));
        }
        Ok(match command {
            C::Create {
                topic_id,
                owner,
                name,
            } => {
                let name = valid_name(&name)?;
                if self.id.is_some() {
                    if self.id == Some(topic_id) && self.name == name {
                        return Ok(vec![]);
                    }
                    return Err(LearnError::AlreadyExists("topic"));
                }
                vec![E::TopicCreated {
                    topic_id,
                    owner,
                    name,
                }]
            }
            C::Rename { name } => {
                let name = valid_name(&name)?;
                if name == self.name {
                    vec![]
                } else {
                    vec![E::TopicRenamed { name }]
                }
            }
            C::Attach { document_id } => {
                if self.documents.contains(&document_id) {
                    vec![]
                } else {
                    vec![E::DocumentAttached { document_id }]
                }
            }
            C::Detach { document_id } => {
                if self.documents.contains(&document_id) {
                    vec![E::DocumentDetached { document_id }]
                } else {
                    vec![]
                }
            }
        })
    }
}

impl Aggregate for Topic {
    const TYPE: &'static str = "topic";
    type Command = TopicCommand;
    type Event = TopicEvent;
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
        use TopicEvent as E;
        match event {
            E::TopicCreated {
                topic_id,
                owner,
                name,
            } => {
                self.id = Some(topic_id);
                self.owner = Some(owner);
                self.name = name;
            }
            E::TopicRenamed { name } => self.name = name,
            E::DocumentAttached { document_id } => {
                self.documents.insert(document_id);
            }
            E::DocumentDetached { document_id } => {
                self.documents.remove(&document_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    fn created() -> TopicEvent {
        TopicEvent::TopicCreated {
            topic_id: Uuid::from_u128(1),
            owner: OwnerId::new("alice").unwrap(),
            name: "Cell biology".into(),
        }
    }

    fn doc() -> DocumentId {
        Uuid::from_u128(9).into()
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        TestFramework::<Topic>::with(())
            .given_no_previous_events()
            .when(TopicCommand::Create {
                topic_id: Uuid::from_u128(1),
                owner: OwnerId::new("alice").unwrap(),
                name: "  Cell biology ".into(),
            })
            .then_expect_events(vec![created()]);
        TestFramework::<Topic>::with(())
            .given(vec![created()])
            .when(TopicCommand::Rename { name: "  ".into() })
            .then_expect_error(LearnError::InvalidInput("a topic needs a name".into()));
    }

    #[test]
    fn attaching_twice_attaches_once_and_detach_needs_it_attached() {
        TestFramework::<Topic>::with(())
            .given(vec![
                created(),
                TopicEvent::DocumentAttached { document_id: doc() },
            ])
            .when(TopicCommand::Attach { document_id: doc() })
            .then_expect_events(vec![]);
        TestFramework::<Topic>::with(())
            .given(vec![created()])
            .when(TopicCommand::Detach { document_id: doc() })
            .then_expect_events(vec![]);
        TestFramework::<Topic>::with(())
            .given_no_previous_events()
            .when(TopicCommand::Attach { document_id: doc() })
            .then_expect_error(LearnError::NotFound("topic"));
    }
}
