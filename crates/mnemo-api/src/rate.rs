//! Per-owner rate limits: a token bucket per owner and per service (the
//! method class: documents, progress, search, questions, …), so one owner's
//! flood of calls neither starves the others nor one service starves
//! another of the same owner.
//!
//! A call over the limit is refused with `RESOURCE_EXHAUSTED`, the reason,
//! and a `google.rpc.RetryInfo` detail saying when a call will pass again
//! (clients that honour it back off exactly as long as needed).
//!
//! Owns: the buckets (governor's keyed limiter, GCRA) and their memory —
//! owners idle for a minute are forgotten, so the map stays as large as
//! the set of recently active owners.
//! Must not: know who an owner is beyond the verified [`Caller`] the
//! interceptor put into the request.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use tonic::{Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::Caller;

/// Calls per second and burst, per owner and service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Sustained calls a second one owner may make to one service.
    pub per_second: u32,
    /// Calls beyond the rate one owner may make at once.
    pub burst: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
        }
    }
}

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// The buckets of every owner, one set per service; cheap to clone.
#[derive(Clone)]
pub struct RateLimits {
    limiter: Arc<Limiter>,
    config: RateConfig,
}

impl RateLimits {
    pub fn new(config: RateConfig) -> Self {
        let per_second = NonZeroU32::new(config.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            config,
        }
    }

    /// Lets the call through if the caller's bucket for `service` has room;
    /// else `RESOURCE_EXHAUSTED` with when to retry. Runs after the token
    /// was verified (the owner is known).
    pub fn check(&self, req: &Request<()>, service: &str) -> Result<(), Status> {
        let Some(caller) = req.extensions().get::<Caller>() else {
            return Ok(());
        };
        let key = format!("{}/{service}", caller.owner.token());
        match self.limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(refusal(service, self.config, wait))
            }
        }
    }

    /// Forgets owners whose buckets are full again (idle), keeping memory
    /// to the recently active ones.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Runs [`Self::forget_idle`] every minute until dropped.
    pub async fn keep_small(self) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            self.forget_idle();
        }
    }
}

/// The refusal of a call over the limit, with a RetryInfo detail.
fn refusal(service: &str, config: RateConfig, wait: Duration) -> Status {
    // Whole milliseconds, at least one: "retry in 0 ms" helps nobody.
    let wait = Duration::from_millis((wait.as_millis() as u64).max(1));
    let message = format!(
        "rate limit: over {} calls a second (burst {}) to {service} for this owner; retry in {} ms",
        config.per_second,
        config.burst,
        wait.as_millis()
    );
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(wait)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnemo_domain::OwnerId;

    fn request(owner: &str) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut().insert(Caller {
            owner: OwnerId::new(owner).unwrap(),
            admin: false,
            issued_at: 0,
        });
        req
    }

    #[test]
    fn an_owner_over_its_burst_is_told_when_to_retry_and_others_pass() {
        // One call a minute after a burst of two: the third is refused
        // however slowly this test runs.
        let limits = RateLimits::new(RateConfig {
            per_second: 1,
            burst: 2,
        });
        let limits = RateLimits {
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_minute(NonZeroU32::MIN).allow_burst(NonZeroU32::new(2).unwrap()),
            )),
            ..limits
        };
        assert!(limits.check(&request("alice"), "search").is_ok());
        assert!(limits.check(&request("alice"), "search").is_ok());
        let refused = limits.check(&request("alice"), "search").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("rate limit"),
            "{}",
            refused.message()
        );
        let retry = refused
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .expect("a RetryInfo detail");
        assert!(
            retry > Duration::from_secs(1) && retry <= Duration::from_secs(60),
            "{retry:?}"
        );
        assert!(
            limits.check(&request("bob"), "search").is_ok(),
            "another owner"
        );
        assert!(
            limits.check(&request("alice"), "documents").is_ok(),
            "another service"
        );
    }
}
