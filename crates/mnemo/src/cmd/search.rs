//! `mnemo search "QUERY" [--k N] [--document ID]... [--topic T] [--mode M] [--json]`.

use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchModeArg {
    /// Full text and vectors, fused by reciprocal rank.
    Hybrid,
    Lexical,
    Vector,
}

#[derive(Args)]
pub struct SearchArgs {
    /// A question or keywords; or websearch syntax: "phrases", -exclusions, OR.
    pub query: String,
    /// Hits wanted (1..=100).
    #[arg(long, default_value_t = 10)]
    pub k: u32,
    /// Only this document (repeatable).
    #[arg(long)]
    pub document: Vec<String>,
    /// Only documents of this topic.
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: SearchModeArg,
    /// Wait until the index reflects this event sequence (e.g. a progress
    /// update's), so a just-indexed document is searchable.
    #[arg(long, default_value_t = 0)]
    pub min_sequence: u64,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: SearchArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let mode = match args.mode {
        SearchModeArg::Hybrid => pb::SearchMode::Hybrid,
        SearchModeArg::Lexical => pb::SearchMode::Lexical,
        SearchModeArg::Vector => pb::SearchMode::Vector,
    };
    let r = c
        .search
        .search(pb::SearchRequest {
            query: args.query.clone(),
            k: args.k,
            document_ids: args.document,
            topic: args.topic.unwrap_or_default(),
            mode: mode as i32,
            min_sequence: args.min_sequence,
        })
        .await
        .map_err(|s| anyhow!(describe(&s)))?
        .into_inner();
    if args.json {
        let hits: Vec<_> = r
            .hits
            .iter()
            .map(|h| {
                serde_json::json!({
                    "chunk_id": h.chunk_id, "document_id": h.document_id, "title": h.title,
                    "page_start": h.page_start, "page_end": h.page_end, "score": h.score,
                    "snippet": h.snippet, "lexical_rank": h.lexical_rank, "vector_rank": h.vector_rank,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"query": args.query, "vector_used": r.vector_used, "model": r.model, "hits": hits})
        );
        return Ok(ExitCode::SUCCESS);
    }
    if r.hits.is_empty() {
        println!("no matches in your documents");
    }
    for (i, h) in r.hits.iter().enumerate() {
        let pages = if h.page_start == h.page_end {
            format!("p. {}", h.page_start)
        } else {
            format!("pp. {}–{}", h.page_start, h.page_end)
        };
        println!("{:>2}. {} ({pages})  score {:.4}", i + 1, h.title, h.score);
        println!("    {}", h.snippet.replace('\n', " "));
    }
    if !r.vector_used {
        eprintln!("(full-text only: the server has no embedding model loaded)");
    }
    Ok(ExitCode::SUCCESS)
}
