//! Admin reads leave a trace: before an admin token reads or replays
//! another owner's learning data, `OwnerDataAccessed` is appended to that
//! owner's history (`mnemo_domain::learn::access`); a read that cannot be
//! recorded is not served. `AuditService.ListAccesses` lists them.

use std::collections::HashMap;

use async_nats::jetstream::stream::DirectGetErrorKind;
use mnemo_bus::event_store::decode_message;
use mnemo_bus::{Bus, CommandExecutor, JetStreamEventStore, RetryPolicy};
use mnemo_domain::learn::{aggregate_id, Access, AccessCommand, AccessEvent};
use mnemo_domain::OwnerId;
use mnemo_proto::v1 as pb;
use time::OffsetDateTime;
use tonic::Status;
use uuid::Uuid;

use crate::auth::Caller;
use crate::convert::timestamp;
use crate::status;

/// Where admin reads are recorded.
pub struct AccessLog {
    executor: CommandExecutor<Access>,
    bus: Bus,
}

impl AccessLog {
    pub fn new(bus: &Bus) -> Self {
        Self {
            executor: CommandExecutor::new(
                JetStreamEventStore::new(bus, "learn", 0),
                (),
                RetryPolicy::default(),
            ),
            bus: bus.clone(),
        }
    }

    /// Records that `who` reads `owner`'s data with `action` — nothing when
    /// they are the same person. Fails (and the read must not be served)
    /// when the record cannot be appended.
    pub async fn record(
        &self,
        who: &Caller,
        owner: &OwnerId,
        action: &str,
        metadata: &HashMap<String, String>,
    ) -> Result<(), Status> {
        if who.owner == *owner {
            return Ok(());
        }
        let access_id = Uuid::now_v7();
        let command = AccessCommand::Record {
            access_id,
            owner: owner.clone(),
            by: who.owner.clone(),
            action: action.to_owned(),
            at: OffsetDateTime::now_utc(),
        };
        self.executor
            .execute(
                &aggregate_id(owner, "access", &access_id),
                command,
                metadata,
            )
            .await
            .map_err(|e| status::from_learn_execute_error(&e))?;
        tracing::info!(by = %who.owner.token(), owner = %owner.token(), action, "admin read recorded");
        Ok(())
    }

    /// Every recorded access to `owner`'s data, oldest first.
    pub async fn list(&self, owner: &OwnerId) -> Result<Vec<pb::DataAccess>, Status> {
        let filter = format!(
            "{}.{}.access.>",
            self.bus.namespace.events_of("learn"),
            owner.token()
        );
        let mut out = Vec::new();
        let mut next = 1;
        loop {
            let msg = match self
                .bus
                .events
                .direct_get_next_for_subject(filter.as_str(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(status::unavailable("the event log", &e)),
            };
            next = msg.sequence + 1;
            let stored = match decode_message::<AccessEvent>(
                &self.bus.keys,
                msg.subject.as_str(),
                msg.sequence,
                Some(&msg.headers),
                &msg.payload,
            )
            .await
            .map_err(|e| status::from_bus_error(&e))?
            {
                mnemo_bus::event_store::Decoded::Events(stored) => stored,
                // An erased owner's: nothing of theirs is listed.
                mnemo_bus::event_store::Decoded::Erased(_) => return Ok(Vec::new()),
            };
            for event in stored.events {
                let AccessEvent::OwnerDataAccessed { by, action, at, .. } = event;
                out.push(pb::DataAccess {
                    by: by.as_str().to_owned(),
                    action,
                    at: Some(timestamp(at)),
                    sequence: msg.sequence,
                });
            }
        }
    }
}
