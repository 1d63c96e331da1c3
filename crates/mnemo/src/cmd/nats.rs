//! `mnemo nats credentials|setup`: the event log's access, for operators.
//!
//! `credentials --dir DIR` makes an nkey seed for every service role that
//! has none (0600 files in a 0700 directory; existing ones are kept) and
//! prints the public keys as the `MNEMO_NKEY_<ROLE>=…` lines `nats.conf`
//! reads from nats-server's environment. `setup` signs in as the operator
//! and declares a namespace's streams and blob bucket, which the services
//! may not do themselves, and sets their size limits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mnemo_bus::Namespace;

use crate::cli::Backend;

#[derive(Args)]
pub struct NatsArgs {
    #[command(subcommand)]
    pub command: NatsCommand,
}

#[derive(Subcommand)]
pub enum NatsCommand {
    /// Make the roles' nkeys (kept if they exist); print their public keys
    /// as environment lines for `nats-server -c nats.conf`.
    Credentials {
        /// Where the seeds go (`<role>.nk`, mode 0600) with `<role>.pub`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Declare the namespace's event stream, dead letters, blob bucket and
    /// keyring (or update their config), as the operator.
    Setup {
        // Boxed (clippy's large_enum_variant): the other variant is a path.
        #[command(flatten)]
        backend: Box<Backend>,
        /// MiB the event log may hold; at the limit, appends are refused
        /// (nothing is ever dropped). 0 lifts the limit; unset keeps it.
        #[arg(long, env = "MNEMO_MAX_EVENT_MIB", value_name = "MIB")]
        max_event_mib: Option<u64>,
        /// MiB the blob bucket (uploads, extracted pages) may hold; at the
        /// limit, uploads are refused with RESOURCE_EXHAUSTED. 0 lifts the
        /// limit; unset keeps it.
        #[arg(long, env = "MNEMO_MAX_BLOB_MIB", value_name = "MIB")]
        max_blob_mib: Option<u64>,
    },
}

pub async fn run(args: NatsArgs) -> Result<ExitCode> {
    match args.command {
        NatsCommand::Credentials { dir } => {
            let keys = mnemo_bus::credentials::ensure_credentials(&dir)
                .with_context(|| format!("making NATS credentials in {}", dir.display()))?;
            for (role, public) in keys {
                println!("{}={public}", role.public_key_env());
            }
        }
        NatsCommand::Setup {
            backend,
            max_event_mib,
            max_blob_mib,
        } => {
            let ns = Namespace::new(&backend.namespace)?;
            let bus = backend.operator_bus(ns).await?;
            let mib = |m: Option<u64>| m.map(|m| m.saturating_mul(1 << 20));
            let limits = mnemo_bus::setup::StoreLimits {
                events: mib(max_event_mib),
                blobs: mib(max_blob_mib),
            };
            mnemo_bus::setup::apply_store_limits(&bus.jetstream, &bus.namespace, limits).await?;
            let usage = mnemo_bus::setup::store_usage(&bus.jetstream, &bus.namespace).await?;
            let shown = |used: u64, max: Option<u64>| match max {
                Some(max) => format!("{} of {} MiB", used >> 20, max >> 20),
                None => format!("{} MiB, no limit", used >> 20),
            };
            println!(
                "namespace {} ready: streams {} ({}) and {}, bucket {} ({})",
                bus.namespace,
                bus.namespace.event_stream(),
                shown(usage.event_bytes, usage.event_max_bytes),
                bus.namespace.dlq_stream(),
                bus.namespace.blob_bucket(),
                shown(usage.blob_bytes, usage.blob_max_bytes),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
