//! `StatsService.GetStats`: live totals by state and per-stage analytics,
//! from the read models (see `mnemo_projector::stats`); the caller's quota
//! ([`crate::quota`]) and, for admins, the namespace's store sizes.

use std::sync::Arc;

use mnemo_projector::stats::{self, Scope};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::stats_service_server::StatsService;
use tonic::{Request, Response, Status};

use crate::auth::caller;
use crate::server::ApiState;
use crate::status;

pub struct StatsApi {
    state: Arc<ApiState>,
}

impl StatsApi {
    pub fn new(state: Arc<ApiState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl StatsService for StatsApi {
    async fn get_stats(
        &self,
        req: Request<pb::GetStatsRequest>,
    ) -> Result<Response<pb::Stats>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        if r.all_owners && !who.admin {
            return Err(Status::permission_denied(
                "every owner's figures need an admin token",
            ));
        }
        let token = who.owner.token();
        let scope = if r.all_owners {
            Scope::All
        } else {
            Scope::Owner(&token)
        };
        let db = self.state.read_db().await?;
        let sequence = mnemo_projector::runner::checkpoint(&*db, &self.state.bus.namespace)
            .await
            .map_err(|e| status::from_db_error(&e))?;
        let totals = stats::state_totals(&*db, scope)
            .await
            .map_err(|e| status::from_db_error(&e))?;
        let stages = stats::stage_stats(&*db, scope)
            .await
            .map_err(|e| status::from_db_error(&e))?;
        let ns = &self.state.bus.namespace;
        let used = self.state.quotas.usage(&db, ns, &token).await?;
        let limits = self.state.quotas.config();
        let quota = pb::Quota {
            documents: used.documents,
            max_documents: limits.max_documents,
            bytes: used.bytes,
            max_bytes: limits.max_bytes,
        };
        let store = if r.all_owners {
            let s = mnemo_bus::setup::store_usage(&self.state.bus.jetstream, ns)
                .await
                .map_err(|e| status::from_bus_error(&e))?;
            Some(pb::StoreUsage {
                event_bytes: s.event_bytes,
                event_max_bytes: s.event_max_bytes.unwrap_or(0),
                blob_bytes: s.blob_bytes,
                blob_max_bytes: s.blob_max_bytes.unwrap_or(0),
            })
        } else {
            None
        };
        Ok(Response::new(pb::Stats {
            totals: Some(pb::StateTotals {
                queued: totals.queued,
                processing: totals.processing,
                indexed: totals.indexed,
                failed: totals.failed,
                cancelled: totals.cancelled,
                total: totals.total(),
            }),
            stages: stages
                .iter()
                .map(|s| pb::StageStats {
                    stage: s.stage.clone(),
                    finished: s.finished,
                    running: s.running,
                    p50_seconds: s.p50_seconds,
                    p95_seconds: s.p95_seconds,
                    failed: s.failed,
                    error_rate: s.error_rate(),
                })
                .collect(),
            sequence,
            quota: Some(quota),
            store,
        }))
    }
}
