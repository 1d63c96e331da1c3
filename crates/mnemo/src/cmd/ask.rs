//! `mnemo ask "QUESTION" [--k N] [--document ID]... [--extractive] [--json]`:
//! prints the answer as it streams, then the numbered citations with the
//! document's title and page.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use mnemo_proto::v1 as pb;
use pb::ask_response::Part;

use crate::cli::Global;
use crate::client::{connect, describe};

#[derive(Args)]
pub struct AskArgs {
    pub question: String,
    /// Sources to retrieve (1..=20).
    #[arg(long, default_value_t = 5)]
    pub k: u32,
    /// Only this document (repeatable).
    #[arg(long)]
    pub document: Vec<String>,
    /// Answer with the best sentences of the sources even if the server has an LLM.
    #[arg(long)]
    pub extractive: bool,
    /// Wait until the index reflects this event sequence.
    #[arg(long, default_value_t = 0)]
    pub min_sequence: u64,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: AskArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let mode = if args.extractive {
        pb::AnswerMode::Extractive
    } else {
        pb::AnswerMode::Auto
    };
    let mut stream =
        c.qa.ask(pb::AskRequest {
            question: args.question.clone(),
            k: args.k,
            document_ids: args.document,
            min_sequence: args.min_sequence,
            mode: mode as i32,
        })
        .await
        .map_err(|s| anyhow!(describe(&s)))?
        .into_inner();
    let mut sources = Vec::new();
    let mut done = None;
    let mut out = std::io::stdout();
    while let Some(msg) = stream.message().await.map_err(|s| anyhow!(describe(&s)))? {
        match msg.part {
            Some(Part::Sources(s)) => sources = s.sources,
            Some(Part::Delta(d)) => {
                if args.json {
                    continue;
                }
                if d.restart {
                    writeln!(out)?;
                    eprintln!("(the LLM failed mid-answer; the answer from your documents' sentences follows)");
                }
                write!(out, "{}", d.text)?;
                out.flush()?;
            }
            Some(Part::Done(d)) => done = Some(d),
            None => {}
        }
    }
    let Some(done) = done else {
        bail!("the answer stream ended early (no done message)");
    };
    let title_of = |n: u32| sources.iter().find(|s| s.n == n);
    if args.json {
        let citations: Vec<_> = done
            .citations
            .iter()
            .map(|c| {
                serde_json::json!({
                    "n": c.n, "chunk_id": c.chunk_id, "document_id": c.document_id, "page": c.page,
                    "title": title_of(c.n).map(|s| s.title.as_str()).unwrap_or_default(),
                })
            })
            .collect();
        let sources: Vec<_> = sources
            .iter()
            .map(|s| {
                serde_json::json!({
                    "n": s.n, "chunk_id": s.chunk_id, "document_id": s.document_id, "title": s.title,
                    "page_start": s.page_start, "page_end": s.page_end, "snippet": s.snippet,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "question": args.question, "answer": done.answer, "citations": citations,
                "sources": sources, "question_id": done.question_id, "sequence": done.sequence,
                "produced_by": done.produced_by, "model": done.model,
                "fallback_reason": done.fallback_reason,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out)?;
    if !done.citations.is_empty() {
        writeln!(out)?;
    }
    for c in &done.citations {
        let title = title_of(c.n).map(|s| s.title.as_str()).unwrap_or("?");
        writeln!(out, "[{}] {title}, p. {}", c.n, c.page)?;
    }
    if !done.fallback_reason.is_empty() {
        eprintln!("(answered without the LLM: {})", done.fallback_reason);
    }
    Ok(ExitCode::SUCCESS)
}
