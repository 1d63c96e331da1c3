//! `mnemo upload FILE... [--topic T] [--watch] [--json]`.
//!
//! Files stream to the API in 256 KiB chunks, a few at a time, all under one
//! batch id. With `--watch`, each file gets a live bar fed by its Watch stream.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;
use tokio::io::AsyncReadExt;

use crate::cli::{Global, UntilStage, UploadArgs};
use crate::client::{connect, describe, Documents, Progress};
use crate::cmd::stage_name;

const CHUNK: usize = 256 * 1024;

/// Streams one file: metadata first, then its bytes.
pub async fn upload_file(
    documents: &mut Documents,
    path: &Path,
    topic: &str,
    batch_id: &str,
) -> Result<pb::UploadResponse> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let first = pb::UploadRequest {
        part: Some(Part::Metadata(pb::UploadMetadata {
            filename,
            topic: topic.to_owned(),
            batch_id: batch_id.to_owned(),
            content_type: String::new(),
            idempotency_key: String::new(),
            external_id: String::new(),
        })),
    };
    let chunks = futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    pb::UploadRequest {
                        part: Some(Part::Chunk(buf)),
                    },
                    Some(file),
                ))
            }
            // A read error ends the stream early; the server then sees a
            // short file — so report it by ending with an invalid message.
            Err(e) => {
                tracing::error!(error = %e, "read failed");
                Some((
                    pb::UploadRequest {
                        part: Some(Part::Metadata(Default::default())),
                    },
                    None,
                ))
            }
        }
    });
    let requests = futures::stream::once(async move { first }).chain(chunks);
    let r = documents
        .upload(requests)
        .await
        .map_err(|s| anyhow::anyhow!(describe(&s)))?;
    Ok(r.into_inner())
}

fn until_value(u: UntilStage) -> i32 {
    match u {
        UntilStage::Uploaded => pb::Stage::Uploaded as i32,
        UntilStage::Extracting => pb::Stage::Extracting as i32,
        UntilStage::Chunking => pb::Stage::Chunking as i32,
        UntilStage::Embedding => pb::Stage::Embedding as i32,
        UntilStage::Indexed => pb::Stage::Indexed as i32,
    }
}

/// Follows one document until it reaches `until` or ends; returns the last update.
pub(crate) async fn watch(
    mut progress: Progress,
    document_id: String,
    until: i32,
    bar: Option<ProgressBar>,
) -> Result<Option<pb::ProgressUpdate>> {
    let mut stream = progress
        .watch(pb::WatchRequest {
            document_id,
            from_sequence: 0,
            follow: false,
        })
        .await
        .map_err(|s| anyhow::anyhow!(describe(&s)))?
        .into_inner();
    let mut last = None;
    while let Some(u) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!(describe(&s)))?
    {
        if let Some(bar) = &bar {
            bar.set_position((u.fraction * 1000.0) as u64);
            bar.set_message(format!("{:<10} {}", stage_name(u.stage), u.message));
        }
        let done = u.terminal || u.stage >= until;
        last = Some(u);
        if done {
            break;
        }
    }
    Ok(last)
}

struct Outcome {
    path: PathBuf,
    upload: Result<pb::UploadResponse, String>,
    last: Option<pb::ProgressUpdate>,
}

pub async fn run(global: &Global, args: UploadArgs) -> Result<ExitCode> {
    let clients = connect(global).await?;
    let batch_id = uuid::Uuid::now_v7().to_string();
    let topic = args.topic.clone().unwrap_or_default();
    let until = until_value(args.until);
    let multi = Arc::new(MultiProgress::new());
    let show_bars = args.watch && !args.json;
    let style = ProgressStyle::with_template("{prefix:<32!} [{bar:30}] {percent:>3}% {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");

    let outcomes: Vec<Outcome> = futures::stream::iter(args.files.clone())
        .map(|path| {
            let mut documents = clients.documents.clone();
            let progress = clients.progress.clone();
            let (topic, batch_id, multi, style) = (
                topic.clone(),
                batch_id.clone(),
                multi.clone(),
                style.clone(),
            );
            let watch_it = args.watch;
            async move {
                let bar = show_bars.then(|| {
                    let b = multi.add(ProgressBar::new(1000));
                    b.set_style(style);
                    b.set_prefix(
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    );
                    b.enable_steady_tick(Duration::from_millis(200));
                    b.set_message("uploading");
                    b
                });
                let upload = upload_file(&mut documents, &path, &topic, &batch_id)
                    .await
                    .map_err(|e| format!("{e:#}"));
                let mut last = None;
                match (&upload, watch_it) {
                    (Ok(r), true) => {
                        match watch(progress, r.document_id.clone(), until, bar.clone()).await {
                            Ok(l) => last = l,
                            Err(e) => {
                                if let Some(b) = &bar {
                                    b.abandon_with_message(format!("watch failed: {e:#}"));
                                }
                            }
                        }
                    }
                    (Err(e), _) => {
                        if let Some(b) = &bar {
                            b.abandon_with_message(format!("upload refused: {e}"));
                        }
                    }
                    _ => {}
                }
                // Leave each bar where its document stopped (a cancelled or
                // failed run, or --until, is not 100 %).
                if let Some(b) = &bar {
                    if !b.is_finished() {
                        b.abandon();
                    }
                }
                Outcome { path, upload, last }
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .collect()
        .await;

    let mut failed = false;
    for o in &outcomes {
        let final_stage = o.last.as_ref().map(|u| u.stage);
        let doc_failed = matches!(final_stage, Some(s) if s == pb::Stage::Failed as i32);
        failed |= o.upload.is_err() || doc_failed;
        if args.json {
            let v = match &o.upload {
                Ok(r) => serde_json::json!({
                    "file": o.path.display().to_string(),
                    "document_id": r.document_id,
                    "batch_id": r.batch_id,
                    "content_type": r.content_type,
                    "size_bytes": r.size_bytes,
                    "sha256": r.sha256,
                    "sequence": r.sequence,
                    "deduplicated": r.deduplicated,
                    "stage": final_stage.map(stage_name),
                    "message": o.last.as_ref().map(|u| u.message.clone()),
                }),
                Err(e) => serde_json::json!({"file": o.path.display().to_string(), "error": e}),
            };
            println!("{v}");
        } else if !show_bars {
            match &o.upload {
                Ok(r) => println!(
                    "{}  {}  {}",
                    r.document_id,
                    r.content_type,
                    o.path.display()
                ),
                Err(e) => eprintln!("{}: {e}", o.path.display()),
            }
        }
    }
    if show_bars {
        let ok = outcomes.iter().filter(|o| o.upload.is_ok()).count();
        println!(
            "{ok} of {} files uploaded (batch {batch_id})",
            outcomes.len()
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
