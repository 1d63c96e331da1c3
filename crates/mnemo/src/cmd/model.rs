//! `mnemo model fetch NAME [--into DIR]`: the hub path for users with
//! internet. The model lands in the same layout `deploy/model/prepare.sh`
//! writes, so `serve`, `eval` and `bench` load it through `MNEMO_MODEL_DIR`
//! like the offline export.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{ModelArgs, ModelCommand};

pub fn run(args: ModelArgs) -> Result<ExitCode> {
    match args.command {
        ModelCommand::Fetch { name, into } => {
            let dir = mnemo_embedder::fetch::fetch(&name, &into)?;
            println!("export MNEMO_MODEL_DIR={}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
