//! Connecting to NATS and declaring what mnemo needs there, idempotently.
//!
//! Everything here is safe to run at every start of every service: a stream
//! that exists with the same config is left alone, one whose config drifted
//! (e.g. a new limit) is updated, and a missing one is created. Only features
//! of nats-server 2.9 are used (no multi-filter consumers, no KV API).

use std::time::Duration;

use async_nats::jetstream::{self, object_store::ObjectStore, stream};

use crate::credentials::{NatsOptions, Role};
use crate::error::{BusError, BusErrorKind};
use crate::namespace::Namespace;

/// Largest event message accepted, well under NATS's 1 MiB default: large
/// bytes belong in the blob store and events carry their hash.
pub const MAX_EVENT_BYTES: i32 = 1024 * 1024;

/// Window in which JetStream drops a message whose `Nats-Msg-Id` it has seen.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A connection with JetStream, the namespace and the event stream handle.
#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    pub events: stream::Stream,
    /// The owners' data keys (every event payload and blob is sealed).
    pub keys: crate::keys::Keyring,
}

impl Bus {
    /// Connects as `role`, then opens the namespace's event stream, dead
    /// letters and blob bucket. The operator (and anyone on an open server,
    /// without a credential) declares them too: creates what is missing and
    /// updates a config that drifted. A service role may not (`nats.conf`):
    /// it opens what exists and says to run `mnemo nats setup` otherwise.
    pub async fn start(
        options: &NatsOptions,
        role: Role,
        namespace: Namespace,
        replicas: usize,
    ) -> Result<Self, BusError> {
        // The key file first: without it nothing can be read or written,
        // and a wrong one must stop the process before it connects.
        let key_file = match &options.key_file {
            Some(path) => crate::keys::KeyFile::load(path)?,
            None => {
                return Err(BusError::config(
                    "no key file: give --key-file (MNEMO_KEY_FILE); every learner's data key is wrapped under it \
                     (`mnemo keys init FILE` makes one for a new deployment)",
                ))
            }
        };
        let client = connect(options, role, &format!("mnemo:{namespace}:{role}")).await?;
        let jetstream = jetstream::new(client.clone());
        let declares = role == Role::Operator || options.creds.is_none();
        // JetStream may not answer in time while a cluster forms or elects
        // a leader: the declarations are tried again (they are idempotent)
        // rather than failing the service's start.
        let (events, keys) = while_unavailable("opening the namespace", || async {
            let events = if declares {
                let events = ensure_event_stream(&jetstream, &namespace, replicas).await?;
                ensure_dlq_stream(&jetstream, &namespace, replicas).await?;
                ensure_blob_bucket(&jetstream, &namespace, replicas).await?;
                events
            } else {
                open_streams(&jetstream, &namespace, replicas).await?
            };
            let keys =
                crate::keys::Keyring::open(&jetstream, &namespace, &key_file, declares, replicas)
                    .await?;
            Ok((events, keys))
        })
        .await?;
        Ok(Self {
            client,
            jetstream,
            namespace,
            events,
            keys,
        })
    }

    /// The blob store of this namespace (its bucket must exist: see
    /// [`Bus::start`]); tried again while JetStream does not answer.
    pub async fn blob_store(&self) -> Result<crate::BlobStore, BusError> {
        while_unavailable("opening the blob bucket", || {
            crate::BlobStore::open(&self.jetstream, &self.namespace)
        })
        .await
    }
}

/// How long a start waits for JetStream to answer before giving up.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `attempt` until it succeeds, fails for another reason than
/// `Unavailable`, or [`START_PATIENCE`] has passed (with backoff, logged).
pub(crate) async fn while_unavailable<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    let deadline = tokio::time::Instant::now() + START_PATIENCE;
    let mut backoff = crate::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match attempt().await {
            Err(e)
                if e.kind() == BusErrorKind::Unavailable
                    && tokio::time::Instant::now() < deadline =>
            {
                let delay = backoff.next_delay().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, ?delay, "{what}: JetStream did not answer; trying again");
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// Connects to NATS as `role`, with a name that shows up in `nats server
/// report connections`; waits (retrying) until a server answers.
pub async fn connect(
    options: &NatsOptions,
    role: Role,
    name: &str,
) -> Result<async_nats::Client, BusError> {
    connect_with(options, role, name, true).await
}

/// [`connect`], but one attempt (bounded by the connection timeout): for
/// checks and clean-ups that must not wait for a server that is gone.
pub async fn connect_once(
    options: &NatsOptions,
    role: Role,
    name: &str,
) -> Result<async_nats::Client, BusError> {
    connect_with(options, role, name, false).await
}

async fn connect_with(
    options: &NatsOptions,
    role: Role,
    name: &str,
    retry: bool,
) -> Result<async_nats::Client, BusError> {
    let seeds = seed_urls(&options.url)?;
    let mut connect = options.connect_options(role, name)?;
    if retry {
        connect = connect.retry_on_initial_connect();
    }
    connect.connect(seeds.as_slice()).await.map_err(|e| {
        BusError::unavailable(
            format!("cannot connect to NATS at {} as {role}", options.url),
            e,
        )
    })
}

/// A service's view of a namespace an operator declared: the streams must
/// exist (a service may not create them); a drifted config is reported,
/// not changed.
async fn open_streams(
    js: &jetstream::Context,
    ns: &Namespace,
    replicas: usize,
) -> Result<stream::Stream, BusError> {
    let missing = |name: &str, err: jetstream::context::GetStreamError| {
        if is_stream_not_found(&err) {
            BusError::config(format!(
                "stream {name} of namespace {ns} does not exist: an operator declares it with `mnemo nats setup`"
            ))
        } else {
            BusError::unavailable(format!("cannot open stream {name}"), err)
        }
    };
    for name in [ns.dlq_stream(), format!("OBJ_{}", ns.blob_bucket())] {
        js.get_stream(&name).await.map_err(|e| missing(&name, e))?;
    }
    let wanted = event_stream_config(ns, replicas);
    let mut events = js
        .get_stream(&wanted.name)
        .await
        .map_err(|e| missing(&wanted.name, e))?;
    let info = events
        .info()
        .await
        .map_err(|e| BusError::unavailable("cannot read event stream info", e))?;
    if drifted(&info.config, &wanted) {
        tracing::warn!(stream = %wanted.name, "the event stream's config differs from this version's; an operator updates it with `mnemo nats setup`");
    }
    Ok(events)
}

/// The servers in `--nats-url`: one URL, or several comma-separated (a
/// cluster's seeds; the client learns the rest of the cluster from them
/// and fails over between them).
pub fn seed_urls(url: &str) -> Result<Vec<async_nats::ServerAddr>, BusError> {
    let seeds = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| BusError::config(format!("invalid NATS URL '{s}': {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if seeds.is_empty() {
        return Err(BusError::config("no NATS URL given"));
    }
    Ok(seeds)
}

/// The event stream's config: file storage, kept forever, deduplicated, and
/// immutable (message delete and purge denied).
pub fn event_stream_config(ns: &Namespace, replicas: usize) -> stream::Config {
    stream::Config {
        name: ns.event_stream(),
        description: Some(format!("mnemo event log of namespace {ns}")),
        subjects: vec![ns.all_events()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        // Full refuses new events; it never drops old ones (the log is
        // immutable): matters once an operator sets a size limit.
        discard: stream::DiscardPolicy::New,
        max_age: Duration::ZERO,
        max_message_size: MAX_EVENT_BYTES,
        duplicate_window: DUPLICATE_WINDOW,
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

/// Creates the event stream, or updates it if its config drifted.
pub async fn ensure_event_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    replicas: usize,
) -> Result<stream::Stream, BusError> {
    let config = event_stream_config(ns, replicas);
    match js.get_stream(&config.name).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .map_err(|e| BusError::unavailable("cannot read event stream info", e))?;
            if drifted(&info.config, &config) {
                tracing::info!(stream = %config.name, "updating event stream config");
                // The size limit is the operator's ([`apply_store_limits`]).
                let config = stream::Config {
                    max_bytes: info.config.max_bytes,
                    ..config
                };
                js.update_stream(&config).await.map_err(|e| {
                    BusError::with_source(BusErrorKind::Rejected, "cannot update event stream", e)
                })?;
            }
            Ok(existing)
        }
        Err(err) if is_stream_not_found(&err) => {
            tracing::info!(stream = %config.name, "creating event stream");
            create_stream(js, config).await.map_err(|e| {
                BusError::with_source(BusErrorKind::Rejected, "cannot create event stream", e)
            })
        }
        Err(err) => Err(BusError::unavailable(
            "cannot reach JetStream (is the server running with -js?)",
            err,
        )),
    }
}

/// Whether a stream's config differs from the one this version declares
/// in what mnemo relies on.
fn drifted(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.subjects != wanted.subjects
        || current.max_message_size != wanted.max_message_size
        || current.duplicate_window != wanted.duplicate_window
        || current.allow_direct != wanted.allow_direct
        || current.deny_delete != wanted.deny_delete
        || current.deny_purge != wanted.deny_purge
        || current.max_age != wanted.max_age
        || current.discard != wanted.discard
}

/// A namespace's size limits, set by an operator (`mnemo nats setup
/// --max-event-mib/--max-blob-mib`). None leaves a limit as it is; 0 lifts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes the event stream may hold.
    pub events: Option<u64>,
    /// Bytes the blob bucket (uploads, extracted pages) may hold.
    pub blobs: Option<u64>,
}

/// Sets the event stream's and blob bucket's size limits. At the limit a
/// stream refuses new messages (discard policy `new`): an upload or an
/// append fails with [`BusErrorKind::Full`], nothing is dropped.
pub async fn apply_store_limits(
    js: &jetstream::Context,
    ns: &Namespace,
    limits: StoreLimits,
) -> Result<(), BusError> {
    for (name, limit) in [
        (ns.event_stream(), limits.events),
        (format!("OBJ_{}", ns.blob_bucket()), limits.blobs),
    ] {
        let Some(limit) = limit else { continue };
        let info = stream_info(js, &name).await?;
        let max_bytes = match limit {
            0 => -1,
            n => i64::try_from(n).unwrap_or(i64::MAX),
        };
        if info.config.max_bytes == max_bytes && info.config.discard == stream::DiscardPolicy::New {
            continue;
        }
        let config = stream::Config {
            max_bytes,
            discard: stream::DiscardPolicy::New,
            ..info.config.clone()
        };
        tracing::info!(stream = %name, max_bytes, "setting the size limit");
        js.update_stream(&config).await.map_err(|e| {
            BusError::with_source(
                BusErrorKind::Rejected,
                format!("cannot set the size limit of {name}"),
                e,
            )
        })?;
    }
    Ok(())
}

/// A stream's current config and state.
async fn stream_info(js: &jetstream::Context, name: &str) -> Result<stream::Info, BusError> {
    let mut stream = js
        .get_stream(name)
        .await
        .map_err(|e| BusError::unavailable(format!("cannot open stream {name}"), e))?;
    stream
        .info()
        .await
        .cloned()
        .map_err(|e| BusError::unavailable(format!("cannot read stream {name}"), e))
}

/// What a namespace's streams hold against their limits (None: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub event_bytes: u64,
    pub event_max_bytes: Option<u64>,
    pub blob_bytes: u64,
    pub blob_max_bytes: Option<u64>,
}

/// Reads [`StoreUsage`] (stream infos; any role may).
pub async fn store_usage(js: &jetstream::Context, ns: &Namespace) -> Result<StoreUsage, BusError> {
    let mut sizes = [(0u64, None); 2];
    for (slot, name) in sizes
        .iter_mut()
        .zip([ns.event_stream(), format!("OBJ_{}", ns.blob_bucket())])
    {
        let info = stream_info(js, &name).await?;
        *slot = (
            info.state.bytes,
            u64::try_from(info.config.max_bytes).ok().filter(|&m| m > 0),
        );
    }
    Ok(StoreUsage {
        event_bytes: sizes[0].0,
        event_max_bytes: sizes[0].1,
        blob_bytes: sizes[1].0,
        blob_max_bytes: sizes[1].1,
    })
}

/// Tries a creation again when nats-server 2.9 lost a race with itself: when
/// the account's last stream is deleted it removes the account's store
/// directory, and a stream created at that moment fails with "error creating
/// store for stream" (10049) although nothing is wrong. Seen when tests in
/// parallel create and delete namespaces.
const STORE_RACE_ATTEMPTS: u32 = 5;

/// Waits between attempts of a store race: 20 ms doubling.
fn store_race_backoff() -> crate::Backoff {
    crate::Backoff::new(Duration::from_millis(20), Duration::from_millis(320))
}

async fn create_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    use async_nats::jetstream::context::CreateStreamErrorKind;
    let mut attempt = 1;
    let mut backoff = store_race_backoff();
    loop {
        match js.create_stream(config.clone()).await {
            Err(e)
                if attempt < STORE_RACE_ATTEMPTS
                    && matches!(e.kind(), CreateStreamErrorKind::JetStream(ref j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_CREATE) =>
            {
                tracing::warn!(stream = %config.name, attempt, "stream store race; trying again");
                if let Some(delay) = backoff.next_delay() {
                    tokio::time::sleep(delay).await;
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Creates the dead-letter stream if it does not exist: messages services
/// gave up on, with the reason in headers (see [`crate::consumer`]). Unlike
/// the event log, entries may be deleted once dealt with.
pub async fn ensure_dlq_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    replicas: usize,
) -> Result<stream::Stream, BusError> {
    let name = ns.dlq_stream();
    match js.get_stream(&name).await {
        Ok(s) => Ok(s),
        Err(err) if is_stream_not_found(&err) => create_stream(
            js,
            stream::Config {
                name: name.clone(),
                description: Some(format!("mnemo dead letters of namespace {ns}")),
                subjects: vec![format!("{}.dlq.>", ns.as_str())],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                allow_direct: true,
                num_replicas: replicas.max(1),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            BusError::with_source(BusErrorKind::Rejected, format!("cannot create {name}"), e)
        }),
        Err(err) => Err(BusError::unavailable("cannot reach JetStream", err)),
    }
}

/// Creates the blob bucket if it does not exist.
pub async fn ensure_blob_bucket(
    js: &jetstream::Context,
    ns: &Namespace,
    replicas: usize,
) -> Result<ObjectStore, BusError> {
    let bucket = ns.blob_bucket();
    if let Ok(store) = js.get_object_store(&bucket).await {
        return Ok(store);
    }
    let config = jetstream::object_store::Config {
        bucket: bucket.clone(),
        description: Some(format!("mnemo blobs (by SHA-256) of namespace {ns}")),
        storage: stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    let mut attempt = 1;
    let mut backoff = store_race_backoff();
    loop {
        match js.create_object_store(config.clone()).await {
            Ok(store) => return Ok(store),
            // The bucket is a stream: the same store race as [`create_stream`].
            Err(e)
                if attempt < STORE_RACE_ATTEMPTS
                    && e.kind() == jetstream::context::CreateObjectStoreErrorKind::BucketCreate =>
            {
                tracing::warn!(%bucket, attempt, "bucket store race; trying again");
                if let Some(delay) = backoff.next_delay() {
                    tokio::time::sleep(delay).await;
                }
                attempt += 1;
            }
            Err(e) => {
                return Err(BusError::with_source(
                    BusErrorKind::Rejected,
                    format!("cannot create blob bucket {bucket}"),
                    e,
                ))
            }
        }
    }
}

/// Deletes everything of a namespace on NATS (tests and `mnemo` operators only).
pub async fn delete_namespace(js: &jetstream::Context, ns: &Namespace) -> Result<(), BusError> {
    for name in [
        ns.event_stream(),
        ns.dlq_stream(),
        ns.keys_stream(),
        format!("OBJ_{}", ns.blob_bucket()),
    ] {
        if let Err(e) = js.delete_stream(&name).await {
            if !is_stream_not_found(&e) {
                return Err(BusError::with_source(
                    BusErrorKind::Rejected,
                    format!("cannot delete {name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn is_stream_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_seed_urls_are_taken_and_bad_ones_refused() {
        let seeds = seed_urls("nats://a:4222, nats://b:4223,nats://c:4224").map(|s| s.len());
        assert_eq!(seeds.ok(), Some(3));
        for bad in ["", " , ", "nats://a:4222,http://[::1"] {
            assert_eq!(
                seed_urls(bad).err().map(|e| e.kind()),
                Some(BusErrorKind::Config),
                "{bad}"
            );
        }
    }
}
