//! Which owners' search state is held in memory, within a byte budget.
//!
//! An owner's vectors and BM25 lexemes are read from the read models at
//! their first search ([`Indexes::ensure`]) and kept fresh by
//! [`crate::follow`] while they are held. Past the budget, the owners
//! searched least recently are dropped; their next search reads them again.
//! So one API replica serves any number of owners in bounded memory, and
//! an owner nobody searches costs nothing but their rows in PostgreSQL.
//!
//! Loading, refreshing and dropping one owner take that owner's lock, which
//! is what keeps the three consistent:
//! - a refresh of an owner not held does nothing, and a load that follows
//!   it reads rows the projector already has (the follower waits for the
//!   projector before it refreshes);
//! - a refresh that comes while the owner is being loaded waits, then
//!   applies on top of what was loaded;
//! - eviction skips an owner whose lock is taken, so nothing being loaded
//!   or refreshed is dropped halfway, and an owner a search is using
//!   ([`Held`]) is never dropped under it.
//!
//! A model switch takes the gate every load, refresh and drop passes
//! through, so none runs while it reads the held owners' new vectors.
//!
//! A load reads both sides, builds them off the async threads, and puts
//! them in place without an await in between: a search cancelled mid-load
//! leaves nothing behind (and its work is lost: the next search reads
//! again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio_postgres::GenericClient;

use crate::{Indexes, SearchError, TermIndex};

/// The default budget for held search state (`--search-memory-mib`): with
/// the model (about 90 MB) and the API's own state, an API replica stays
/// within 1 GiB (docs/benchmarks.md, *Many owners*).
pub const DEFAULT_BUDGET: usize = 512 << 20;

/// What holding an owner costs beyond their vectors and lexemes (map
/// entries, their name, the lock), roughly: so owners without documents
/// count too.
const OWNER_OVERHEAD: usize = 512;

/// Whether a search found its owner held or had to read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residence {
    /// Held already.
    Warm,
    /// Read from the read models for this search.
    Cold {
        took: Duration,
        /// Bytes the owner's state takes, roughly.
        bytes: usize,
    },
}

/// An owner a search is using: not dropped until this goes.
#[derive(Debug)]
pub struct Held<'a> {
    residency: &'a Residency,
    owner: String,
    pub residence: Residence,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.residency.unpin(&self.owner);
    }
}

/// The held owners, their last use, and the per-owner locks.
#[derive(Debug)]
pub(crate) struct Residency {
    budget: usize,
    lru: Mutex<Lru>,
    locks: Mutex<Locks>,
    /// Every load, refresh and drop reads it; a model switch writes it.
    gate: tokio::sync::RwLock<()>,
    /// One eviction pass at a time (two would each drop enough for both).
    evicting: Mutex<()>,
}

#[derive(Debug, Default)]
struct Lru {
    clock: u64,
    used: HashMap<String, Use>,
}

#[derive(Debug, Clone, Copy)]
struct Use {
    /// The clock at the owner's last search.
    at: u64,
    /// Searches using the owner now.
    pins: u32,
}

/// One lock per owner while anyone holds or waits for it.
#[derive(Debug, Default)]
struct Locks {
    by_owner: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    /// Forgotten locks are swept when the map reaches this size.
    sweep_at: usize,
}

/// An owner's lock, taken (with the gate shared).
pub(crate) struct OwnerGuard<'a> {
    _owner: tokio::sync::OwnedMutexGuard<()>,
    _gate: tokio::sync::RwLockReadGuard<'a, ()>,
}

impl Residency {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            lru: Mutex::new(Lru::default()),
            locks: Mutex::new(Locks::default()),
            gate: tokio::sync::RwLock::new(()),
            evicting: Mutex::new(()),
        }
    }

    fn lru(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a search of `owner` and pins them, if they are held.
    fn pin(&self, owner: &str) -> bool {
        let mut lru = self.lru();
        lru.clock += 1;
        let now = lru.clock;
        match lru.used.get_mut(owner) {
            Some(u) => {
                u.at = now;
                u.pins += 1;
                true
            }
            None => false,
        }
    }

    fn unpin(&self, owner: &str) {
        if let Some(u) = self.lru().used.get_mut(owner) {
            u.pins = u.pins.saturating_sub(1);
        }
    }

    fn is_held(&self, owner: &str) -> bool {
        self.lru().used.contains_key(owner)
    }

    /// Holds `owner` (just loaded), pinned `pins` times.
    fn hold(&self, owner: &str, pins: u32) {
        let mut lru = self.lru();
        lru.clock += 1;
        let at = lru.clock;
        lru.used.insert(owner.to_owned(), Use { at, pins });
    }

    /// Forgets `owner` whatever uses them (an erasure).
    fn release(&self, owner: &str) {
        self.lru().used.remove(owner);
    }

    /// Forgets `owner` unless a search is using them; whether it did.
    fn release_unpinned(&self, owner: &str) -> bool {
        let mut lru = self.lru();
        match lru.used.get(owner) {
            Some(u) if u.pins == 0 => {
                lru.used.remove(owner);
                true
            }
            _ => false,
        }
    }

    /// Held owners, least recently searched first.
    fn by_age(&self) -> Vec<String> {
        let lru = self.lru();
        let mut owners: Vec<(&String, u64)> = lru.used.iter().map(|(o, u)| (o, u.at)).collect();
        owners.sort_by_key(|&(_, at)| at);
        owners.into_iter().map(|(o, _)| o.clone()).collect()
    }

    fn lock_of(&self, owner: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.by_owner.get(owner).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.by_owner.len() >= locks.sweep_at {
            locks.by_owner.retain(|_, w| w.strong_count() > 0);
            locks.sweep_at = (2 * locks.by_owner.len()).max(64);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks
            .by_owner
            .insert(owner.to_owned(), Arc::downgrade(&lock));
        lock
    }

    /// `owner`'s lock (waiting for a model switch, and for whoever has it).
    async fn lock(&self, owner: &str) -> OwnerGuard<'_> {
        let gate = self.gate.read().await;
        OwnerGuard {
            _owner: self.lock_of(owner).lock_owned().await,
            _gate: gate,
        }
    }

    /// `owner`'s lock if nobody has it (and no switch runs).
    fn try_lock(&self, owner: &str) -> Option<OwnerGuard<'_>> {
        let gate = self.gate.try_read().ok()?;
        Some(OwnerGuard {
            _owner: self.lock_of(owner).try_lock_owned().ok()?,
            _gate: gate,
        })
    }
}

impl Indexes {
    /// Makes sure `owner`'s vectors and lexemes are held, and keeps them
    /// held while the returned guard lives: a search calls this first. A
    /// held owner is only marked as just used; another is read from the
    /// read models (both sides, their indexed runs) and held, and then
    /// owners searched least recently are dropped until the held state fits
    /// the budget again (never one in use: an owner bigger than the whole
    /// budget is still served, alone).
    pub async fn ensure(
        &self,
        client: &impl GenericClient,
        owner: &str,
    ) -> Result<Held<'_>, SearchError> {
        let held = |residence| Held {
            residency: &self.resident,
            owner: owner.to_owned(),
            residence,
        };
        if self.resident.pin(owner) {
            return Ok(held(Residence::Warm));
        }
        let started = Instant::now();
        let bytes = {
            let _owner = self.resident.lock(owner).await;
            // A concurrent search of the same owner may have loaded them.
            if self.resident.pin(owner) {
                return Ok(held(Residence::Warm));
            }
            let vectors = self.vectors();
            let v = vectors.fetch_owner(client, owner).await?;
            let t = self.terms.fetch_owner(client, owner).await?;
            let building = vectors.clone();
            let (v, t) =
                tokio::task::spawn_blocking(move || (building.prepare(v), TermIndex::prepare(t)))
                    .await?;
            // No await from here: both sides and the mark, or nothing.
            vectors.install(owner, v);
            self.terms.install(owner, t);
            self.resident.hold(owner, 1);
            self.memory_of(owner)
        };
        let took = started.elapsed();
        metrics::counter!("mnemo_search_owner_loads_total").increment(1);
        metrics::histogram!("mnemo_search_owner_load_seconds").record(took.as_secs_f64());
        let guard = held(Residence::Cold { took, bytes });
        self.evict(owner);
        Ok(guard)
    }

    /// Whether `owner`'s state is held now.
    pub fn is_held(&self, owner: &str) -> bool {
        self.resident.is_held(owner)
    }

    /// The budget for held state, in bytes.
    pub fn budget(&self) -> usize {
        self.resident.budget
    }

    /// Owners held and the bytes their state takes, roughly.
    pub fn held(&self) -> (usize, usize) {
        let owners = self.resident.by_age();
        let bytes = owners.iter().map(|o| self.memory_of(o)).sum();
        (owners.len(), bytes)
    }

    /// Bytes holding `owner` takes on both sides, roughly.
    pub fn memory_of(&self, owner: &str) -> usize {
        self.vectors().memory_of(owner) + self.terms.memory_of(owner) + OWNER_OVERHEAD
    }

    /// Runs `refresh` for `owner` if they are held (under their lock, so
    /// no load or eviction of theirs runs meanwhile); whether it ran.
    pub(crate) async fn refresh_held<F, Fut>(
        &self,
        owner: &str,
        refresh: F,
    ) -> Result<bool, SearchError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(), SearchError>>,
    {
        {
            let _owner = self.resident.lock(owner).await;
            if !self.resident.is_held(owner) {
                return Ok(false);
            }
            refresh().await?;
        }
        // A document more may have taken the state past the budget.
        self.evict(owner);
        Ok(true)
    }

    /// Drops everything held of `owner` (an erased learner), in use or not.
    pub async fn drop_owner(&self, owner: &str) {
        let _owner = self.resident.lock(owner).await;
        self.resident.release(owner);
        self.vectors().remove_owner(owner);
        self.terms.remove_owner(owner);
        self.report();
    }

    /// Held owners, with the gate closed: nothing is loaded, refreshed or
    /// dropped until the guard goes (a model switch loads these owners'
    /// vectors of the new model meanwhile; searches of held owners go on).
    pub(crate) async fn freeze_held(&self) -> (Vec<String>, tokio::sync::RwLockWriteGuard<'_, ()>) {
        let gate = self.resident.gate.write().await;
        (self.resident.by_age(), gate)
    }

    /// Drops owners, least recently searched first, until the held state
    /// fits the budget; `keep` (the owner just loaded or refreshed) stays,
    /// and so does every owner a search is using or whose lock is taken.
    fn evict(&self, keep: &str) {
        let _pass = self
            .resident
            .evicting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let owners = self.resident.by_age();
        let mut total: usize = owners.iter().map(|o| self.memory_of(o)).sum();
        let mut dropped = 0u64;
        for owner in &owners {
            if total <= self.resident.budget {
                break;
            }
            if owner == keep {
                continue;
            }
            // Being loaded or refreshed: leave them to the next pass.
            let Some(_owner) = self.resident.try_lock(owner) else {
                continue;
            };
            let bytes = self.memory_of(owner);
            // First out of the LRU (so no search pins them from here),
            // then their state.
            if !self.resident.release_unpinned(owner) {
                continue;
            }
            self.vectors().remove_owner(owner);
            self.terms.remove_owner(owner);
            total = total.saturating_sub(bytes);
            dropped += 1;
        }
        if dropped > 0 {
            metrics::counter!("mnemo_search_owner_evictions_total").increment(dropped);
            tracing::debug!(
                dropped,
                held_bytes = total,
                "search state of owners searched least recently dropped"
            );
        }
        metrics::gauge!("mnemo_search_owners_held").set((owners.len() as u64 - dropped) as f64);
        metrics::gauge!("mnemo_search_held_bytes").set(total as f64);
    }

    /// Publishes the held owners and bytes.
    fn report(&self) {
        let (owners, bytes) = self.held();
        metrics::gauge!("mnemo_search_owners_held").set(owners as f64);
        metrics::gauge!("mnemo_search_held_bytes").set(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use uuid::Uuid;

    use super::*;
    use crate::vectors::DocumentVectors;
    use crate::{TermIndex, VectorIndex};

    const DIMS: usize = 4;

    /// `owner` held with `rows` vectors, as a load leaves them.
    fn hold(indexes: &Indexes, owner: &str, rows: usize) {
        let doc = DocumentVectors {
            topic: None,
            chunk_ids: (0..rows).map(|i| format!("{owner}-{i}")).collect(),
            data: (0..rows).flat_map(|_| [1.0, 0.0, 0.0, 0.0]).collect(),
        };
        indexes
            .vectors()
            .load_owner(owner, BTreeMap::from([(Uuid::new_v4(), doc)]));
        indexes.resident.hold(owner, 0);
    }

    fn budgeted(budget: usize) -> Indexes {
        Indexes::with_budget(VectorIndex::new(DIMS), TermIndex::default(), budget)
    }

    fn one_owner_bytes() -> usize {
        let probe = budgeted(usize::MAX);
        hold(&probe, "probe", 100);
        probe.memory_of("probe")
    }

    #[test]
    fn the_owner_searched_least_recently_is_dropped_first() {
        let one = one_owner_bytes();
        assert!(one > 100 * DIMS * 4, "vectors at least: {one}");
        // Room for two owners, not three.
        let indexes = budgeted(one * 5 / 2);
        hold(&indexes, "a", 100);
        hold(&indexes, "b", 100);
        hold(&indexes, "c", 100);
        // a is searched again: b is now the least recent.
        assert!(indexes.resident.pin("a"));
        indexes.resident.unpin("a");
        indexes.evict("c");
        assert!(indexes.is_held("a") && indexes.is_held("c"));
        assert!(!indexes.is_held("b"));
        assert_eq!(
            indexes.vectors().memory_of("b"),
            0,
            "b's vectors went with it"
        );
        let (owners, bytes) = indexes.held();
        assert_eq!(owners, 2);
        assert!(bytes <= indexes.budget(), "{bytes} > {}", indexes.budget());
    }

    #[test]
    fn an_owner_bigger_than_the_budget_is_still_served_alone() {
        let indexes = budgeted(1);
        hold(&indexes, "a", 10);
        hold(&indexes, "big", 1_000);
        indexes.evict("big");
        assert!(indexes.is_held("big") && !indexes.is_held("a"));
        let scope = crate::Scope {
            owner_token: "big".into(),
            documents: None,
            topic: None,
        };
        assert_eq!(
            indexes
                .vectors()
                .top(&scope, &[1.0, 0.0, 0.0, 0.0], 3)
                .len(),
            3
        );
    }

    #[tokio::test]
    async fn an_owner_being_loaded_or_refreshed_is_not_dropped() {
        let indexes = budgeted(1);
        hold(&indexes, "a", 10);
        hold(&indexes, "b", 10);
        // a's lock is taken (a load or refresh of a in flight).
        let busy = indexes.resident.lock("a").await;
        indexes.evict("b");
        assert!(indexes.is_held("a"), "dropped while its lock was held");
        drop(busy);
        indexes.evict("b");
        assert!(!indexes.is_held("a"));
    }

    /// A refresh that comes while its owner is being loaded waits for the
    /// load and applies on top of it (it would otherwise see the owner not
    /// held, do nothing, and the load could miss what it says).
    #[tokio::test(flavor = "current_thread")]
    async fn a_refresh_during_a_load_waits_for_it_and_then_applies() {
        let indexes = Arc::new(budgeted(usize::MAX));
        let loading = indexes.resident.lock("a").await;
        let refreshing = {
            let indexes = indexes.clone();
            tokio::spawn(async move { indexes.refresh_held("a", || async { Ok(()) }).await })
        };
        // Let the refresh run up to the lock (one thread: it runs now).
        tokio::task::yield_now().await;
        assert!(
            !refreshing.is_finished(),
            "the refresh did not wait for the load"
        );
        indexes.resident.hold("a", 0);
        drop(loading);
        let ran = refreshing.await.unwrap().unwrap();
        assert!(ran, "the refresh must apply to the owner just loaded");
        // And one for an owner nobody loads does nothing.
        assert!(!indexes
            .refresh_held("z", || async { Ok(()) })
            .await
            .unwrap());
    }

    #[test]
    fn an_owner_a_search_is_using_is_not_dropped_under_it() {
        let indexes = budgeted(1);
        hold(&indexes, "a", 10);
        // A search of a is under way (as `ensure` leaves it).
        assert!(indexes.resident.pin("a"));
        let searching = Held {
            residency: &indexes.resident,
            owner: "a".into(),
            residence: Residence::Warm,
        };
        hold(&indexes, "b", 10);
        indexes.evict("b");
        assert!(indexes.is_held("a"), "dropped mid-search");
        assert!(indexes.vectors().memory_of("a") > 0);
        drop(searching);
        indexes.evict("b");
        assert!(!indexes.is_held("a"));
        assert_eq!(indexes.vectors().memory_of("a"), 0);
    }

    /// A model switch closes the gate: no load, refresh or eviction runs
    /// until it is done.
    #[tokio::test]
    async fn nothing_is_dropped_while_a_model_switch_runs() {
        let indexes = budgeted(1);
        hold(&indexes, "a", 10);
        hold(&indexes, "b", 10);
        let (owners, frozen) = indexes.freeze_held().await;
        assert_eq!(owners, ["a", "b"]);
        indexes.evict("b");
        assert!(indexes.is_held("a"));
        drop(frozen);
        indexes.evict("b");
        assert!(!indexes.is_held("a"));
    }

    #[test]
    fn a_dropped_owner_takes_their_lexemes_with_them() {
        let indexes = budgeted(1);
        let mut doc = crate::terms::DocumentTerms::default();
        doc.push_chunk("a-0".into(), &["mitochondria".into()], &[2]);
        indexes
            .terms
            .load_owner("a", BTreeMap::from([(Uuid::new_v4(), doc)]));
        indexes.resident.hold("a", 0);
        assert!(indexes.terms.memory_of("a") > 0);
        hold(&indexes, "b", 1);
        indexes.evict("b");
        assert_eq!(indexes.terms.memory_of("a"), 0);
        assert!(indexes.terms.is_empty());
    }
}
