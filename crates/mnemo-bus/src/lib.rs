//! JetStream plumbing for mnemo: the event log, the blob store, and the
//! cqrs-es event store that appends to one and reads from the other.
//!
//! Owns: stream and bucket definitions (idempotent setup), the event envelope
//! (headers every event message carries), optimistic-concurrency appends,
//! aggregate loading (with a cache kept honest by the expected-sequence
//! check), each owner's sealed blobs, the owners' data keys (every payload
//! and blob sealed with its owner's; erasing a learner destroys theirs),
//! the namespace's size limits, and the order in which a service's workers
//! take messages (owners in turn).
//! Must not: know what a PDF, a chunk or a gRPC status is; store a
//! personal byte unsealed. Domain types come
//! in through cqrs-es's `Aggregate` and `DomainEvent` (and
//! `mnemo_domain::schema::Upcast` for their older schema versions).
//!
//! # Layout
//! - [`namespace`]: the prefix that isolates installs and tests; every name
//!   (stream, subject, bucket, consumer, SQL schema) is derived here.
//! - [`envelope`]: header names and the per-message envelope.
//! - [`credentials`]: service roles, their NATS credentials (nkeys) and TLS.
//! - [`setup`]: connecting, and creating/updating the event stream and blob bucket.
//! - [`event_store`]: `JetStreamEventStore`, cqrs-es's `EventStore` on JetStream.
//! - [`commands`]: executing a command with bounded retries on conflict.
//! - [`consumer`]: the durable-consumer loop services share (ack after
//!   output, backoff, bounded attempts, dead letters, graceful stop).
//! - [`fair`]: reading ahead and serving owners in turn (fair sharing), and
//!   the express runtime for an owner beside another's batch.
//! - [`metrics`]: the consumers' metrics (lag, results, handling time).
//! - [`trace`]: continuing the trace an event carries (W3C `traceparent`)
//!   in the span that handles it, and on what that span appends.
//! - [`dlq`]: listing and clearing dead letters (`mnemo dlq`).
//! - [`keys`]: per-owner data keys (envelope encryption), the keyring stream,
//!   and the key file they are wrapped under.
//! - [`erase`]: erasing a learner (crypto-shredding).
//! - [`blob_store`]: each owner's blobs, sealed, on the JetStream Object Store.
//! - [`scan`]: walking a subject's messages by direct get.
//! - [`upcast`]: older event schemas read as current ones.
//! - [`backoff`]: the delays every retry loop in mnemo waits (backon).
//! - [`error`]: `BusError` and its `kind()`.

pub mod backoff;
pub mod blob_store;
pub mod commands;
pub mod consumer;
pub mod credentials;
pub mod dlq;
pub mod envelope;
pub mod erase;
pub mod error;
pub mod event_store;
pub mod fair;
pub mod keys;
pub mod metrics;
pub mod namespace;
pub mod scan;
pub mod setup;
pub mod trace;
pub mod upcast;

pub use backoff::Backoff;
pub use blob_store::BlobStore;
pub use commands::{CommandExecutor, ExecuteError, RetryPolicy};
pub use consumer::{ConsumerSpec, Delivery, Handler, Outcome};
pub use credentials::{NatsOptions, NatsTls, Role};
pub use envelope::Envelope;
pub use error::{BusError, BusErrorKind};
pub use event_store::{JetStreamEventStore, StoredEvents};
pub use keys::{KeyState, Keyring, OwnerKey};
pub use namespace::Namespace;
pub use setup::{connect, ensure_blob_bucket, ensure_event_stream, Bus};
