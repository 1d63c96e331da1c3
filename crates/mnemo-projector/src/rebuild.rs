//! Rebuilding projections from the event log, beside the live ones.
//!
//! `mnemo projections rebuild NAME` builds version N+1 of a projection from
//! sequence 1 while version N keeps serving queries, then swaps it in:
//!
//! 1. *Build.* A scratch schema `<ns>__rebuild` gets every table (the same
//!    migrations as the live schema, secondary indexes deferred to the end)
//!    and checkpoints of its own. Events are read in order from the stream
//!    and folded in large batches (set-wise writes, `synchronous_commit`
//!    off: a crash loses nothing the checkpoint does not also lose), each
//!    batch split by document over several connections
//!    ([`crate::partitioned`]) while the next one is read and decoded, up
//!    to the *live* projector's checkpoint — never beyond it, so at the swap
//!    both stand at the same sequence. A chunk's lexemes are taken from the
//!    live table when the same chunk is there. An interrupted rebuild
//!    resumes from the scratch checkpoints.
//! 2. *Swap.* In one transaction on the live schema: lock the live
//!    checkpoint row (the live projector waits at its next batch), bring the
//!    scratch tables to exactly that sequence, drop the old tables, move the
//!    new ones in (`ALTER TABLE … SET SCHEMA`, indexes included), bump the
//!    version in `projection_versions`, commit. Queries see the old tables
//!    or the new ones, never a half-built one.
//! 3. *Clean up.* The scratch schema is dropped.
//!
//! A rebuild has no side effects beyond its tables: it never declares a
//! document indexed or appends anything (replaying must not make anything
//! happen twice).
//!
//! Each [`Feed`] is rebuilt on its own, against its own live runner's
//! checkpoint and in its own scratch schema: the document projections
//! from `<ns>.ev.doc.>` up to the document projector's checkpoint, the
//! learning projection from `<ns>.ev.learn.>` up to the learning runner's.
//! Rebuilding projections of both feeds (`all`) runs one after the other.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use mnemo_bus::{Bus, BusError, Namespace};
use tokio_postgres::Client;

use crate::batch::{self, EventMessage};
use crate::partitioned::{Batch, Writers};
use crate::projection::{Feed, Projection};
use crate::{db, learning, migrations, ProjectorError};

/// How a rebuild reads and writes.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Most messages folded per transaction.
    pub batch_messages: usize,
    /// Most payload bytes per transaction (vectors dominate).
    pub batch_bytes: usize,
    /// Start from sequence 1 even if an interrupted rebuild left a scratch schema.
    pub fresh: bool,
    /// Build (and resume), but do not swap: for measuring, or to swap later.
    pub no_swap: bool,
    /// Build up to this sequence instead of the live checkpoint (only with
    /// `no_swap`: a swap must meet the live projector where it stands).
    pub until: Option<u64>,
    /// PostgreSQL connections writing at once, documents split between
    /// them (see [`crate::partitioned`]).
    pub connections: usize,
    /// Compute every chunk's lexemes again instead of taking the live
    /// table's (after a change of text-search configuration).
    pub recompute_lexemes: bool,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            batch_messages: 4_096,
            batch_bytes: 32 * 1024 * 1024,
            fresh: false,
            no_swap: false,
            until: None,
            connections: 2,
            recompute_lexemes: false,
        }
    }
}

/// Where a rebuild is (for progress displays).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RebuildProgress {
    /// Stream sequence the new version has applied.
    pub applied_through: u64,
    /// The live checkpoint it is catching up with.
    pub target: u64,
    /// Events folded by this run (not counting a resumed earlier run's).
    pub events: u64,
    /// Messages read by this run.
    pub messages: u64,
    pub elapsed_seconds: f64,
}

impl RebuildProgress {
    pub fn events_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.events as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }

    /// `next` (a later feed's progress) after this one: counts and time
    /// add up, the position is the later feed's.
    fn then(&self, next: &RebuildProgress) -> RebuildProgress {
        RebuildProgress {
            applied_through: next.applied_through,
            target: next.target,
            events: self.events + next.events,
            messages: self.messages + next.messages,
            elapsed_seconds: self.elapsed_seconds + next.elapsed_seconds,
        }
    }

    /// Fraction of the way, by stream sequence (sequences are spread over
    /// every subject, so this is approximate).
    pub fn fraction(&self) -> f64 {
        if self.target == 0 {
            1.0
        } else {
            (self.applied_through as f64 / self.target as f64).min(1.0)
        }
    }
}

/// What a finished rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildReport {
    pub projections: Vec<String>,
    /// Versions now serving queries (empty with `no_swap`).
    pub versions: Vec<(String, i32)>,
    pub progress: RebuildProgress,
    /// Seconds the swap transaction held the live projector.
    pub swap_seconds: f64,
}

/// The scratch schema of a namespace's rebuild of the document projections.
pub fn scratch_schema(ns: &Namespace) -> String {
    scratch_schema_for(ns, Feed::Documents)
}

/// The scratch schema of a namespace's rebuild of `feed`'s projections
/// (`<ns>__rebuild`, `<ns>__rebuild_learning`: a namespace has no `__`).
pub fn scratch_schema_for(ns: &Namespace, feed: Feed) -> String {
    feed.scratch_schema(ns)
}

/// The checkpoint of the live runner that folds `feed`.
fn live_checkpoint_key(ns: &Namespace, feed: Feed) -> String {
    feed.checkpoint_name(ns)
}

fn checkpoint_key(projections: &[Projection]) -> String {
    let names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
    format!("rebuild:{}", names.join(","))
}

/// Rebuilds `projections` from sequence 1 and swaps them in (see the module
/// docs), one feed after the other. `progress` is called after every batch,
/// counting every feed's events so far.
pub async fn rebuild(
    bus: &Bus,
    database_url: &str,
    projections: &[Projection],
    options: &RebuildOptions,
    mut progress: impl FnMut(&RebuildProgress),
) -> Result<RebuildReport, ProjectorError> {
    if projections.is_empty() {
        return Err(ProjectorError::Rebuild("nothing to rebuild".into()));
    }
    if options.until.is_some() && !options.no_swap {
        return Err(ProjectorError::Rebuild(
            "a rebuild to a chosen sequence cannot be swapped in".into(),
        ));
    }
    let ns = &bus.namespace;
    let mut live = db::connect(database_url, ns).await?;
    migrations::apply(&mut live, ns.sql_schema()).await?;
    // One rebuild per namespace at a time.
    let lock = format!("rebuild:{ns}");
    let got: bool = live
        .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&lock])
        .await?
        .get(0);
    if !got {
        return Err(ProjectorError::Rebuild(format!(
            "another rebuild of namespace {ns} is running"
        )));
    }
    let result = rebuild_feeds(
        bus,
        database_url,
        projections,
        options,
        &mut progress,
        &mut live,
    )
    .await;
    // Released now, not when the connection happens to close: a rebuild
    // that follows at once must not find it taken.
    if let Err(e) = live
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock])
        .await
    {
        tracing::warn!(error = %e, "could not release the rebuild lock; it goes with the connection");
    }
    result
}

/// [`rebuild`] once the namespace's rebuild lock is held: each feed's
/// projections built and swapped in turn, in one report.
async fn rebuild_feeds(
    bus: &Bus,
    database_url: &str,
    projections: &[Projection],
    options: &RebuildOptions,
    progress: &mut impl FnMut(&RebuildProgress),
    live: &mut Client,
) -> Result<RebuildReport, ProjectorError> {
    let mut feeds: Vec<Feed> = projections.iter().map(|p| p.feed()).collect();
    feeds.sort();
    feeds.dedup();
    let mut done = RebuildReport {
        projections: Vec::new(),
        versions: Vec::new(),
        progress: RebuildProgress::default(),
        swap_seconds: 0.0,
    };
    for feed in feeds {
        let of_feed: Vec<Projection> = projections
            .iter()
            .copied()
            .filter(|p| p.feed() == feed)
            .collect();
        let before = done.progress.clone();
        let report = build_and_swap(
            bus,
            database_url,
            feed,
            &of_feed,
            options,
            &mut |p| progress(&before.then(p)),
            live,
        )
        .await?;
        done.projections.extend(report.projections);
        done.versions.extend(report.versions);
        done.progress = before.then(&report.progress);
        done.swap_seconds += report.swap_seconds;
    }
    Ok(done)
}

/// Builds `feed`'s `projections` and swaps them in.
async fn build_and_swap(
    bus: &Bus,
    database_url: &str,
    feed: Feed,
    projections: &[Projection],
    options: &RebuildOptions,
    progress: &mut impl FnMut(&RebuildProgress),
    live: &mut Client,
) -> Result<RebuildReport, ProjectorError> {
    let ns = &bus.namespace;
    let scratch = scratch_schema_for(ns, feed);
    let live_key = live_checkpoint_key(ns, feed);
    let key = checkpoint_key(projections);
    let mut clients = Vec::new();
    for _ in 0..options.connections.max(1) {
        clients.push(db::connect_schema(database_url, ns, &scratch).await?);
    }
    let mut build = Writers::new(clients, &key);
    let resumable = !options.fresh && scratch_matches(&build, &scratch, &key).await?;
    if !resumable {
        live.batch_execute(&format!("DROP SCHEMA IF EXISTS {scratch} CASCADE"))
            .await?;
    }
    let mut migrating = db::connect_schema(database_url, ns, &scratch).await?;
    migrations::apply(&mut migrating, &scratch).await?;
    drop(migrating);
    // Safe: the checkpoints commit with the rows, so a crash loses both.
    build
        .run_groups(vec![
            vec!["SET synchronous_commit TO off".to_owned()];
            build.len()
        ])
        .await?;
    if !resumable {
        bulk_mode(build.first(), &scratch, projections).await?;
    }

    let started = Instant::now();
    let mut state = RebuildProgress {
        applied_through: build.checkpoint().await?,
        ..Default::default()
    };
    let mut reader = Reader::open(bus, feed, state.applied_through + 1).await?;
    // The live tables' lexemes are reused for the same chunks.
    let lexemes_from = (!options.recompute_lexemes).then(|| ns.sql_schema());
    // Bulk: catch up with the live checkpoint, however far it moves
    // meanwhile. The next batch is read and decoded while this one is
    // written (PostgreSQL works while this process decodes).
    let mut prefetched = None;
    loop {
        state.target = match options.until {
            Some(until) => until,
            None => batch::checkpoint(&*live, &live_key).await?,
        };
        if state.applied_through >= state.target {
            break;
        }
        let (messages, through) = match prefetched.take() {
            Some(batch) => batch,
            None => {
                reader
                    .next_batch(bus, state.applied_through, state.target, options)
                    .await?
            }
        };
        let batch_started = Instant::now();
        let count = messages.len();
        let ((events, apply_seconds), (next, read_seconds)) = tokio::join!(
            async {
                let events = build
                    .apply(projections, messages, through, lexemes_from)
                    .await;
                (events, batch_started.elapsed().as_secs_f64())
            },
            async {
                let next = reader.next_batch(bus, through, state.target, options).await;
                (next, batch_started.elapsed().as_secs_f64())
            },
        );
        state.events += events?;
        prefetched = Some(next?);
        tracing::debug!(
            messages = count,
            apply_seconds,
            read_seconds,
            "rebuild batch applied"
        );
        state.messages += count as u64;
        state.applied_through = through.max(state.applied_through);
        state.elapsed_seconds = started.elapsed().as_secs_f64();
        progress(&state);
    }
    // The tables get their deferred indexes before the live projector is
    // held for the swap.
    let finish_started = Instant::now();
    finish_bulk(&build, &scratch).await?;
    state.elapsed_seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        seconds = finish_started.elapsed().as_secs_f64(),
        "rebuilt tables indexed"
    );
    if options.no_swap {
        return Ok(RebuildReport {
            projections: projections.iter().map(|p| p.name().to_owned()).collect(),
            versions: Vec::new(),
            progress: state,
            swap_seconds: 0.0,
        });
    }

    // Swap, holding the live projector at its checkpoint.
    let swap_started = Instant::now();
    let tx = live.transaction().await?;
    let at = tx
        .query_opt(
            "SELECT last_sequence FROM projection_checkpoints WHERE consumer = $1 FOR UPDATE",
            &[&live_key],
        )
        .await?
        .map(|r| r.get::<_, i64>(0) as u64)
        .unwrap_or(0);
    while state.applied_through < at {
        let (messages, through) = match prefetched.take() {
            Some(batch) => batch,
            None => {
                reader
                    .next_batch(bus, state.applied_through, at, options)
                    .await?
            }
        };
        state.messages += messages.len() as u64;
        state.events += build
            .apply(projections, messages, through, lexemes_from)
            .await?;
        state.applied_through = through.max(state.applied_through);
    }
    if state.applied_through != at {
        return Err(ProjectorError::Rebuild(format!(
            "the new version stands at {} but the live one at {at}",
            state.applied_through
        )));
    }
    let mut versions = Vec::new();
    for p in projections {
        for table in p.tables() {
            // Table and schema names are constants and validated identifiers.
            tx.batch_execute(&format!(
                "DROP TABLE IF EXISTS {live}.{table}; ALTER TABLE {scratch}.{table} SET SCHEMA {live};",
                live = ns.sql_schema()
            ))
            .await?;
        }
        let row = tx
            .query_one(
                "INSERT INTO projection_versions (projection, version, built_through, swapped_at)
                 VALUES ($1, 2, $2, now())
                 ON CONFLICT (projection) DO UPDATE SET version = projection_versions.version + 1,
                     built_through = EXCLUDED.built_through, swapped_at = now()
                 RETURNING version",
                &[&p.name(), &(at as i64)],
            )
            .await?;
        versions.push((p.name().to_owned(), row.get::<_, i32>(0)));
    }
    tx.commit().await?;
    let swap_seconds = swap_started.elapsed().as_secs_f64();
    drop(build);
    live.batch_execute(&format!("DROP SCHEMA IF EXISTS {scratch} CASCADE"))
        .await?;
    state.elapsed_seconds = started.elapsed().as_secs_f64();
    tracing::info!(namespace = %ns, ?versions, events = state.events, through = at, "rebuild swapped in");
    Ok(RebuildReport {
        projections: projections.iter().map(|p| p.name().to_owned()).collect(),
        versions,
        progress: state,
        swap_seconds,
    })
}

/// Loads a fresh scratch table the fast way: without its secondary indexes
/// (one `CREATE INDEX` at the end is far cheaper than maintaining them row
/// by row). The index definitions are kept in the scratch schema, so an
/// interrupted rebuild that resumes still restores them. The tables stay
/// logged: unlogged tables must be rewritten by `SET LOGGED` before the
/// swap, which measured slower than logging the rows as they come (with
/// `synchronous_commit` off, over several connections).
async fn bulk_mode(
    build: &Client,
    scratch: &str,
    projections: &[Projection],
) -> Result<(), ProjectorError> {
    build
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS rebuild_deferred (table_name text NOT NULL, index_sql text)",
        )
        .await?;
    for p in projections {
        for table in p.tables() {
            let indexes = build
                .query(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i
                      WHERE i.schemaname = $1 AND i.tablename = $2
                        AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                         WHERE c.conname = i.indexname AND c.connamespace = $1::regnamespace)",
                    &[&scratch, table],
                )
                .await?;
            for r in &indexes {
                let (name, def): (String, String) = (r.get(0), r.get(1));
                build
                    .execute(
                        "INSERT INTO rebuild_deferred (table_name, index_sql) VALUES ($1, $2)",
                        &[table, &def],
                    )
                    .await?;
                // Names come from the catalog of our own schema.
                build
                    .batch_execute(&format!("DROP INDEX {scratch}.{name}"))
                    .await?;
            }
        }
    }
    Ok(())
}

/// Undoes [`bulk_mode`]: the indexes built (and a table left unlogged by
/// an older version's interrupted rebuild, logged).
async fn finish_bulk(writers: &Writers, scratch: &str) -> Result<(), ProjectorError> {
    let build = writers.first();
    let exists: bool = build
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{scratch}.rebuild_deferred")],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(());
    }
    let rows = build
        .query("SELECT table_name, index_sql FROM rebuild_deferred", &[])
        .await?;
    // Each table's statements in order (its indexes, then SET LOGGED), the
    // tables on the connections at once.
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in &rows {
        let (table, sql): (String, Option<String>) = (r.get(0), r.get(1));
        let sql = sql.unwrap_or_else(|| format!("ALTER TABLE {scratch}.{table} SET LOGGED"));
        match groups.iter_mut().find(|(t, _)| *t == table) {
            Some((_, group)) => group.push(sql),
            None => groups.push((table, vec![sql])),
        }
    }
    writers
        .run_groups(groups.into_iter().map(|(_, g)| g).collect())
        .await?;
    build.batch_execute("DROP TABLE rebuild_deferred").await?;
    Ok(())
}

/// Whether the scratch schema holds an interrupted rebuild of the same projections.
async fn scratch_matches(
    writers: &Writers,
    scratch: &str,
    key: &str,
) -> Result<bool, ProjectorError> {
    let exists = writers
        .first()
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{scratch}.projection_checkpoints")],
        )
        .await?
        .get::<_, bool>(0);
    if !exists {
        return Ok(false);
    }
    writers.resumable(key).await
}

/// Reads a feed's subjects in order from a start sequence, in batches
/// bounded by count, bytes and a sequence it must not pass.
struct Reader {
    feed: Feed,
    messages: async_nats::jetstream::consumer::pull::Ordered,
    /// A message read past the bound, kept for the next batch.
    held: Option<async_nats::jetstream::Message>,
}

impl Reader {
    async fn open(bus: &Bus, feed: Feed, from: u64) -> Result<Self, ProjectorError> {
        let messages = batch::read_from(bus, feed, from).await?;
        Ok(Self {
            feed,
            messages,
            held: None,
        })
    }

    /// The next batch of decoded messages at or below `bound`, after
    /// `after` (what is applied), and the sequence the batch covers through
    /// (`bound` itself once no document event is left at or below it: the
    /// sequences in between belong to other subjects).
    async fn next_batch(
        &mut self,
        bus: &Bus,
        after: u64,
        bound: u64,
        options: &RebuildOptions,
    ) -> Result<(Batch, u64), ProjectorError> {
        let mut raw = Vec::new();
        let mut bytes = 0;
        let mut through = after;
        // Whether the server has more of the feed's messages for us after
        // the last one read (its delivery says how many are pending).
        let mut more = false;
        if after >= bound {
            return Ok((Batch::empty(self.feed), through)); // nothing may be read
        }
        loop {
            let next = match self.held.take() {
                Some(m) => Some(m),
                None if raw.is_empty() => {
                    match tokio::time::timeout(Duration::from_millis(200), self.messages.next())
                        .await
                    {
                        Ok(next) => Some(delivered(next)?),
                        Err(_) => None,
                    }
                }
                // Fill the batch (big batches amortise each transaction)
                // while the server has more for us: those messages are on
                // their way, however the pulls are paced. At the end of
                // what is stored, a pause ends the batch. A message already
                // buffered is taken without arming a timer.
                None => match self.messages.next().now_or_never() {
                    Some(next) => Some(delivered(next)?),
                    None => {
                        let wait = Duration::from_millis(if more { 1_000 } else { 2 });
                        match tokio::time::timeout(wait, self.messages.next()).await {
                            Ok(next) => Some(delivered(next)?),
                            Err(_) => None,
                        }
                    }
                },
            };
            let Some(m) = next else {
                if !raw.is_empty() {
                    break; // what is buffered is a batch
                }
                // Nothing came: is anything left at or below the bound? The
                // stream itself says, rather than a guess from the silence.
                match next_event(bus, self.feed, through + 1).await? {
                    Some(seq) if seq <= bound => continue, // on its way
                    _ => {
                        through = bound;
                        break;
                    }
                }
            };
            let (seq, pending) = m
                .info()
                .map(|i| (i.stream_sequence, i.pending))
                .map_err(ProjectorError::not_jetstream)?;
            more = pending > 0;
            if seq > bound {
                // Delivery is in order: nothing at or below the bound is left.
                self.held = Some(m);
                through = bound;
                break;
            }
            through = seq;
            bytes += m.payload.len();
            raw.push((seq, m));
            if raw.len() >= options.batch_messages || bytes >= options.batch_bytes {
                break;
            }
        }
        // Decoding (opening, JSON, vectors) is most of this process's
        // work: it runs as a task of its own, so the task that drives the
        // writers' statements is never held up by it.
        let (keys, feed) = (bus.keys.clone(), self.feed);
        let out = tokio::spawn(async move { decode_all(feed, &keys, raw).await }).await??;
        Ok((out, through))
    }
}

/// Decodes a batch's messages; one that does not decode is stepped over
/// (the live runner dead-lettered it), an erased owner's is a tombstone;
/// the keyring out of reach fails the rebuild (nothing is stepped over
/// for it).
async fn decode_all(
    feed: Feed,
    keys: &mnemo_bus::Keyring,
    raw: Vec<(u64, async_nats::jetstream::Message)>,
) -> Result<Batch, ProjectorError> {
    fn keep<T>(seq: u64, decoded: Result<T, BusError>) -> Result<Option<T>, ProjectorError> {
        match decoded {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == mnemo_bus::BusErrorKind::Unavailable => Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, seq, "skipping an undecodable event");
                Ok(None)
            }
        }
    }
    Ok(match feed {
        Feed::Documents => {
            let mut out = Vec::with_capacity(raw.len());
            for (seq, m) in raw {
                let d = EventMessage::decode(keys, &m.subject, seq, m.headers.as_ref(), &m.payload)
                    .await;
                out.extend(keep(seq, d)?);
            }
            Batch::Documents(out)
        }
        Feed::Learning => {
            let mut out = Vec::with_capacity(raw.len());
            for (seq, m) in raw {
                let d =
                    learning::decode(keys, &m.subject, seq, m.headers.as_ref(), &m.payload).await;
                out.extend(keep(seq, d)?);
            }
            Batch::Learning(out)
        }
    })
}

fn delivered(
    next: Option<
        Result<async_nats::jetstream::Message, async_nats::jetstream::consumer::pull::OrderedError>,
    >,
) -> Result<async_nats::jetstream::Message, ProjectorError> {
    match next {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(ProjectorError::stream("reading the event stream", e)),
        None => Err(ProjectorError::stream_ended()),
    }
}

/// The sequence of the first event of `feed` at or after `from`, if any.
async fn next_event(bus: &Bus, feed: Feed, from: u64) -> Result<Option<u64>, ProjectorError> {
    let filter = format!("{}.>", bus.namespace.events_of(feed.kind()));
    match bus
        .events
        .direct_get_next_for_subject(filter.as_str(), Some(from))
        .await
    {
        Ok(m) => Ok(Some(m.sequence)),
        Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(ProjectorError::stream("reading the event stream", e)),
    }
}
