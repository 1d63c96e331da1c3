//! `AccountService.EraseLearner`: a learner erased by crypto-shredding
//! (decision 022; the bus's part is `mnemo_bus::erase`).
//!
//! The owner themself with a token issued in the last [`FRESH_SIGN_IN`]
//! (an irreversible call asks for a fresh sign-in, not a month-old link),
//! or an admin token naming `owner`; `confirm` must repeat the owner id.
//! The API writes the marker and `LearnerErased`
//! (`mnemo_bus::erase::request_erasure`); the projector shreds the key and
//! files when it applies them. The call returns once the projector's two
//! checkpoints and this API's search index have passed the two events and
//! the key is erased on disk (bounded by [`CLEAN_WAIT`]), so a client that
//! reads right after sees nothing of the learner.

use std::sync::Arc;
use std::time::Duration;

use mnemo_proto::v1 as pb;
use mnemo_proto::v1::account_service_server::AccountService;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::server::ApiState;
use crate::status;

/// Longest the call waits for the read models to drop the learner.
pub const CLEAN_WAIT: Duration = Duration::from_secs(10);

/// How recent a learner's token must be for them to erase themselves.
pub const FRESH_SIGN_IN: Duration = Duration::from_secs(15 * 60);

pub struct AccountApi {
    state: Arc<ApiState>,
}

impl AccountApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn erase_learner(
        &self,
        req: Request<pb::EraseLearnerRequest>,
    ) -> Result<Response<pb::EraseLearnerResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        let requested = r.owner.trim();
        let owner = if requested.is_empty() || requested == who.owner.as_str() {
            who.owner.clone()
        } else if who.admin {
            mnemo_domain::OwnerId::new(requested)
                .map_err(|e| Status::invalid_argument(format!("owner: {e}")))?
        } else {
            return Err(Status::permission_denied(
                "only the learner themself or an admin token may erase a learner",
            ));
        };
        if r.confirm != owner.as_str() {
            return Err(Status::invalid_argument(
                "confirm must repeat the owner id being erased: erasing cannot be undone",
            ));
        }
        let by = if owner == who.owner { "owner" } else { "admin" };
        if by == "owner" && !who.admin && !who.signed_in_within(FRESH_SIGN_IN) {
            return Err(Status::failed_precondition(format!(
                "erasing yourself needs a token issued in the last {} minutes: sign in again",
                FRESH_SIGN_IN.as_secs() / 60
            )));
        }
        let token = owner.token();
        tracing::warn!(owner = %token, requested_by = %who.owner.token(), by, "erasing a learner");
        // Its own task: a client that goes away (or the handler's time
        // limit) cannot cut an erasure between its steps.
        let bus = self.state.bus.clone();
        let (erasing, by) = (token.clone(), by.to_owned());
        let report =
            tokio::spawn(
                async move { mnemo_bus::erase::request_erasure(&bus, &erasing, &by).await },
            )
            .await
            .map_err(|e| status::internal("erasing a learner", &e))?
            .map_err(|e| status::from_bus_error(&e))?;
        let read_models_clean = self.wait_clean(report.sequences).await;
        let key_destroyed = report.had_key && self.wait_shredded(&token).await;
        Ok(Response::new(pb::EraseLearnerResponse {
            owner_token: report.owner_token,
            had_key: report.had_key,
            key_destroyed,
            document_sequence: report.sequences[0],
            learning_sequence: report.sequences[1],
            read_models_clean,
            plaintext_events: report.plaintext_events,
        }))
    }
}

impl AccountApi {
    /// Whether the read models and the search index passed both events.
    async fn wait_clean(&self, [documents, learning]: [u64; 2]) -> bool {
        let ns = &self.state.bus.namespace;
        let Ok(db) = self.state.db.client().await else {
            return false;
        };
        let docs = mnemo_projector::runner::wait_for(&*db, ns, documents, CLEAN_WAIT).await;
        let learn = mnemo_projector::learning::wait_for(&*db, ns, learning, CLEAN_WAIT).await;
        let search = match &self.state.search {
            Some(s) => s.index.wait_for(documents, CLEAN_WAIT).await >= documents,
            None => true,
        };
        matches!(docs, Ok(at) if at >= documents)
            && matches!(learn, Ok(at) if at >= learning)
            && search
    }
    /// Whether the projector has erased the learner's key on disk (it
    /// does once it applies their `LearnerErased`), within [`CLEAN_WAIT`].
    async fn wait_shredded(&self, token: &str) -> bool {
        let deadline = tokio::time::Instant::now() + CLEAN_WAIT;
        loop {
            match self.state.bus.keys.has_key_records(token).await {
                Ok(false) => return true,
                Ok(true) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Caller;

    #[test]
    fn only_a_fresh_sign_in_may_erase_itself() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let caller = |issued_at| Caller {
            owner: mnemo_domain::OwnerId::new("alice").unwrap(),
            admin: false,
            issued_at,
        };
        assert!(caller(now - 60).signed_in_within(FRESH_SIGN_IN));
        assert!(!caller(now - 16 * 60).signed_in_within(FRESH_SIGN_IN));
        assert!(!caller(now - 30 * 24 * 3600).signed_in_within(FRESH_SIGN_IN));
    }
}
