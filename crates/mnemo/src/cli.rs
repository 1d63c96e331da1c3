//! The command line's top: the parser, the flags every command understands
//! ([`Global`]), where the services find NATS and PostgreSQL ([`Backend`]),
//! and the list of commands. Each command's own flags (its `Args`) live
//! beside the code that runs it, in `cmd/<x>.rs` (and `serve.rs`), so a new
//! command is one module plus one line here. Each flag has an env fallback
//! (`MNEMO_…`) and a default that works on a local machine.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{cmd, serve};

#[derive(Parser)]
#[command(
    name = "mnemo",
    version,
    about = "Event-sourced study companion backend"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands.
#[derive(Args, Clone)]
pub struct Global {
    /// gRPC address of a running mnemo API (client commands): `http://…`,
    /// `https://…` (TLS), or a bare `host:port` (plaintext).
    #[arg(
        long,
        env = "MNEMO_SERVER",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub server: String,
    /// CA certificate (PEM) an `https://` server's certificate must chain
    /// to (default: the system's CA store).
    #[arg(long, env = "MNEMO_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for a server that asks for one (mutual TLS).
    #[arg(
        long,
        env = "MNEMO_CLIENT_CERT",
        global = true,
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "MNEMO_CLIENT_KEY",
        global = true,
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Bearer token (client commands). Without one, a token for --owner is
    /// minted from the local JWT secret file, if this machine has it.
    #[arg(long, env = "MNEMO_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Owner used for a locally minted token when no --token is given.
    #[arg(long, env = "MNEMO_OWNER", default_value = "local", global = true)]
    pub owner: String,
    /// File holding the HS256 secret (created on first use by the server or `token issue`).
    #[arg(long, env = "MNEMO_JWT_SECRET_FILE", global = true)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,mnemo_bus=debug`.
    /// Default: `info` for servers, `warn` for client commands.
    #[arg(long, env = "MNEMO_LOG", global = true)]
    pub log: Option<String>,
}

impl Global {
    /// These flags as the environment variables they fall back to, for a
    /// child process that should see the same values (`mnemo bench …`).
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![
            ("MNEMO_SERVER", OsString::from(&self.server)),
            ("MNEMO_OWNER", OsString::from(&self.owner)),
        ];
        if let Some(token) = &self.token {
            env.push(("MNEMO_TOKEN", token.into()));
        }
        if let Some(file) = &self.jwt_secret_file {
            env.push(("MNEMO_JWT_SECRET_FILE", file.into()));
        }
        if let Some(log) = &self.log {
            env.push(("MNEMO_LOG", log.into()));
        }
        for (name, path) in [
            ("MNEMO_CA_CERT", &self.ca_cert),
            ("MNEMO_CLIENT_CERT", &self.client_cert),
            ("MNEMO_CLIENT_KEY", &self.client_key),
        ] {
            if let Some(p) = path {
                env.push((name, p.into()));
            }
        }
        env
    }
}

/// Where the services find NATS and PostgreSQL, and which namespace is theirs.
#[derive(Args, Clone)]
pub struct Backend {
    /// NATS: one URL, or a cluster's seeds comma-separated (`tls://` for TLS).
    #[arg(long, env = "MNEMO_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The NATS credential: a directory of `<role>.nk` nkey seeds (each
    /// service signs in as its role; operator commands as `operator`), or
    /// one seed file. Made by `mnemo nats credentials`; mode 0600.
    #[arg(long, env = "MNEMO_NATS_CREDS", value_name = "DIR|FILE")]
    pub nats_creds: Option<PathBuf>,
    /// CA (PEM) the NATS server's certificate is checked against (implies TLS).
    #[arg(long, env = "MNEMO_NATS_CA", value_name = "PEM")]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a NATS server that verifies clients.
    #[arg(
        long,
        env = "MNEMO_NATS_CERT",
        value_name = "PEM",
        requires = "nats_key"
    )]
    pub nats_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(
        long,
        env = "MNEMO_NATS_KEY",
        value_name = "PEM",
        requires = "nats_cert"
    )]
    pub nats_key: Option<PathBuf>,
    #[arg(
        long,
        env = "MNEMO_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Prefixes streams, subjects, consumers and the SQL schema.
    #[arg(long, env = "MNEMO_NAMESPACE", default_value = "mnemo")]
    pub namespace: String,
    /// The deployment's key file: every learner's data key is wrapped
    /// under the key derived from it (`mnemo keys init FILE` makes one;
    /// mode 0600; keep a copy safe: without it nothing can be read).
    #[arg(long, env = "MNEMO_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// JetStream replicas for the stream and bucket (3 on a cluster).
    #[arg(long, env = "MNEMO_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
}

impl Backend {
    /// The NATS settings as environment for a `mnemo serve` this process
    /// starts: the URL and the paths of credentials and certificates
    /// (paths only: no secret goes into a child's environment).
    pub fn nats_env(&self) -> Vec<(&'static str, OsString)> {
        let mut env = vec![("MNEMO_NATS_URL", OsString::from(&self.nats_url))];
        for (name, path) in [
            ("MNEMO_NATS_CREDS", &self.nats_creds),
            ("MNEMO_NATS_CA", &self.nats_ca),
            ("MNEMO_NATS_CERT", &self.nats_cert),
            ("MNEMO_NATS_KEY", &self.nats_key),
            ("MNEMO_KEY_FILE", &self.key_file),
        ] {
            if let Some(p) = path {
                env.push((name, p.into()));
            }
        }
        env
    }

    /// Signs in to NATS as the operator and declares `ns` (its streams and
    /// bucket): what operator commands and benchmarks start with.
    pub async fn operator_bus(&self, ns: mnemo_bus::Namespace) -> anyhow::Result<mnemo_bus::Bus> {
        use anyhow::Context;
        mnemo_bus::Bus::start(&self.nats(), mnemo_bus::Role::Operator, ns, self.replicas)
            .await
            .context("connecting to NATS as the operator (are NATS and --nats-creds right? try `mnemo doctor`)")
    }

    /// Where NATS is and how to sign in there.
    pub fn nats(&self) -> mnemo_bus::NatsOptions {
        mnemo_bus::NatsOptions {
            url: self.nats_url.clone(),
            creds: self.nats_creds.clone(),
            tls: mnemo_bus::NatsTls {
                ca: self.nats_ca.clone(),
                client_cert: self.nats_cert.clone().zip(self.nats_key.clone()),
                required: false,
            },
            key_file: self.key_file.clone(),
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run mnemo's services.
    // Boxed (clippy's large_enum_variant): every other command's flags are
    // a fraction of its size.
    Serve(Box<serve::ServeArgs>),
    /// Manage bearer tokens.
    Token(cmd::token::TokenArgs),
    /// Upload study material (PDF, text, Markdown).
    Upload(cmd::upload::UploadArgs),
    /// Your documents.
    Docs(cmd::docs::DocsArgs),
    /// Follow the progress of one document, an upload batch, or all of yours.
    Progress(cmd::progress::ProgressArgs),
    /// Extract a file's text locally, as the extractor service would.
    Extract(cmd::extract::ExtractArgs),
    /// Internal: the extractor's sandboxed PDF worker (one JSON line per page).
    #[command(hide = true)]
    ExtractWorker { file: PathBuf },
    /// Check NATS, JetStream, PostgreSQL and the embedding runtime.
    Doctor(cmd::doctor::DoctorArgs),
    /// Search your documents (full text and meaning, with citations).
    Search(cmd::search::SearchArgs),
    /// Ask a question; the answer comes from your documents, with citations.
    Ask(cmd::ask::AskArgs),
    /// Your flashcards: add, list, edit, suspend, resume, delete, or generate from a document.
    Cards(cmd::cards::CardsArgs),
    /// Your documents by state, and how long each stage takes.
    Stats(cmd::stats::StatsArgs),
    /// Operator tools for the read models.
    Projections(cmd::projections::ProjectionsArgs),
    /// Events services gave up on (operators).
    Dlq(cmd::dlq::DlqArgs),
    /// NATS credentials for every role, and declaring a namespace (operators).
    Nats(cmd::nats::NatsArgs),
    /// Benchmarks: runs `mnemo-bench` (a separate binary) with the rest.
    #[command(hide = true)]
    Bench(cmd::bench::ForwardArgs),
    /// Quality evaluations: runs `mnemo-bench eval` with the rest.
    #[command(hide = true)]
    Eval(cmd::bench::ForwardArgs),
    /// FSRS-6 scheduling, locally (nothing is sent to a server).
    Fsrs(cmd::fsrs::FsrsArgs),
    /// Embedding models: which one serves search, switch it, fetch one from the hub.
    Model(cmd::model::ModelArgs),
    /// Operators: replay the event log into another model's vectors.
    Backfill(cmd::backfill::BackfillArgs),
    /// Your topics: create, rename, attach documents.
    Topics(cmd::topics::TopicsArgs),
    /// Review your due cards in the terminal (or from stdin with --json).
    Review(cmd::review::ReviewArgs),
    /// Your study statistics.
    Study(cmd::study::StudyArgs),
    /// Audit: rebuild a learner's state from their events alone.
    Replay(cmd::replay::ReplayArgs),
    /// Operators: erase a learner (crypto-shredding; irreversible).
    Learner(cmd::learner::LearnerArgs),
    /// Operators: the deployment's key file (every learner's key is wrapped under it).
    Keys(cmd::keys::KeysArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command's flags beside the global ones, without clashes
    /// (clap checks this only when a command is parsed, in debug builds).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
