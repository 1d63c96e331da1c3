//! `mnemo model show|use|fetch`.
//!
//! - `show` and `use` (operators, admin token) ask the API which model's
//!   vectors answer searches and switch it (`SearchService.GetModels`,
//!   `UseModel`): the last step of a backfill (docs/operations.md).
//! - `fetch NAME [--into DIR]` is the hub path for users with internet. The
//!   model lands in the same layout `deploy/model/prepare.sh` writes, so
//!   `serve` and `mnemo-bench` load it through `MNEMO_MODEL_DIR` like the
//!   offline export.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

/// `mnemo model`.
#[derive(Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download a fastembed text model from the Hugging Face hub into a
    /// prepared directory (needs internet and a build with `--features hub`;
    /// offline, deploy/model/prepare.sh prepares all-MiniLM-L6-v2). Prints
    /// the MNEMO_MODEL_DIR line to use it.
    Fetch {
        /// fastembed `EmbeddingModel` name, e.g. AllMiniLML6V2 (mean-pooled models only).
        #[arg(default_value = "AllMiniLML6V2")]
        name: String,
        /// Where prepared model directories live.
        #[arg(long, env = "MNEMO_MODELS_DIR", default_value = ".mnemo/models")]
        into: PathBuf,
    },
    /// Operators (admin token): the model whose vectors answer searches,
    /// and how much of the indexed material each model's vectors cover.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Operators (admin token): answer searches with another model's
    /// vectors from now on, without downtime. Refused until a backfill
    /// covers every indexed chunk, unless --force.
    Use {
        /// A model id, or its name without the hash (all-MiniLM-L6-v2-int8).
        model: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &Global, args: ModelArgs) -> Result<ExitCode> {
    match args.command {
        ModelCommand::Fetch { name, into } => {
            let dir = mnemo_embedder::fetch::fetch(&name, &into)?;
            println!("export MNEMO_MODEL_DIR={}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Show { json } => {
            let mut c = connect(global).await?;
            let r = c
                .search
                .get_models(pb::GetModelsRequest { min_sequence: 0 })
                .await
                .map_err(|s| anyhow!(describe(&s)))?
                .into_inner();
            print_models(&r, json);
            Ok(ExitCode::SUCCESS)
        }
        ModelCommand::Use { model, force, json } => {
            let mut c = connect(global).await?;
            let r = c
                .search
                .use_model(pb::UseModelRequest { model, force })
                .await
                .map_err(|s| anyhow!(describe(&s)))?
                .into_inner();
            print_models(&r, json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_models(r: &pb::ModelsResponse, json: bool) {
    if json {
        let models: Vec<_> = r
            .models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "model": m.model, "documents": m.documents, "chunks": m.chunks,
                    "loaded": m.loaded, "served": m.model == r.served,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "served": r.served, "indexed_documents": r.indexed_documents,
                "indexed_chunks": r.indexed_chunks, "models": models,
            })
        );
        return;
    }
    println!(
        "{:<2}{:<40} {:>15} {:>15}  LOADED",
        "", "MODEL", "DOCUMENTS", "CHUNKS"
    );
    for m in &r.models {
        let mark = if m.model == r.served { "*" } else { "" };
        println!(
            "{mark:<2}{:<40} {:>15} {:>15}  {}",
            m.model,
            format!("{}/{}", m.documents, r.indexed_documents),
            format!("{}/{}", m.chunks, r.indexed_chunks),
            if m.loaded { "yes" } else { "no" }
        );
    }
    if r.served.is_empty() {
        println!("(no model serves: full-text search only)");
    } else {
        println!("(* answers searches)");
    }
}
