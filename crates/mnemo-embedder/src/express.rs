//! Two batching queues, each with its own model session: the main one, and
//! an express one for owners who would otherwise wait behind another
//! owner's batch (issue 18, fair sharing).
//!
//! Lanes in one queue already take turns, but a model call in progress
//! cannot be shared: a learner's small upload waited for the batch owner's
//! call on both cores, then ran while the projector and PostgreSQL wrote
//! that batch's vectors (docs/benchmarks.md, *Fair sharing*). With an
//! express session the small upload's call runs beside the big one and
//! the OS shares the cores between them: the main session's threads run
//! nice (`--embed-nice`, [`crate::priority`]), the express one's only a
//! little nice (`--embed-express-nice`, 2: queries come first), so the
//! learner's call gets most of them; and the main queue waits, between
//! pieces of its calls, while an express call runs
//! ([`crate::batcher::Turns`]).
//!
//! The rule, per document: its texts go to the express queue when the main
//! queue holds another owner's texts and none of this owner's, and this
//! owner has no other document in the express queue
//! ([`EXPRESS_PER_OWNER`]); otherwise to the main queue. So one owner alone, or a batch owner, always uses the
//! main session (the express one idles), and a second owner arriving
//! beside a batch gets the express one until the main queue is theirs too.
//! Both sessions are the same model with the same options, so a text gets
//! the same vector from either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::batcher::{BatchPlan, Batcher, Results, TextToEmbed};
use crate::error::EmbedError;

/// The express queue's plan beside the main `plan`: smaller batches and
/// cache (it serves owners with a few documents; its arena stays small).
pub fn plan(main: BatchPlan) -> BatchPlan {
    BatchPlan {
        token_budget: main.token_budget.min(2_048),
        cache_entries: main.cache_entries.min(2_000),
        ..main
    }
}

/// Submissions each owner has in the main queue, and in the express one.
#[derive(Default)]
struct Counts {
    main: HashMap<Arc<str>, usize>,
    express: HashMap<Arc<str>, usize>,
}

impl Counts {
    fn of(&mut self, route: Route) -> &mut HashMap<Arc<str>, usize> {
        match route {
            Route::Main => &mut self.main,
            Route::Express => &mut self.express,
        }
    }
}

/// An owner's documents in the express queue at once, at most: the rest
/// go to the main one, so an owner with a big batch who arrived beside
/// another cannot make the express queue a second, un-niced main queue.
pub const EXPRESS_PER_OWNER: usize = 1;

/// The main queue, an optional express queue, and who holds which.
pub struct Queues {
    main: Batcher,
    express: Option<Batcher>,
    counts: Arc<Mutex<Counts>>,
}

/// Which queue a submission went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Main,
    Express,
}

/// A submission: its results, its queue, and its [`Hold`].
pub struct Place {
    pub results: Results,
    pub route: Route,
    pub hold: Hold,
}

/// The count a submission holds in its queue, given back when dropped:
/// drop it once every result is in (what follows, appending, is not the
/// model's work).
pub struct Hold {
    counts: Arc<Mutex<Counts>>,
    route: Route,
    owner: Arc<str>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let of = counts.of(self.route);
        if let Some(n) = of.get_mut(&self.owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                of.remove(&self.owner);
            }
        }
    }
}

impl Queues {
    pub fn new(main: Batcher, express: Option<Batcher>) -> Self {
        Self {
            main,
            express,
            counts: Arc::default(),
        }
    }

    /// Where `owner`'s next submission goes (see the module doc).
    pub fn route(&self, owner: &str) -> Route {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        self.route_in(&counts, owner)
    }

    fn route_in(&self, counts: &Counts, owner: &str) -> Route {
        let others_in_main = counts.main.keys().any(|o| &**o != owner);
        let express_room = counts.express.get(owner).copied().unwrap_or(0) < EXPRESS_PER_OWNER;
        if self.express.is_some()
            && others_in_main
            && !counts.main.contains_key(owner)
            && express_room
        {
            Route::Express
        } else {
            Route::Main
        }
    }

    /// Queues `texts` in `owner`'s lane of the queue [`Queues::route`]
    /// picks; keep the [`Place`]'s hold until every result is in.
    pub fn submit(&self, owner: &str, texts: Vec<TextToEmbed>) -> Result<Place, EmbedError> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let route = self.route_in(&counts, owner);
        let results = match (&self.express, route) {
            (Some(express), Route::Express) => express.submit_in(owner, texts)?,
            _ => self.main.submit_in(owner, texts)?,
        };
        let owner: Arc<str> = Arc::from(owner);
        *counts.of(route).entry(owner.clone()).or_default() += 1;
        Ok(Place {
            results,
            route,
            hold: Hold {
                counts: self.counts.clone(),
                route,
                owner,
            },
        })
    }

    /// The main queue (its stats are the service's).
    pub fn main(&self) -> &Batcher {
        &self.main
    }

    /// The express queue, when there is one.
    pub fn express(&self) -> Option<&Batcher> {
        self.express.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batcher::Model;

    /// A model that answers at once.
    struct Instant;
    impl Model for Instant {
        fn model_id(&self) -> &str {
            "instant"
        }
        fn batch_size(&self) -> usize {
            16
        }
        fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    fn queues(express: bool) -> Queues {
        let start = || Batcher::start(Arc::new(Instant), BatchPlan::default()).0;
        Queues::new(start(), express.then(start))
    }

    fn text(s: &str) -> Vec<TextToEmbed> {
        vec![TextToEmbed {
            index: 0,
            text: s.to_owned(),
            tokens: 3,
        }]
    }

    #[tokio::test]
    async fn an_owner_beside_another_owners_work_gets_the_express_queue() {
        let q = queues(true);
        // Given the batch owner's document in the main queue,
        let batch = q.submit("batch", text("a")).expect("queued");
        assert_eq!(batch.route, Route::Main);
        // its next documents stay there, and another owner goes express,
        assert_eq!(q.route("batch"), Route::Main);
        let mut small = q.submit("learner", text("b")).expect("queued");
        assert_eq!(small.route, Route::Express);
        assert!(small.results.recv().await.expect("a result").is_ok());
        // until the main queue is free again.
        drop(batch);
        assert_eq!(q.route("learner"), Route::Main);
    }

    #[tokio::test]
    async fn an_owner_gets_one_express_document_at_a_time() {
        let q = queues(true);
        let _batch = q.submit("batch", text("a")).expect("queued");
        let first = q.submit("second", text("b")).expect("queued");
        assert_eq!(first.route, Route::Express);
        // A second batch owner's next documents go to the main queue
        let next = q.submit("second", text("c")).expect("queued");
        assert_eq!(next.route, Route::Main);
        // and, once its express document is done, stay there while it
        // has work in the main queue.
        drop(first.hold);
        assert_eq!(q.route("second"), Route::Main);
        drop(next);
        assert_eq!(q.route("second"), Route::Express);
    }

    #[tokio::test]
    async fn an_owner_with_work_in_the_main_queue_stays_there() {
        let q = queues(true);
        let _first = q.submit("a", text("x")).expect("queued");
        let _other = q.submit("b", text("y")).expect("queued"); // express
        let again = q.submit("a", text("z")).expect("queued");
        assert_eq!(again.route, Route::Main);
    }

    #[tokio::test]
    async fn without_an_express_session_everything_is_main() {
        let q = queues(false);
        let _batch = q.submit("batch", text("a")).expect("queued");
        assert_eq!(
            q.submit("learner", text("b")).expect("queued").route,
            Route::Main
        );
    }
}
