//! `mnemo token issue --owner NAME`: a bearer token for local use.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mnemo_domain::OwnerId;

use crate::cli::Global;

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a token for an owner, signed with the local secret.
    Issue {
        #[arg(long)]
        owner: String,
        /// Lifetime in seconds (default 30 days).
        #[arg(long, default_value_t = 30 * 24 * 3600)]
        ttl: u64,
        #[arg(long)]
        admin: bool,
        #[arg(long, env = "MNEMO_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(global: &Global, args: TokenArgs) -> Result<ExitCode> {
    match args.command {
        TokenCommand::Issue {
            owner,
            ttl,
            admin,
            jwt_secret,
            json,
        } => {
            let owner = OwnerId::new(owner).context("--owner")?;
            let secret = crate::secret::load(global, jwt_secret.as_deref(), true)?;
            let token = mnemo_api::auth::Authenticator::new(&secret).issue(&owner, ttl, admin)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"owner": owner.as_str(), "token": token, "ttl_secs": ttl, "admin": admin})
                );
            } else {
                println!("{token}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
