//! `mnemo bench load`: many owners at once against one `mnemo serve all`,
//! and what a bystander owner sees (issue 18). Bounded and loopback only.
//!
//! For `--seconds` (60): `--watchers` (2,000) progress streams held open
//! across `--owners` (40) owners (arriving 200 a second; a refused one
//! comes back after a second, as its RetryInfo says), `--searches-per-second` (200) searches
//! spread over those owners, and a steady trickle of uploads
//! (`--uploads-per-second`, 2). Meanwhile a *victim* owner, who has one
//! indexed document, calls Get on it and Search every 50 ms; the table
//! reports the victim's p50/p99 latency of each (target p99 ≤ 50 ms) and
//! when its slowest searches happened (seconds into the load), what
//! the load got (done, refused with RESOURCE_EXHAUSTED, failed), and the
//! server's RSS (sampled every second) against its start.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use mnemo::cli::{Backend, Global};
use mnemo_proto::v1 as pb;

use crate::fairness::{upload, wait_indexed};
use crate::services::{connect_when_ready, Scratch, Served, ALL_IN_ONE};

#[derive(Args)]
pub struct LoadBench {
    #[command(flatten)]
    pub backend: Backend,
    /// The embedding model directory (the server's --model-dir).
    #[arg(long, env = "MNEMO_MODEL_DIR")]
    pub model_dir: std::path::PathBuf,
    /// How long the load runs.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Owners the load comes from (each on its own connection).
    #[arg(long, default_value_t = 40)]
    pub owners: usize,
    /// Progress streams held open, spread over the owners.
    #[arg(long, default_value_t = 2_000)]
    pub watchers: usize,
    /// Searches a second, spread over the owners.
    #[arg(long, default_value_t = 200)]
    pub searches_per_second: u32,
    /// Uploads a second (6 KB of text each), spread over the owners.
    #[arg(long, default_value_t = 2)]
    pub uploads_per_second: u32,
}

const VICTIM: &str = "victim";
const MIB: f64 = 1024.0 * 1024.0;

/// What the load's calls got.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn count<T>(&self, r: &Result<T, tonic::Status>) {
        let counter = match r {
            Ok(_) => &self.done,
            Err(s) if s.code() == tonic::Code::ResourceExhausted => &self.refused,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn shown(&self) -> String {
        format!(
            "{} done, {} refused, {} failed",
            self.done.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed)
        )
    }
}

pub async fn run(global: &Global, bench: LoadBench) -> Result<ExitCode> {
    let scratch = Scratch::new(&bench.backend, "load").await?;
    let ns = scratch.ns.clone();
    // The server's own limits, not the benchmarks' unlimited rate: this is
    // how an operator runs it.
    let env = [
        ("MNEMO_RATE_PER_OWNER", "50".to_string()),
        ("MNEMO_RATE_BURST", "100".to_string()),
    ];
    let mut served = Served::start(
        global,
        &bench.backend,
        &ns,
        &bench.model_dir,
        VICTIM,
        &ALL_IN_ONE,
        &env,
    )
    .await?;
    let port = served.port;
    let tokens = (0..bench.owners.max(1))
        .map(|i| served.token_for(&format!("load-{i}")))
        .collect::<Result<Vec<String>>>()?;
    let victim_token = served.token.clone();
    let mut services = std::mem::take(&mut served.services);
    let result = async {
        let pid = services
            .first()
            .and_then(|s| s.child.id())
            .context("the server runs")?;
        let victim = connect_when_ready(global, port, victim_token, &mut services).await?;
        let mut owners = Vec::new();
        for t in tokens {
            owners.push(Arc::new(
                connect_when_ready(global, port, t, &mut services).await?,
            ));
        }
        // Something to find: one indexed document per owner, and the victim's.
        eprintln!("indexing {} documents to search", owners.len() + 1);
        let victim_doc = upload(&victim, "victim-notes", "", 6_000).await?;
        let mut first = Vec::new();
        for (i, o) in owners.iter().enumerate() {
            first.push(upload(o, &format!("owner-{i}-notes"), "", 6_000).await?);
        }
        wait_indexed(&victim, &victim_doc).await?;
        for (o, id) in owners.iter().zip(&first) {
            wait_indexed(o, id).await?;
        }
        let rss_start = rss_of(pid).unwrap_or(0);
        eprintln!("the load runs for {} s", bench.seconds);
        let began = Instant::now();
        let until = began + Duration::from_secs(bench.seconds);
        let (watch, search, uploads) = (
            Arc::new(Tally::default()),
            Arc::new(Tally::default()),
            Arc::new(Tally::default()),
        );
        let mut load = tokio::task::JoinSet::new();
        // Watchers: held open until the end (their streams just idle).
        for w in 0..bench.watchers {
            let (o, tally) = (owners[w % owners.len()].clone(), watch.clone());
            // Clients arrive over the first seconds (200 a second), as a
            // crowd does; one refused comes back after the RetryInfo
            // delay (a second), as a well-behaved client does.
            let arrives = tokio::time::Instant::now() + Duration::from_millis(5 * w as u64);
            load.spawn(async move {
                tokio::time::sleep_until(arrives).await;
                let mut progress = o.progress.clone();
                let r = loop {
                    let r = progress
                        .watch(pb::WatchRequest {
                            scope: Some(pb::watch_request::Scope::All(pb::AllDocuments {})),
                            from_sequence: 0,
                            follow: true,
                        })
                        .await;
                    tally.count(&r);
                    match r {
                        Err(s)
                            if s.code() == tonic::Code::ResourceExhausted
                                && Instant::now() < until =>
                        {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        r => break r,
                    }
                };
                if let Ok(stream) = r {
                    let mut stream = stream.into_inner();
                    while Instant::now() < until {
                        match tokio::time::timeout_at(until.into(), stream.message()).await {
                            Ok(Ok(Some(_))) => {}
                            _ => break,
                        }
                    }
                }
            });
        }
        // Searches at a steady rate, owners in turn.
        {
            let (owners, tally) = (owners.clone(), search.clone());
            let every = Duration::from_secs_f64(1.0 / f64::from(bench.searches_per_second.max(1)));
            load.spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut calls = tokio::task::JoinSet::new();
                let mut n = 0usize;
                while Instant::now() < until {
                    tick.tick().await;
                    let (o, tally) = (owners[n % owners.len()].clone(), tally.clone());
                    n += 1;
                    let n = n;
                    calls.spawn(async move {
                        let mut s = o.search.clone();
                        // Every query new: none comes from a cache.
                        let r = s
                            .search(pb::SearchRequest {
                                query: format!("memory retrieval practice {n}"),
                                k: 10,
                                ..Default::default()
                            })
                            .await;
                        tally.count(&r);
                    });
                    while calls.try_join_next().is_some() {}
                }
                while calls.join_next().await.is_some() {}
            });
        }
        // Uploads at a steady rate.
        {
            let (owners, tally) = (owners.clone(), uploads.clone());
            let every = Duration::from_secs_f64(1.0 / f64::from(bench.uploads_per_second.max(1)));
            load.spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut n = 0usize;
                while Instant::now() < until {
                    tick.tick().await;
                    let o = owners[n % owners.len()].clone();
                    let r = upload(&o, &format!("load-upload-{n}"), "", 6_000).await;
                    n += 1;
                    let counter = if r.is_ok() {
                        &tally.done
                    } else {
                        &tally.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The victim, and the server's RSS, until the end.
        let (mut gets, mut searches) = (Vec::new(), Vec::new());
        // When each slow victim search started (seconds into the load).
        let mut slow: Vec<(f64, Duration)> = Vec::new();
        let mut victim_errors = Vec::new();
        let mut rss_max = rss_start;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut last_rss = Instant::now();
        let mut documents = victim.documents.clone();
        let mut search_client = victim.search.clone();
        while Instant::now() < until {
            tick.tick().await;
            let t = Instant::now();
            match documents
                .get(pb::GetDocumentRequest {
                    document_id: victim_doc.clone(),
                })
                .await
            {
                Ok(_) => gets.push(t.elapsed()),
                Err(s) => victim_errors.push(format!("get: {}", s.message())),
            }
            let t = Instant::now();
            match search_client
                .search(pb::SearchRequest {
                    query: format!("spacing memory {}", searches.len()),
                    k: 10,
                    ..Default::default()
                })
                .await
            {
                Ok(_) => {
                    let took = t.elapsed();
                    if took > Duration::from_millis(50) {
                        slow.push(((t - began).as_secs_f64(), took));
                    }
                    searches.push(took);
                }
                Err(s) => victim_errors.push(format!("search: {}", s.message())),
            }
            if last_rss.elapsed() >= Duration::from_secs(1) {
                rss_max = rss_max.max(rss_of(pid).unwrap_or(0));
                last_rss = Instant::now();
            }
        }
        while load.join_next().await.is_some() {}
        anyhow::Ok((
            gets,
            searches,
            slow,
            victim_errors,
            rss_start,
            rss_max,
            watch,
            search,
            uploads,
        ))
    }
    .await;
    for s in services {
        s.stop().await;
    }
    scratch.delete().await?;
    let (mut gets, mut searches, mut slow, errors, rss_start, rss_max, watch, search, uploads) =
        result?;
    gets.sort();
    searches.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let p = |v: &[Duration], q: f64| ms(crate::timing::percentile(v, q / 100.0));
    println!(
        "load: {} s, {} owners, {} watchers, {} searches/s, {} uploads/s",
        bench.seconds,
        bench.owners,
        bench.watchers,
        bench.searches_per_second,
        bench.uploads_per_second
    );
    println!();
    println!("| victim call | calls | p50 | p99 | max | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    let errors_of = |what: &str| errors.iter().filter(|e| e.starts_with(what)).count();
    for (name, v, what) in [("Get", &gets, "get"), ("Search", &searches, "search")] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            v.len(),
            p(v, 50.0),
            p(v, 99.0),
            v.last().map(|d| ms(*d)).unwrap_or_default(),
            errors_of(what)
        );
    }
    println!();
    println!("watch calls: {}", watch.shown());
    println!("searches: {}", search.shown());
    println!("uploads: {}", uploads.shown());
    println!(
        "server RSS: {:.0} MiB at the start, {:.0} MiB at most (sampled every second)",
        rss_start as f64 / MIB,
        rss_max as f64 / MIB
    );
    if !slow.is_empty() {
        slow.sort_by_key(|s| std::cmp::Reverse(s.1));
        let shown: Vec<String> = slow
            .iter()
            .take(5)
            .map(|(at, took)| format!("{} at {at:.1} s", ms(*took)))
            .collect();
        println!(
            "victim searches over 50 ms: {}; the slowest: {}",
            slow.len(),
            shown.join(", ")
        );
    }
    if let Some(e) = errors.first() {
        println!("first victim error: {e}");
    }
    let p99 = |v: &[Duration]| crate::timing::percentile(v, 0.99);
    let ok = errors.is_empty()
        && !gets.is_empty()
        && p99(&gets) <= Duration::from_millis(50)
        && p99(&searches) <= Duration::from_millis(50);
    Ok(crate::timing::verdict(
        "target (victim p99 ≤ 50 ms for Get and Search, no victim errors)",
        ok,
    ))
}

/// Current resident set size (Linux `VmRSS`).
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
