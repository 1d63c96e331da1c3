//! The access record: an admin reading or replaying another owner's data
//! leaves a trace in that owner's own history.
//!
//! Rules (tests below, given/when/then):
//! - an access is recorded once; the same record again appends nothing,
//!   another record under the same id is refused (`AlreadyExists`);
//! - who read is never the owner themself (reading your own data is no
//!   access to record).
//!
//! Its subject is the owner's (`<ns>.ev.learn.<owner token>.access.<id>`),
//! so the owner's history (`ReplayLearningHistory`) and
//! `AuditService.ListAccesses` show who read what, and when.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::LearnError;
use crate::owner::OwnerId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessCommand {
    Record {
        access_id: Uuid,
        /// Whose data was read.
        owner: OwnerId,
        /// Who read it (an admin).
        by: OwnerId,
        /// What was read: the call, e.g. `ReplayLearningHistory`.
        action: String,
        at: OffsetDateTime,
    },
}

/// What happened to an owner's data, on
/// `<ns>.ev.learn.<owner token>.access.<access id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccessEvent {
    /// Emitted by the API when an admin token reads or replays another
    /// owner's learning data (`ListCards`, `StudyStats`,
    /// `ReplayLearningHistory` with `owner` set), before it answers.
    /// Consumed by `AuditService.ListAccesses` and
    /// `ReplayLearningHistory` (the owner sees it in their history); the
    /// learning read model steps over it.
    OwnerDataAccessed {
        access_id: Uuid,
        owner: OwnerId,
        by: OwnerId,
        action: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

impl AccessEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::OwnerDataAccessed { .. } => "OwnerDataAccessed",
        }
    }
}

impl DomainEvent for AccessEvent {
    fn event_type(&self) -> String {
        self.name().to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl crate::schema::Upcast for AccessEvent {
    fn upcasters() -> &'static [Box<dyn cqrs_es::persist::EventUpcaster>] {
        &[]
    }
}

/// An access as its event describes it. `Default` is "not recorded".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub recorded: Option<AccessEvent>,
}

impl Access {
    /// Decides which events a command appends (pure).
    pub fn decide(&self, command: AccessCommand) -> Result<Vec<AccessEvent>, LearnError> {
        let AccessCommand::Record {
            access_id,
            owner,
            by,
            action,
            at,
        } = command;
        if by == owner {
            return Err(LearnError::InvalidInput(
                "an owner reading their own data is no access to record".into(),
            ));
        }
        let event = AccessEvent::OwnerDataAccessed {
            access_id,
            owner,
            by,
            action,
            at,
        };
        match &self.recorded {
            None => Ok(vec![event]),
            Some(same) if *same == event => Ok(vec![]),
            Some(_) => Err(LearnError::AlreadyExists("access")),
        }
    }
}

impl Aggregate for Access {
    const TYPE: &'static str = "access";
    type Command = AccessCommand;
    type Event = AccessEvent;
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
        self.recorded = Some(event);
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use time::macros::datetime;

    use super::*;

    fn record(by: &str) -> AccessCommand {
        AccessCommand::Record {
            access_id: Uuid::from_u128(7),
            owner: OwnerId::new("alice").unwrap(),
            by: OwnerId::new(by).unwrap(),
            action: "ReplayLearningHistory".into(),
            at: datetime!(2026-12-04 10:00 UTC),
        }
    }

    fn recorded() -> AccessEvent {
        AccessEvent::OwnerDataAccessed {
            access_id: Uuid::from_u128(7),
            owner: OwnerId::new("alice").unwrap(),
            by: OwnerId::new("ops").unwrap(),
            action: "ReplayLearningHistory".into(),
            at: datetime!(2026-12-04 10:00 UTC),
        }
    }

    #[test]
    fn an_access_is_recorded_once() {
        TestFramework::<Access>::with(())
            .given_no_previous_events()
            .when(record("ops"))
            .then_expect_events(vec![recorded()]);
        TestFramework::<Access>::with(())
            .given(vec![recorded()])
            .when(record("ops"))
            .then_expect_events(vec![]);
        TestFramework::<Access>::with(())
            .given(vec![recorded()])
            .when(record("someone-else"))
            .then_expect_error(LearnError::AlreadyExists("access"));
    }

    #[test]
    fn reading_your_own_data_is_no_access() {
        TestFramework::<Access>::with(())
            .given_no_previous_events()
            .when(record("alice"))
            .then_expect_error(LearnError::InvalidInput(
                "an owner reading their own data is no access to record".into(),
            ));
    }
}
