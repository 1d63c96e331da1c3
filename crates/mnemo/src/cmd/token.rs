//! `mnemo token issue --owner NAME`: a bearer token for local use.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mnemo_domain::OwnerId;

use crate::cli::{Global, TokenArgs, TokenCommand};

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
