//! `mnemo token issue --owner NAME [--link]`: a bearer token for local use,
//! or a link that signs the web app in with it.

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
        /// Print a link that opens the web app signed in (`--server`'s
        /// address, the token after `#token=`: a fragment never reaches a
        /// server or its logs; the app moves it to the tab's session
        /// storage and out of the address bar).
        /// (Not with --admin: a link ends up in a browser's history.)
        #[arg(long, conflicts_with_all = ["json", "admin"])]
        link: bool,
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
            link,
        } => {
            let owner = OwnerId::new(owner).context("--owner")?;
            let secret = crate::secret::load(global, jwt_secret.as_deref(), true)?;
            let token = mnemo_api::auth::Authenticator::new(&secret).issue(&owner, ttl, admin)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"owner": owner.as_str(), "token": token, "ttl_secs": ttl, "admin": admin})
                );
            } else if link {
                println!("{}", sign_in_link(&global.server, &token));
            } else {
                println!("{token}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The web app's address on `server` (as `--server` takes it: a URL, or a
/// bare `host:port` meaning plaintext), signed in with `token`.
fn sign_in_link(server: &str, token: &str) -> String {
    let base = if server.contains("://") {
        server.trim_end_matches('/').to_owned()
    } else {
        format!("http://{}", server.trim_end_matches('/'))
    };
    format!("{base}/#token={token}")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{sign_in_link, TokenArgs};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
    }

    #[test]
    fn a_link_is_never_an_admins() {
        let admin_link = Cli::try_parse_from(["t", "issue", "--owner", "a", "--admin", "--link"]);
        assert!(admin_link.is_err(), "--link with --admin is refused");
        assert!(Cli::try_parse_from(["t", "issue", "--owner", "a", "--link"]).is_ok());
    }

    #[test]
    fn the_link_opens_the_app_on_the_server_with_the_token_in_the_fragment() {
        assert_eq!(
            sign_in_link("http://127.0.0.1:50051", "a.b.c"),
            "http://127.0.0.1:50051/#token=a.b.c"
        );
        assert_eq!(
            sign_in_link("https://mnemo.example/", "t"),
            "https://mnemo.example/#token=t"
        );
        assert_eq!(sign_in_link("host:1", "t"), "http://host:1/#token=t");
    }
}
