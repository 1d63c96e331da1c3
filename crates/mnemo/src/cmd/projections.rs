//! `mnemo projections checksum|list|rebuild`: operator tools for the read
//! models. They talk to PostgreSQL (and, to rebuild, the event stream)
//! directly, not through the API.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use mnemo_bus::Namespace;
use mnemo_projector::rebuild::{RebuildOptions, RebuildProgress};
use mnemo_projector::Projection;

use crate::cli::Backend;

#[derive(Args)]
pub struct ProjectionsArgs {
    #[command(subcommand)]
    pub command: ProjectionsCommand,
}

#[derive(Subcommand)]
pub enum ProjectionsCommand {
    /// Row count and MD5 of every read model (equal after a rebuild).
    Checksum {
        #[command(flatten)]
        backend: Backend,
        #[arg(long)]
        json: bool,
    },
    /// Which version of each projection serves queries, and the live checkpoint.
    List {
        #[command(flatten)]
        backend: Backend,
        #[arg(long)]
        json: bool,
    },
    /// Build version N+1 of a projection from sequence 1 beside version N,
    /// then swap it in atomically (queries never see a half-built table).
    Rebuild {
        /// `documents`, `chunks`, `stage_timings`, `learning`, several of
        /// them comma-separated (`documents,chunks`), or `all`.
        name: String,
        #[command(flatten)]
        backend: Backend,
        /// Start from sequence 1 even if an interrupted rebuild can resume.
        #[arg(long)]
        fresh: bool,
        /// Build (or resume) but leave the live version serving.
        #[arg(long)]
        no_swap: bool,
        /// Most event messages per transaction.
        #[arg(long, default_value_t = 4096)]
        batch: usize,
        /// PostgreSQL connections writing at once (documents split between them).
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Compute every chunk's lexemes again instead of taking the live
        /// version's (after a change of text-search configuration).
        #[arg(long)]
        recompute_lexemes: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: ProjectionsArgs) -> Result<ExitCode> {
    match args.command {
        ProjectionsCommand::Checksum { backend, json } => checksum(&backend, json).await,
        ProjectionsCommand::List { backend, json } => list(&backend, json).await,
        ProjectionsCommand::Rebuild {
            name,
            backend,
            fresh,
            no_swap,
            batch,
            connections,
            recompute_lexemes,
            json,
        } => {
            let projections = parse_projections(&name)?;
            let options = RebuildOptions {
                batch_messages: batch.max(1),
                connections: connections.max(1),
                recompute_lexemes,
                fresh,
                no_swap,
                ..Default::default()
            };
            rebuild(&backend, &projections, &options, json).await
        }
    }
}

/// `documents`, `chunks`, `stage_timings`, `learning`, several of them
/// comma-separated, or `all`.
fn parse_projections(names: &str) -> Result<Vec<Projection>> {
    if names == "all" {
        return Ok(Projection::ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for name in names.split(',').map(str::trim) {
        match Projection::parse(name) {
            Some(p) if !chosen.contains(&p) => chosen.push(p),
            Some(_) => {}
            None => {
                let known: Vec<&str> = Projection::ALL.iter().map(|p| p.name()).collect();
                bail!(
                    "no projection '{name}': choose from {} (comma-separated), or all",
                    known.join(", ")
                )
            }
        }
    }
    Ok(chosen)
}

async fn connect(backend: &Backend) -> Result<(Namespace, tokio_postgres::Client)> {
    let ns = Namespace::new(&backend.namespace)?;
    let db = mnemo_projector::db::connect(&backend.database_url, &ns)
        .await
        .context("connecting to PostgreSQL (try `mnemo doctor`)")?;
    Ok((ns, db))
}

async fn checksum(backend: &Backend, json: bool) -> Result<ExitCode> {
    let (ns, db) = connect(backend).await?;
    let sequence = mnemo_projector::runner::checkpoint(&db, &ns).await?;
    let sums = mnemo_projector::checksum::checksums(&db).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"namespace": ns.as_str(), "sequence": sequence, "tables": sums})
        );
    } else {
        println!("{:<17} {:>9}  MD5", "TABLE", "ROWS");
        for s in &sums {
            println!("{:<17} {:>9}  {}", s.table, s.rows, s.md5);
        }
        println!("(namespace {ns}, stream sequence {sequence})");
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(backend: &Backend, json: bool) -> Result<ExitCode> {
    let (ns, db) = connect(backend).await?;
    let sequence = mnemo_projector::runner::checkpoint(&db, &ns).await?;
    let rows = db
        .query(
            "SELECT projection, version, built_through, swapped_at::text FROM projection_versions ORDER BY projection",
            &[],
        )
        .await
        .context("reading projection_versions (has a projector run in this namespace?)")?;
    let versions: Vec<(String, i32, i64, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    if json {
        let list: Vec<_> = versions
            .iter()
            .map(|(p, v, b, at)| serde_json::json!({"projection": p, "version": v, "built_through": b, "swapped_at": at}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"namespace": ns.as_str(), "sequence": sequence, "projections": list})
        );
    } else {
        println!(
            "{:<14} {:>7}  {:>13}  SINCE",
            "PROJECTION", "VERSION", "BUILT THROUGH"
        );
        for (p, v, b, at) in &versions {
            println!("{p:<14} {v:>7}  {b:>13}  {at}");
        }
        println!("(namespace {ns}, live checkpoint {sequence})");
    }
    Ok(ExitCode::SUCCESS)
}

async fn rebuild(
    backend: &Backend,
    projections: &[Projection],
    options: &RebuildOptions,
    json: bool,
) -> Result<ExitCode> {
    let ns = Namespace::new(&backend.namespace)?;
    let bus = backend.operator_bus(ns).await?;
    let mut last_print = std::time::Instant::now();
    let show = |p: &RebuildProgress| {
        if json {
            println!("{}", serde_json::json!({"progress": p}));
        } else {
            print!(
                "\r{:>5.1}%  through {} of {}  {} events  {:.0} events/s   ",
                p.fraction() * 100.0,
                p.applied_through,
                p.target,
                p.events,
                p.events_per_second()
            );
            let _ = std::io::stdout().flush();
        }
    };
    let report =
        mnemo_projector::rebuild::rebuild(&bus, &backend.database_url, projections, options, |p| {
            if last_print.elapsed().as_millis() >= 250 {
                last_print = std::time::Instant::now();
                show(p);
            }
        })
        .await
        .context("rebuild failed (the live version keeps serving)")?;
    if json {
        println!("{}", serde_json::json!({"report": report}));
    } else {
        show(&report.progress);
        println!();
        if report.versions.is_empty() {
            println!(
                "built through {} (not swapped: --no-swap)",
                report.progress.applied_through
            );
        }
        for (name, version) in &report.versions {
            println!(
                "{name}: version {version} serves queries (swap held the projector {:.0} ms)",
                report.swap_seconds * 1000.0
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_are_named_one_by_one_in_a_list_or_all() {
        assert_eq!(
            parse_projections("chunks").unwrap(),
            vec![Projection::Chunks]
        );
        assert_eq!(
            parse_projections("documents, chunks,documents").unwrap(),
            vec![Projection::Documents, Projection::Chunks]
        );
        assert_eq!(parse_projections("all").unwrap(), Projection::ALL.to_vec());
        let err = parse_projections("chunks,cards").unwrap_err().to_string();
        assert!(
            err.contains("no projection 'cards'") && err.contains("learning"),
            "{err}"
        );
    }
}
