//! `mnemo review`: a terminal review session. Shows a due card's front;
//! Enter shows the back; a rating 1-4 submits the review (FSRS-6 schedules
//! it on the server); then the next due card, until none is due or `q`.
//! The session is recorded (`StartSession` / `EndSession`).
//!
//! `--json` is for scripts and tests: each card is one JSON line (front and
//! back together), then one line of stdin is its rating; each result is a
//! JSON line. Input is read line by line either way, so piping works.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use mnemo_proto::v1 as pb;

use crate::cli::Global;
use crate::client::{connect, describe};
use crate::cmd::cards::{rfc3339, schedule_json};

#[derive(Args)]
pub struct ReviewArgs {
    /// Script mode: each due card is printed as one JSON line (front and
    /// back), then one line of stdin is read as its rating (1-4; `q` stops);
    /// each result is printed as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many reviews (0: until nothing is due).
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
}

/// The next line of stdin, trimmed (None at end of input).
fn read_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_owned()))
}

/// A rating from a line: 1-4 or again/hard/good/easy; None to stop.
fn parse_rating(line: &str) -> Result<Option<u32>> {
    Ok(Some(match line.to_ascii_lowercase().as_str() {
        "q" | "quit" => return Ok(None),
        "1" | "again" => 1,
        "2" | "hard" => 2,
        "3" | "good" => 3,
        "4" | "easy" => 4,
        other => {
            bail!("'{other}' is not a rating: type 1 (again), 2 (hard), 3 (good), 4 (easy) or q")
        }
    }))
}

pub async fn run(global: &Global, args: ReviewArgs) -> Result<ExitCode> {
    let mut c = connect(global).await?;
    let fail = |s: tonic::Status| anyhow!(describe(&s));
    let session = c
        .learning
        .start_session(pb::StartSessionRequest::default())
        .await
        .map_err(fail)?
        .into_inner();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout();
    let (mut done, mut sequence) = (0u32, session.sequence);
    loop {
        if args.limit > 0 && done >= args.limit {
            break;
        }
        // Read our own last review before asking what is due next.
        let due = c
            .learning
            .due_cards(pb::DueCardsRequest {
                min_sequence: sequence,
                limit: 1,
                now: None,
            })
            .await
            .map_err(fail)?
            .into_inner();
        let Some(card) = due.cards.into_iter().next() else {
            if !args.json {
                println!("nothing is due. well done!");
            }
            break;
        };
        let rating = if args.json {
            println!(
                "{}",
                serde_json::json!({"card_id": card.card_id, "deck": card.deck, "front": card.front, "back": card.back})
            );
            match read_line(&mut input)? {
                Some(line) => parse_rating(&line)?,
                None => None,
            }
        } else {
            println!("\n[{}] {}", card.deck, card.front);
            print!("(Enter to show the answer) ");
            out.flush()?;
            if read_line(&mut input)?.is_none() {
                break;
            }
            println!("{}", card.back);
            loop {
                print!("rating 1 again, 2 hard, 3 good, 4 easy (q to stop): ");
                out.flush()?;
                let Some(line) = read_line(&mut input)? else {
                    break None;
                };
                match parse_rating(&line) {
                    Ok(r) => break r,
                    Err(e) => println!("{e}"),
                }
            }
        };
        let Some(rating) = rating else { break };
        let r = c
            .learning
            .submit_review(pb::SubmitReviewRequest {
                card_id: card.card_id.clone(),
                review_id: uuid::Uuid::now_v7().to_string(),
                rating,
                reviewed_at: None,
            })
            .await
            .map_err(fail)?
            .into_inner();
        sequence = r.sequence;
        done += 1;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"card_id": card.card_id, "rating": rating, "schedule": schedule_json(r.schedule.as_ref()), "sequence": r.sequence})
            );
        } else {
            println!(
                "next review: {}",
                rfc3339(r.schedule.as_ref().and_then(|s| s.due.as_ref()))
            );
        }
    }
    let ended = c
        .learning
        .end_session(pb::EndSessionRequest {
            session_id: session.session_id.clone(),
            at: None,
        })
        .await
        .map_err(fail)?
        .into_inner();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"session_id": ended.session_id, "reviews": done, "sequence": ended.sequence})
        );
    } else {
        println!("{done} reviews in this session");
    }
    Ok(ExitCode::SUCCESS)
}
