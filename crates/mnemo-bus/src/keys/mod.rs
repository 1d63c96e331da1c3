//! Per-owner data keys: envelope encryption and crypto-shredding
//! (decision 022, docs/security.md *Erasing a learner*).
//!
//! Every owner has a random 256-bit data key, kept wrapped by the
//! deployment's key-encryption key ([`file`]) in the namespace's keyring
//! stream `<NS>_KEYS`:
//!
//! | subject | holds | written by |
//! |---|---|---|
//! | `<ns>.keyring` | the KEK's id and the owner-token scheme | the operator, once (`Bus::start`) |
//! | `<ns>.keys.<token>` | the owner's wrapped data key; its *first* message counts | whoever writes the owner's first event or blob |
//! | `<ns>.erased.<token>` | the erasure marker | an erase ([`crate::erase`]) |
//!
//! Every personal byte mnemo stores is sealed with the owner's key
//! ([`seal`]): event payloads ([`crate::event_store`]), blobs
//! ([`crate::blob_store`]), and so the dead letters that copy events.
//! Erasing an owner writes the marker and then erases every message of
//! the key's subject (`STREAM.MSG.DELETE`, which overwrites the bytes on
//! disk): from then on the owner's events are tombstones to every reader.
//!
//! Owns: the keyring stream, creating and unwrapping owners' keys, the
//! cache of unwrapped keys, and the check at start that the key file is
//! the namespace's. Must not: decide what an event means, or hold a key
//! longer than [`KEY_TTL`] without looking for its erasure marker.

pub mod file;
pub mod seal;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::{self, stream};
use data_encoding::BASE64;
use mnemo_domain::owner::{install_token_scheme, TokenScheme};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{BusError, BusErrorKind};
use crate::namespace::Namespace;
use crate::scan::next_message;
pub use file::{KeyEncryptionKey, KeyFile};
pub use seal::OwnerKey;

/// How long an unwrapped key is used before its erasure marker is looked
/// for again: the longest a process that missed an erasure keeps the key.
pub const KEY_TTL: Duration = Duration::from_secs(30);

/// Token scheme names in the keyring record.
const TOKENS_KEYED: &str = "hmac-sha256/v1";
const TOKENS_BASE32: &str = "base32";

/// What is known of an owner's key.
#[derive(Debug, Clone)]
pub enum KeyState {
    /// The owner's key: their sealed bytes open with it.
    Live(OwnerKey),
    /// The owner was erased: nothing of theirs is read or written again.
    Erased,
    /// The owner never had a key (nothing sealed; plaintext history from
    /// before keys, or no history at all).
    Missing,
}

/// The namespace's key record (`<ns>.keyring`).
#[derive(Debug, Serialize, Deserialize)]
struct KeyringRecord {
    kek_id: String,
    owner_tokens: String,
    /// The first event-stream sequence written with keys: every event from
    /// here on must be sealed (an unsealed one is forged or corrupt).
    #[serde(default)]
    sealed_from: u64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

/// One owner's key record (`<ns>.keys.<token>`).
#[derive(Serialize, Deserialize)]
struct KeyRecord {
    kek_id: String,
    wrapped: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

/// An erasure marker (`<ns>.erased.<token>`): nothing personal.
#[derive(Serialize, Deserialize)]
struct ErasedRecord {
    #[serde(with = "time::serde::rfc3339")]
    erased_at: time::OffsetDateTime,
}

struct Store {
    js: jetstream::Context,
    stream: Stream,
}

/// The owners' keys of one namespace, for one process (cheap to clone).
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    /// The keyring stream; None offline ([`Keyring::offline`]).
    store: Option<Store>,
    ns: Namespace,
    kek: Arc<dyn KeyEncryptionKey>,
    cache: Mutex<HashMap<String, (KeyState, Instant)>>,
    /// See [`KeyringRecord::sealed_from`] (0 offline: nothing required).
    sealed_from: u64,
}

impl Keyring {
    /// Opens the namespace's keyring with `kek`. The operator (`declares`)
    /// creates the stream and the key record when missing; a service
    /// requires both. Either way the KEK must be the one the record names,
    /// and this process's owner-token scheme becomes the record's.
    pub async fn open(
        js: &jetstream::Context,
        ns: &Namespace,
        key_file: &KeyFile,
        declares: bool,
        replicas: usize,
    ) -> Result<Self, BusError> {
        let kek = key_file.kek();
        let stream = if declares {
            ensure_keys_stream(js, ns, replicas).await?
        } else {
            js.get_stream(ns.keys_stream()).await.map_err(|e| {
                let missing = matches!(
                    e.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(ref j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                );
                let kind = if missing {
                    BusErrorKind::Config
                } else {
                    BusErrorKind::Unavailable
                };
                BusError::with_source(
                    kind,
                    format!(
                        "cannot open the keyring {} of namespace {ns}: an operator declares it with `mnemo nats setup`",
                        ns.keys_stream()
                    ),
                    e,
                )
            })?
        };
        let record = match last_json::<KeyringRecord>(&stream, &ns.keyring_subject()).await? {
            Some(r) => r,
            None if declares => create_keyring_record(js, ns, kek.id()).await?,
            None => {
                return Err(BusError::config(format!(
                    "namespace {ns} has no keyring record: an operator declares it with `mnemo nats setup`"
                )))
            }
        };
        if record.kek_id != kek.id() {
            return Err(BusError::config(format!(
                "the key file's key-encryption key ({}) is not the one namespace {ns}'s keys are wrapped with ({}): \
                 this is another deployment's key file, or the right one was lost. Nothing was read or written; \
                 start with the namespace's key file",
                kek.id(),
                record.kek_id
            )));
        }
        let scheme = match record.owner_tokens.as_str() {
            TOKENS_KEYED => TokenScheme::Keyed(key_file.token_key()),
            TOKENS_BASE32 => TokenScheme::Base32,
            other => {
                return Err(BusError::config(format!(
                    "namespace {ns}'s keyring names an unknown owner-token scheme '{other}'"
                )))
            }
        };
        install_token_scheme(scheme).map_err(|e| BusError::config(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store: Some(Store {
                    js: js.clone(),
                    stream,
                }),
                ns: ns.clone(),
                kek: Arc::new(key_file.kek().clone()),
                cache: Mutex::new(HashMap::new()),
                sealed_from: record.sealed_from,
            }),
        })
    }

    /// A keyring that reaches no keyring stream: every owner has no key
    /// (plaintext reads only), and nothing can be sealed or erased. For
    /// unit tests of readers.
    pub fn offline(ns: Namespace) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: None,
                ns,
                kek: Arc::new(KeyFile::from_master(&[0; 32]).kek().clone()),
                cache: Mutex::new(HashMap::new()),
                sealed_from: u64::MAX,
            }),
        }
    }

    fn store(&self) -> Result<&Store, BusError> {
        self.inner.store.as_ref().ok_or_else(|| {
            BusError::config("this keyring is offline: it reaches no keyring stream")
        })
    }

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.ns
    }

    /// The first event-stream sequence at which every event is sealed.
    pub fn sealed_from(&self) -> u64 {
        self.inner.sealed_from
    }

    /// The state of `token`'s key: from the cache when younger than
    /// [`KEY_TTL`] (an erasure is final, so cached for good).
    pub async fn state(&self, token: &str) -> Result<KeyState, BusError> {
        if let Some(state) = self.cached(token) {
            return Ok(state);
        }
        self.fetch(token).await
    }

    /// `token`'s key for reading a *sealed* message: a cached "missing" is
    /// looked up again (another process may have made the key since).
    /// Still missing is `Unavailable`: the key is on its way (a replica
    /// behind the leader), since a sealed message proves it was made.
    pub async fn state_for_sealed(&self, token: &str) -> Result<KeyState, BusError> {
        let state = match self.cached(token) {
            Some(KeyState::Missing) | None => self.fetch(token).await?,
            Some(state) => state,
        };
        match state {
            KeyState::Missing => Err(BusError::new(
                BusErrorKind::Unavailable,
                format!("the key of owner {token} is not readable yet"),
            )),
            state => Ok(state),
        }
    }

    /// Whether `token`'s erasure marker is there, read afresh (not from
    /// the cache): what a `LearnerErased` event is checked against, since
    /// only the API and the operator may write a marker. If so, this
    /// process holds the owner erased from now on.
    pub async fn confirm_erased(&self, token: &str) -> Result<bool, BusError> {
        let Some(store) = &self.inner.store else {
            return Ok(false);
        };
        let marked = first_message(&store.stream, &self.inner.ns.erased_subject(token))
            .await?
            .is_some();
        if marked {
            self.mark_erased(token);
        }
        Ok(marked)
    }

    /// `token`'s key for writing: made (and stored, wrapped) if the owner
    /// has none yet; [`BusErrorKind::Erased`] if the owner was erased.
    pub async fn for_writing(&self, token: &str) -> Result<OwnerKey, BusError> {
        match self.state(token).await? {
            KeyState::Live(key) => Ok(key),
            KeyState::Erased => Err(erased(token)),
            KeyState::Missing => self.create(token).await,
        }
    }

    /// The key of the owner of `aggregate_id` (`<owner token>.<id>`), for
    /// reading and writing their blobs and events.
    pub async fn for_aggregate(&self, aggregate_id: &str) -> Result<OwnerKey, BusError> {
        let token = aggregate_id.split('.').next().unwrap_or_default();
        self.for_writing(token).await
    }

    /// Records that `token` was erased (its `LearnerErased` was read): no
    /// cached key of theirs is used again in this process.
    pub fn mark_erased(&self, token: &str) {
        self.remember(token, &KeyState::Erased);
    }

    fn cached(&self, token: &str) -> Option<KeyState> {
        let cache = self.lock();
        let (state, at) = cache.get(token)?;
        match state {
            KeyState::Erased => Some(KeyState::Erased),
            _ if at.elapsed() < KEY_TTL => Some(state.clone()),
            _ => None,
        }
    }

    fn remember(&self, token: &str, state: &KeyState) {
        let mut cache = self.lock();
        // Bounded: a process that has seen very many owners starts over
        // (each entry is re-read on its next use).
        if cache.len() >= 100_000 {
            cache.clear();
        }
        cache.insert(token.to_owned(), (state.clone(), Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (KeyState, Instant)>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch(&self, token: &str) -> Result<KeyState, BusError> {
        let ns = &self.inner.ns;
        let Some(store) = &self.inner.store else {
            return Ok(KeyState::Missing);
        };
        let state = if first_message(&store.stream, &ns.erased_subject(token))
            .await?
            .is_some()
        {
            KeyState::Erased
        } else {
            match self.first_good_key(store, token).await? {
                Scan::Found(key) => KeyState::Live(key),
                Scan::None { .. } => KeyState::Missing,
            }
        };
        self.remember(token, &state);
        Ok(state)
    }

    /// The owner's key: the first record of their key subject that unwraps
    /// under the KEK bound to their token (a record another process could
    /// publish first, garbage or wrapped under another key, is skipped).
    async fn first_good_key(&self, store: &Store, token: &str) -> Result<Scan, BusError> {
        let subject = self.inner.ns.key_subject(token);
        let mut next = 1;
        let mut last = 0;
        loop {
            let Some(message) = next_message(&store.stream, &subject, next, KEYRING).await? else {
                break;
            };
            next = message.sequence + 1;
            last = message.sequence;
            match self.unwrap_record(token, &message.payload).await {
                Ok(key) => return Ok(Scan::Found(key)),
                Err(e) => {
                    tracing::error!(owner = token, sequence = message.sequence, error = %e, "a key record that does not unwrap; skipped");
                }
            }
        }
        Ok(Scan::None { last })
    }

    async fn unwrap_record(&self, token: &str, bytes: &[u8]) -> Result<OwnerKey, BusError> {
        let record: KeyRecord = serde_json::from_slice(bytes).map_err(|e| {
            BusError::with_source(
                BusErrorKind::Corrupt,
                format!("the key record of owner {token} is damaged"),
                e,
            )
        })?;
        let wrapped = BASE64.decode(record.wrapped.as_bytes()).map_err(|e| {
            BusError::with_source(
                BusErrorKind::Corrupt,
                format!("the key record of owner {token} is damaged"),
                e,
            )
        })?;
        let dek = self
            .inner
            .kek
            .unwrap(&wrapped, &wrap_context(token))
            .await?;
        Ok(OwnerKey::new(token, &dek))
    }

    async fn create(&self, token: &str) -> Result<OwnerKey, BusError> {
        let store = self.store()?;
        // After the last record there is (none, or only ones that do not
        // unwrap): a record published since makes this one fail, and the
        // next look finds it.
        let last = match self.first_good_key(store, token).await? {
            Scan::Found(key) => {
                self.remember(token, &KeyState::Live(key.clone()));
                return Ok(key);
            }
            Scan::None { last } => last,
        };
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(&mut dek[..]);
        let wrapped = self.inner.kek.wrap(&dek, &wrap_context(token)).await?;
        let record = KeyRecord {
            kek_id: self.inner.kek.id().to_owned(),
            wrapped: BASE64.encode(&wrapped),
            created_at: time::OffsetDateTime::now_utc(),
        };
        let payload = serde_json::to_vec(&record).map_err(|e| {
            BusError::with_source(BusErrorKind::Rejected, "cannot encode a key record", e)
        })?;
        let subject = self.inner.ns.key_subject(token);
        let message = jetstream::message::PublishMessage::build()
            .expected_last_subject_sequence(last)
            .payload(payload.into());
        let sent = match store.js.send_publish(subject, message).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(ack) => {
                // An erasure may have come between the look and the
                // publish: then this key is erased at once, never used.
                if self.confirm_erased(token).await? {
                    let _ = store.stream.delete_message(ack.sequence).await;
                    return Err(erased(token));
                }
                let key = OwnerKey::new(token, &dek);
                self.remember(token, &KeyState::Live(key.clone()));
                Ok(key)
            }
            // Another process made the owner's key first: use theirs.
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                match self.fetch(token).await? {
                    KeyState::Live(key) => Ok(key),
                    KeyState::Erased => Err(erased(token)),
                    KeyState::Missing => Err(BusError::new(
                        BusErrorKind::Unavailable,
                        format!(
                            "the key of owner {token} was made elsewhere but cannot be read yet"
                        ),
                    )),
                }
            }
            Err(e) => Err(BusError::unavailable(
                format!("cannot store the key of owner {token}"),
                e,
            )),
        }
    }

    /// Writes `token`'s erasure marker (once): from here on every reader
    /// takes the owner for erased, and no key of theirs is made again.
    /// Returns whether the owner had a key record.
    pub async fn mark_erasure(&self, token: &str) -> Result<bool, BusError> {
        let ns = &self.inner.ns;
        let store = self.store()?;
        if first_message(&store.stream, &ns.erased_subject(token))
            .await?
            .is_none()
        {
            let payload = serde_json::to_vec(&ErasedRecord {
                erased_at: time::OffsetDateTime::now_utc(),
            })
            .map_err(|e| BusError::with_source(BusErrorKind::Rejected, "cannot encode", e))?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("erased-{token}").as_str(),
            );
            store
                .js
                .publish_with_headers(ns.erased_subject(token), headers, payload.into())
                .await
                .map_err(|e| BusError::unavailable("cannot write an erasure marker", e))?
                .await
                .map_err(|e| BusError::unavailable("cannot write an erasure marker", e))?;
        }
        self.mark_erased(token);
        self.has_key_records(token).await
    }

    /// Erases every message of `token`'s key subject (JetStream overwrites
    /// an erased message on disk), once the marker is there. Returns how
    /// many. Idempotent.
    pub async fn shred_key(&self, token: &str) -> Result<usize, BusError> {
        let store = self.store()?;
        if !self.confirm_erased(token).await? {
            return Err(BusError::new(
                BusErrorKind::Rejected,
                format!("owner {token} has no erasure marker: their key is not shredded"),
            ));
        }
        let subject = self.inner.ns.key_subject(token);
        let (mut next, mut erased_messages) = (1, 0);
        loop {
            let Some(message) = next_message(&store.stream, &subject, next, KEYRING).await? else {
                break;
            };
            next = message.sequence + 1;
            // Erased already (a replica behind still showed it) is fine.
            if store.stream.delete_message(message.sequence).await.is_ok() {
                erased_messages += 1;
            }
        }
        if self.has_key_records(token).await? {
            return Err(BusError::new(
                BusErrorKind::Unavailable,
                format!("the key of owner {token} is not erased yet; run the erasure again"),
            ));
        }
        Ok(erased_messages)
    }

    /// Whether any record of `token`'s key is still stored.
    pub async fn has_key_records(&self, token: &str) -> Result<bool, BusError> {
        let store = self.store()?;
        Ok(
            first_message(&store.stream, &self.inner.ns.key_subject(token))
                .await?
                .is_some(),
        )
    }
}

/// What a scan of an owner's key subject found.
enum Scan {
    Found(OwnerKey),
    /// No record that unwraps; `last` is the subject's last sequence (0: none).
    None {
        last: u64,
    },
}

/// The error for anything written or asked of an erased owner.
pub fn erased(token: &str) -> BusError {
    BusError::new(
        BusErrorKind::Erased,
        format!("learner {token} was erased: nothing of theirs is read or written again"),
    )
}

/// What a data key is bound to when wrapped: its owner.
fn wrap_context(token: &str) -> Vec<u8> {
    format!("mnemo/data-key/v1/{token}").into_bytes()
}

/// The first message of `subject`, if any.
async fn first_message(stream: &Stream, subject: &str) -> Result<Option<bytes::Bytes>, BusError> {
    Ok(next_message(stream, subject, 1, KEYRING)
        .await?
        .map(|m| m.payload))
}

/// What the keyring's read errors name.
const KEYRING: &str = "the keyring";

async fn last_json<T: serde::de::DeserializeOwned>(
    stream: &Stream,
    subject: &str,
) -> Result<Option<T>, BusError> {
    match stream.direct_get_last_for_subject(subject).await {
        Ok(m) => serde_json::from_slice(&m.payload).map(Some).map_err(|e| {
            BusError::with_source(BusErrorKind::Corrupt, format!("{subject} is damaged"), e)
        }),
        Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
        Err(e) => Err(BusError::unavailable("cannot read the keyring", e)),
    }
}

/// Writes the namespace's key record: keyed owner tokens, unless the
/// event log already holds events (then their subjects' base32 tokens
/// stay, so owners keep their history).
async fn create_keyring_record(
    js: &jetstream::Context,
    ns: &Namespace,
    kek_id: &str,
) -> Result<KeyringRecord, BusError> {
    // Keys or markers without the record: it was lost (or removed). Never
    // write a new one over them: its token scheme could differ.
    let keyring = js
        .get_stream(ns.keys_stream())
        .await
        .map_err(|e| BusError::unavailable("cannot open the keyring", e))?;
    let others = first_message(&keyring, &format!("{}.keys.>", ns.as_str()))
        .await?
        .is_some()
        || first_message(&keyring, &format!("{}.erased.>", ns.as_str()))
            .await?
            .is_some();
    if others {
        return Err(BusError::config(format!(
            "namespace {ns}'s keyring holds keys but not its record ({}): restore it from a backup of the keyring; it is never written again over keys",
            ns.keyring_subject()
        )));
    }
    let last_event = match js.get_stream(ns.event_stream()).await {
        Ok(mut s) => s
            .info()
            .await
            .map(|i| {
                if i.state.messages > 0 {
                    i.state.last_sequence
                } else {
                    0
                }
            })
            .map_err(|e| BusError::unavailable("cannot read event stream info", e))?,
        Err(_) => 0,
    };
    let record = KeyringRecord {
        kek_id: kek_id.to_owned(),
        owner_tokens: if last_event > 0 {
            TOKENS_BASE32
        } else {
            TOKENS_KEYED
        }
        .to_owned(),
        sealed_from: last_event + 1,
        created_at: time::OffsetDateTime::now_utc(),
    };

    let payload = serde_json::to_vec(&record)
        .map_err(|e| BusError::with_source(BusErrorKind::Rejected, "cannot encode", e))?;
    let message = jetstream::message::PublishMessage::build()
        .expected_last_subject_sequence(0)
        .payload(payload.into());
    let sent = match js.send_publish(ns.keyring_subject(), message).await {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(_) => {
            tracing::info!(namespace = %ns, kek = kek_id, owner_tokens = %record.owner_tokens, "keyring declared");
            Ok(record)
        }
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
            let stream = js
                .get_stream(ns.keys_stream())
                .await
                .map_err(|e| BusError::unavailable("cannot open the keyring", e))?;
            last_json(&stream, &ns.keyring_subject())
                .await?
                .ok_or_else(|| {
                    BusError::new(
                        BusErrorKind::Unavailable,
                        "the keyring record is not readable yet",
                    )
                })
        }
        Err(e) => Err(BusError::unavailable("cannot write the keyring record", e)),
    }
}

/// The keyring stream's config: file storage, kept forever, message
/// delete allowed (an erasure overwrites a key), purge denied.
pub fn keys_stream_config(ns: &Namespace, replicas: usize) -> stream::Config {
    stream::Config {
        name: ns.keys_stream(),
        description: Some(format!("mnemo owners' wrapped data keys of namespace {ns}")),
        subjects: vec![
            format!("{}.keys.>", ns.as_str()),
            format!("{}.erased.>", ns.as_str()),
            ns.keyring_subject(),
        ],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        max_message_size: 4096,
        duplicate_window: crate::setup::DUPLICATE_WINDOW,
        allow_direct: true,
        deny_delete: false,
        deny_purge: true,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

async fn ensure_keys_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    replicas: usize,
) -> Result<Stream, BusError> {
    let config = keys_stream_config(ns, replicas);
    js.get_or_create_stream(config).await.map_err(|e| {
        BusError::with_source(
            BusErrorKind::Rejected,
            format!("cannot declare the keyring {}", ns.keys_stream()),
            e,
        )
    })
}
