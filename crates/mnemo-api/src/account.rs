//! `AccountService.EraseLearner`: a learner erased by crypto-shredding
//! (decision 022; the bus's part is `mnemo_bus::erase`).
//!
//! The owner themself, or an admin token naming `owner`; `confirm` must
//! repeat the owner id. The call returns once the projector's two
//! checkpoints and this API's search index have passed the two
//! `LearnerErased` events (bounded by [`CLEAN_WAIT`]), so a client that
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
        let token = owner.token();
        tracing::warn!(owner = %token, requested_by = %who.owner.token(), by, "erasing a learner");
        let report = mnemo_bus::erase::erase_learner(&self.state.bus, &token, by)
            .await
            .map_err(|e| status::from_bus_error(&e))?;
        let read_models_clean = self.wait_clean(report.sequences).await;
        Ok(Response::new(pb::EraseLearnerResponse {
            owner_token: report.owner_token,
            key_destroyed: report.key_destroyed,
            files_deleted: report.blobs_deleted as u32,
            dead_letters_erased: report.dead_letters_erased as u32,
            document_sequence: report.sequences[0],
            learning_sequence: report.sequences[1],
            read_models_clean,
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
}
