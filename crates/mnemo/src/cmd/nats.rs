//! `mnemo nats credentials|setup`: the event log's access, for operators.
//!
//! `credentials --dir DIR` makes an nkey seed for every service role that
//! has none (0600 files in a 0700 directory; existing ones are kept) and
//! prints the public keys as the `MNEMO_NKEY_<ROLE>=…` lines `nats.conf`
//! reads from nats-server's environment. `setup` signs in as the operator
//! and declares a namespace's streams and blob bucket, which the services
//! may not do themselves.

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
    /// Declare the namespace's event stream, dead letters and blob bucket
    /// (or update their config), as the operator.
    Setup {
        #[command(flatten)]
        backend: Backend,
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
        NatsCommand::Setup { backend } => {
            let ns = Namespace::new(&backend.namespace)?;
            let bus = backend.operator_bus(ns).await?;
            println!(
                "namespace {} ready: streams {} and {}, bucket {}",
                bus.namespace,
                bus.namespace.event_stream(),
                bus.namespace.dlq_stream(),
                bus.namespace.blob_bucket()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
