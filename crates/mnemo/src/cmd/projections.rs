//! `mnemo projections checksum [--json]`: fingerprints of the read models,
//! for checking that a rebuild from the event stream yields the same tables.
//! An operator command: it reads PostgreSQL directly.

use std::process::ExitCode;

use anyhow::{Context, Result};
use mnemo_bus::Namespace;

use crate::cli::{ProjectionsArgs, ProjectionsCommand};

pub async fn run(args: ProjectionsArgs) -> Result<ExitCode> {
    match args.command {
        ProjectionsCommand::Checksum { backend, json } => {
            let ns = Namespace::new(&backend.namespace)?;
            let db = mnemo_projector::db::connect(&backend.database_url, &ns)
                .await
                .context("connecting to PostgreSQL (try `mnemo doctor`)")?;
            let sequence = mnemo_projector::runner::checkpoint(&db, &ns).await?;
            let sums = mnemo_projector::checksum::checksums(&db).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"namespace": ns.as_str(), "sequence": sequence, "tables": sums})
                );
            } else {
                println!("{:<14} {:>9}  MD5", "TABLE", "ROWS");
                for s in &sums {
                    println!("{:<14} {:>9}  {}", s.table, s.rows, s.md5);
                }
                println!("(namespace {ns}, stream sequence {sequence})");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
