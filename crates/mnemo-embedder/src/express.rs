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
//! nice (`--embed-nice`, [`crate::priority`]), the express one's at the
//! process's priority, so the learner's call gets most of them.
//!
//! The rule, per document: its texts go to the express queue when the main
//! queue holds another owner's texts and none of this owner's; otherwise
//! to the main queue. So one owner alone, or a batch owner, always uses the
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

/// Submissions each owner has in the main queue now.
type InMain = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// The main queue, an optional express queue, and who holds the main one.
pub struct Queues {
    main: Batcher,
    express: Option<Batcher>,
    /// Documents (submissions) each owner has in the main queue now.
    in_main: InMain,
}

/// Which queue a submission went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Main,
    Express,
}

/// A submission's place: its results, and (for the main queue) the count
/// it holds there, given back when the place is dropped.
pub struct Place {
    pub results: Results,
    pub route: Route,
    held: Option<(InMain, Arc<str>)>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((in_main, owner)) = self.held.take() {
            let mut in_main = in_main.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = in_main.get_mut(&owner) {
                *n -= 1;
                if *n == 0 {
                    in_main.remove(&owner);
                }
            }
        }
    }
}

impl Queues {
    pub fn new(main: Batcher, express: Option<Batcher>) -> Self {
        Self {
            main,
            express,
            in_main: Arc::default(),
        }
    }

    /// Where `owner`'s next submission goes (see the module doc).
    pub fn route(&self, owner: &str) -> Route {
        let in_main = self.in_main.lock().unwrap_or_else(PoisonError::into_inner);
        Self::route_in(&in_main, self.express.is_some(), owner)
    }

    fn route_in(in_main: &HashMap<Arc<str>, usize>, express: bool, owner: &str) -> Route {
        let others_there = in_main.keys().any(|o| &**o != owner);
        if express && others_there && !in_main.contains_key(owner) {
            Route::Express
        } else {
            Route::Main
        }
    }

    /// Queues `texts` in `owner`'s lane of the queue [`Queues::route`]
    /// picks; keep the [`Place`] until every result is in.
    pub fn submit(&self, owner: &str, texts: Vec<TextToEmbed>) -> Result<Place, EmbedError> {
        let mut in_main = self.in_main.lock().unwrap_or_else(PoisonError::into_inner);
        let route = Self::route_in(&in_main, self.express.is_some(), owner);
        match &self.express {
            Some(express) if route == Route::Express => Ok(Place {
                results: express.submit_in(owner, texts)?,
                route: Route::Express,
                held: None,
            }),
            _ => {
                let results = self.main.submit_in(owner, texts)?;
                let owner: Arc<str> = Arc::from(owner);
                *in_main.entry(owner.clone()).or_default() += 1;
                Ok(Place {
                    results,
                    route: Route::Main,
                    held: Some((self.in_main.clone(), owner)),
                })
            }
        }
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
    async fn an_owner_with_work_in_the_main_queue_stays_there() {
        let q = queues(true);
        let _first = q.submit("a", text("x")).expect("queued");
        let _other = q.submit("b", text("y")).expect("queued"); // express
        let again = q.submit("a", text("z")).expect("queued");
        assert_eq!(again.route, Route::Main);
        assert_eq!(q.route("b"), Route::Express);
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
