//! `mnemo-bench replay`: how fast the read models rebuild from sequence 1.
//!
//! 1. A throwaway namespace gets a synthetic event log shaped like real
//!    ingestion: per document an upload, throttled extraction progress, the
//!    extracted text, one chunk batch, its vectors (384-d) and the indexing —
//!    one event per message, sealed with its owner's key, as the services
//!    append them — over several owners.
//! 2. `documents` + `chunks` are rebuilt from sequence 1 with
//!    [`mnemo_projector::rebuild`] (the code `mnemo projections rebuild`
//!    runs), into a scratch schema, not swapped, while nothing is live yet
//!    (every chunk's lexemes computed).
//! 3. The live projector catches up from sequence 1 on its own path (its
//!    smaller live batches).
//! 4. The rebuilds again, beside the live tables, as in operation (version
//!    N+1 beside N: lexemes of the same chunks reused).
//!
//! Events/s counts events folded into PostgreSQL; chunks and vectors per
//! second and the bytes read say what those events carried.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use mnemo::cli::Backend;
use mnemo_bus::{Bus, Envelope, Namespace};
use mnemo_domain::content::ContentType;
use mnemo_domain::document::{aggregate_id, ChunkRecord, ChunkVector, UploadedDocument};
use mnemo_domain::{DocumentEvent, DocumentId, OwnerId, Sha256Hex};
use mnemo_projector::rebuild::{RebuildOptions, RebuildReport};
use mnemo_projector::Projection;

/// What `bench replay` is asked to do.
#[derive(Args)]
pub struct ReplayBench {
    #[command(flatten)]
    pub backend: Backend,
    /// Documents in the synthetic log.
    #[arg(long, default_value_t = 5_000)]
    pub documents: usize,
    /// Owners the documents are spread over.
    #[arg(long, default_value_t = 10)]
    pub owners: usize,
    /// Chunks (and vectors) per document.
    #[arg(long, default_value_t = 8)]
    pub chunks: usize,
    /// Extraction progress events per document.
    #[arg(long, default_value_t = 8)]
    pub progress: usize,
    /// Event messages per transaction.
    #[arg(long, default_value_t = 4_096)]
    pub batch: usize,
    #[arg(long)]
    pub keep: bool,
    #[arg(long)]
    pub json: bool,
}

/// The synthetic log's size.
#[derive(Debug, Default, serde::Serialize)]
struct Log {
    messages: u64,
    events: u64,
    chunks: u64,
    vectors: u64,
    bytes: u64,
    seconds: f64,
    last_sequence: u64,
}

#[derive(Debug, serde::Serialize)]
struct Timed {
    what: String,
    seconds: f64,
    events: u64,
    events_per_second: f64,
}

pub async fn run(bench: ReplayBench) -> Result<ExitCode> {
    let ns = Namespace::new(format!(
        "bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ))?;
    let bus = bench.backend.operator_bus(ns.clone()).await?;
    let config = mnemo_projector::ProjectorConfig::new(ns.clone(), &bench.backend.database_url);
    mnemo_projector::runner::prepare(&config).await?;
    let result = measure(&bench, &bus, config).await;
    if bench.keep {
        eprintln!("kept namespace {ns}");
    } else {
        mnemo_bus::setup::delete_namespace(&bus.jetstream, &ns).await?;
        mnemo_projector::db::drop_schema(&bench.backend.database_url, &ns).await?;
    }
    let (log, timed) = result?;
    report(&bench, &log, &timed);
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    bench: &ReplayBench,
    bus: &Bus,
    config: mnemo_projector::ProjectorConfig,
) -> Result<(Log, Vec<Timed>)> {
    let log = write_log(bench, bus).await?;
    let both = vec![Projection::Documents, Projection::Chunks];
    // Nothing live yet: every chunk's lexemes are computed.
    let mut timed = vec![
        rebuild(
            bench,
            bus,
            &log,
            "rebuild documents + chunks, nothing live yet",
            &both,
        )
        .await?,
    ];
    // The live projector from sequence 1 (its own, smaller batches).
    let db = mnemo_projector::db::connect(&config.database_url, &config.namespace).await?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let projector = tokio::spawn(mnemo_projector::run(
        bus.clone(),
        config.clone(),
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    let reached = mnemo_projector::runner::wait_for(
        &db,
        &config.namespace,
        log.last_sequence,
        Duration::from_secs(3600),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = projector.await;
    anyhow::ensure!(
        reached >= log.last_sequence,
        "the live projector stopped at {reached}"
    );
    timed.push(Timed {
        what: "live projector from sequence 1".into(),
        seconds,
        events: log.events,
        events_per_second: log.events as f64 / seconds.max(1e-9),
    });
    // What `mnemo projections rebuild` does in operation: version N+1
    // beside a serving version N (whose lexemes it reuses).
    timed.push(
        rebuild(
            bench,
            bus,
            &log,
            "rebuild documents + chunks beside live",
            &both,
        )
        .await?,
    );
    timed.push(
        rebuild(
            bench,
            bus,
            &log,
            "rebuild every projection beside live",
            &Projection::ALL,
        )
        .await?,
    );
    Ok((log, timed))
}

/// One rebuild from sequence 1 into the scratch schema (not swapped).
async fn rebuild(
    bench: &ReplayBench,
    bus: &Bus,
    log: &Log,
    what: &str,
    projections: &[Projection],
) -> Result<Timed> {
    let options = RebuildOptions {
        batch_messages: bench.batch.max(1),
        fresh: true,
        no_swap: true,
        until: Some(log.last_sequence),
        ..Default::default()
    };
    let report: RebuildReport = mnemo_projector::rebuild::rebuild(
        bus,
        &bench.backend.database_url,
        projections,
        &options,
        |_| {},
    )
    .await?;
    Ok(Timed {
        what: what.into(),
        seconds: report.progress.elapsed_seconds,
        events: report.progress.events,
        events_per_second: report.progress.events_per_second(),
    })
}

/// Appends the synthetic log: one event per message, up to 2,048 publishes
/// in flight.
async fn write_log(bench: &ReplayBench, bus: &Bus) -> Result<Log> {
    let started = Instant::now();
    let mut log = Log::default();
    let mut in_flight = FuturesUnordered::new();
    let owners: Vec<OwnerId> = (0..bench.owners.max(1))
        .map(|i| OwnerId::new(format!("reader-{i}")))
        .collect::<Result<_, _>>()?;
    let text = "Spaced repetition schedules each review just before the memory would fade, \
                so that every recall strengthens it; the interval grows with each success. "
        .repeat(4);
    for d in 0..bench.documents {
        let owner = &owners[d % owners.len()];
        let id = DocumentId::new();
        let agg = aggregate_id(owner, &id);
        let subject = bus.namespace.aggregate_subject("doc", &agg);
        let pages = bench.progress.max(1) as u32;
        let chunks: Vec<ChunkRecord> = (0..bench.chunks)
            .map(|i| ChunkRecord {
                chunk_id: format!("{id}-{i:05}-bench"),
                ordinal: i as u32,
                text: format!("{i} {text}"),
                page_start: 1 + (i as u32 % pages),
                page_end: 1 + (i as u32 % pages),
                tokens: 120,
            })
            .collect();
        let vectors: Vec<ChunkVector> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| ChunkVector {
                chunk_id: c.chunk_id.clone(),
                vector: synthetic_vector(d * 1000 + i),
            })
            .collect();
        let mut events = vec![DocumentEvent::DocumentUploaded(UploadedDocument {
            document_id: id,
            owner: owner.clone(),
            filename: format!("doc-{d}.pdf"),
            content_type: ContentType::Pdf,
            size_bytes: 100_000,
            sha256: Sha256Hex::from_digest(&[(d % 251) as u8; 32]),
            topic: Some(format!("topic-{}", d % 7)),
            batch_id: format!("batch-{}", d / 40),
            idempotency_key: None,
            external_id: None,
        })];
        events.extend((1..=pages).map(|p| DocumentEvent::ExtractionProgressed {
            run: 1,
            pages_done: p,
            pages_total: pages,
        }));
        events.push(DocumentEvent::TextExtracted {
            run: 1,
            text_sha256: Sha256Hex::from_digest(&[7; 32]),
            pages,
            chars: 4_000,
            extractor: "pdf-rs".into(),
            pages_failed: 0,
        });
        log.chunks += chunks.len() as u64;
        log.vectors += vectors.len() as u64;
        events.push(DocumentEvent::DocumentChunked {
            run: 1,
            batch: 0,
            last: true,
            chunks,
        });
        events.push(DocumentEvent::ChunksEmbedded {
            run: 1,
            model: "bench@0".into(),
            dims: 384,
            vectors,
            backfill: false,
        });
        events.push(DocumentEvent::DocumentIndexed {
            run: 1,
            chunks: bench.chunks as u32,
        });
        // Sealed with the owner's key, as the services append them.
        let key = bus.keys.for_writing(&owner.token()).await?;
        for (version, event) in events.into_iter().enumerate() {
            let envelope = Envelope::for_commit(
                "document",
                &agg,
                version as u64 + 1,
                vec![event.name().to_owned()],
                vec![cqrs_es::DomainEvent::event_version(&event)],
                &HashMap::new(),
            );
            let plain = serde_json::to_vec(&[event])?;
            let (headers, payload) =
                mnemo_bus::event_store::seal_message(&key, &envelope, &subject, &plain)?;
            log.messages += 1;
            log.events += 1;
            log.bytes += payload.len() as u64;
            let ack = bus
                .jetstream
                .publish_with_headers(subject.clone(), headers, payload)
                .await
                .context("publishing the synthetic log")?;
            in_flight.push(std::future::IntoFuture::into_future(ack));
            while in_flight.len() >= 2_048 {
                if let Some(ack) = in_flight.next().await {
                    log.last_sequence = log.last_sequence.max(ack?.sequence);
                }
            }
        }
    }
    while let Some(ack) = in_flight.next().await {
        log.last_sequence = log.last_sequence.max(ack?.sequence);
    }
    log.seconds = started.elapsed().as_secs_f64();
    Ok(log)
}

/// A unit vector that differs per index (cheap, deterministic).
fn synthetic_vector(seed: usize) -> Vec<f32> {
    let mut x = (seed as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v: Vec<f32> = (0..384)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-9);
    v.iter_mut().for_each(|a| *a /= norm);
    v
}

fn report(bench: &ReplayBench, log: &Log, timed: &[Timed]) {
    if bench.json {
        println!("{}", serde_json::json!({"log": log, "runs": timed}));
        return;
    }
    println!(
        "synthetic log: {} documents of {} owners, {} events in {} messages ({} chunks, {} vectors, {:.0} MB), written in {:.1} s",
        bench.documents,
        bench.owners,
        log.events,
        log.messages,
        log.chunks,
        log.vectors,
        log.bytes as f64 / 1e6,
        log.seconds
    );
    println!();
    println!("| replay | seconds | events/s | chunks/s | MB/s read |");
    println!("|---|---:|---:|---:|---:|");
    for t in timed {
        let s = t.seconds.max(1e-9);
        println!(
            "| {} | {:.2} | **{:.0}** | {:.0} | {:.1} |",
            t.what,
            t.seconds,
            t.events_per_second,
            log.chunks as f64 / s,
            log.bytes as f64 / 1e6 / s
        );
    }
}
