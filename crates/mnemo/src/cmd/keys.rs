//! `mnemo keys init FILE`: the deployment's key file (operators).
//!
//! 32 random bytes, hex, mode 0600: the root every learner's data key is
//! wrapped under (`mnemo_bus::keys`). An existing file is checked and kept,
//! never replaced: a new one would make every sealed event unreadable.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key file (mode 0600) unless FILE exists; an existing one is checked, never replaced.
    Init {
        /// Where the key file goes (e.g. the value of MNEMO_KEY_FILE).
        file: PathBuf,
    },
}

pub fn run(args: KeysArgs) -> Result<ExitCode> {
    match args.command {
        KeysCommand::Init { file } => {
            let made = mnemo_bus::keys::KeyFile::init(&file)
                .with_context(|| format!("preparing the key file {}", file.display()))?;
            let kek = mnemo_bus::keys::KeyFile::load(&file)?;
            let id = mnemo_bus::keys::KeyEncryptionKey::id(kek.kek()).to_owned();
            if made {
                println!(
                    "made {} (key-encryption key {id}); keep a copy somewhere safe: without it no learner's data can be read",
                    file.display()
                );
            } else {
                println!("{} exists (key-encryption key {id}); kept", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
