//! Running commands on the learning aggregates: the aggregate id is always
//! built from the caller's owner token, so a command can only ever reach
//! the caller's own subjects.

use std::collections::HashMap;
use std::sync::Arc;

use mnemo_bus::commands::Executed;
use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::learn::card::CardServices;
use mnemo_domain::learn::schedule::Scheduler;
use mnemo_domain::learn::{
    aggregate_id, Card, CardCommand, Fsrs, Session, SessionCommand, Topic, TopicCommand,
};
use mnemo_domain::OwnerId;
use tonic::Status;
use tracing::Instrument;
use uuid::Uuid;

use crate::status;

/// One executor per learning aggregate, on `<ns>.ev.learn.…`.
pub struct LearningCommands {
    pub cards: CommandExecutor<Card>,
    /// The cards' scheduler (also the executor's): previews use it too.
    pub scheduler: Arc<dyn Scheduler>,
    pub topics: CommandExecutor<Topic>,
    pub sessions: CommandExecutor<Session>,
}

impl LearningCommands {
    /// Cards are scheduled by FSRS-6 with py-fsrs 6.3.2's defaults.
    pub fn new(bus: &Bus, cache: usize) -> Self {
        let scheduler: Arc<dyn Scheduler> = Arc::new(Fsrs::default());
        Self {
            cards: CommandExecutor::new(
                JetStreamEventStore::new(bus, "learn", cache),
                CardServices {
                    scheduler: scheduler.clone(),
                },
                RetryPolicy::default(),
            ),
            scheduler,
            topics: CommandExecutor::new(
                JetStreamEventStore::new(bus, "learn", cache),
                (),
                RetryPolicy::default(),
            ),
            sessions: CommandExecutor::new(
                JetStreamEventStore::new(bus, "learn", cache),
                (),
                RetryPolicy::default(),
            ),
        }
    }

    pub async fn card(
        &self,
        owner: &OwnerId,
        card_id: Uuid,
        command: CardCommand,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<Card>, Status> {
        self.cards
            .execute(&aggregate_id(owner, "card", &card_id), command, metadata)
            .instrument(tracing::info_span!("card_command", card_id = %card_id))
            .await
            .map_err(|e| status::from_learn_execute_error(&e))
    }

    pub async fn topic(
        &self,
        owner: &OwnerId,
        topic_id: Uuid,
        command: TopicCommand,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<Topic>, Status> {
        self.topics
            .execute(&aggregate_id(owner, "topic", &topic_id), command, metadata)
            .instrument(tracing::info_span!("topic_command", topic_id = %topic_id))
            .await
            .map_err(|e| status::from_learn_execute_error(&e))
    }

    pub async fn session(
        &self,
        owner: &OwnerId,
        session_id: Uuid,
        command: SessionCommand,
        metadata: &HashMap<String, String>,
    ) -> Result<Executed<Session>, Status> {
        self.sessions
            .execute(
                &aggregate_id(owner, "session", &session_id),
                command,
                metadata,
            )
            .instrument(tracing::info_span!("session_command", session_id = %session_id))
            .await
            .map_err(|e| status::from_learn_execute_error(&e))
    }
}
