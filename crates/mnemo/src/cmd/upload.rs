//! `mnemo upload FILE... [--topic T] [--watch] [--json]`.
//!
//! Files stream to the API in 256 KiB chunks, a few at a time, all under one
//! batch id. With `--watch`, each file gets a live bar, all fed by one Watch
//! of the batch (resumed from its last sequence if the API restarts).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mnemo_proto::v1 as pb;
use mnemo_proto::v1::upload_request::Part;
use mnemo_proto::v1::watch_request::Scope;
use tokio::io::AsyncReadExt;

use crate::cli::Global;
use crate::client::{connect, describe, Documents, Progress};
use crate::cmd::watch::{request, resuming, DEFAULT_RECONNECTS};
use crate::cmd::{count, failure_name, stage_name};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum UntilStage {
    Uploaded,
    Extracting,
    Chunking,
    Embedding,
    Indexed,
}

#[derive(Args)]
pub struct UploadArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long)]
    pub topic: Option<String>,
    /// Draw live progress per file until each is done.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: stop following a file once it reaches this stage
    /// (failed and cancelled always stop).
    #[arg(long, value_enum, default_value = "indexed")]
    pub until: UntilStage,
    /// Make a new document even of bytes you uploaded before (without it,
    /// such a file is answered with its earlier document).
    #[arg(long = "new")]
    pub new_document: bool,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    #[arg(long)]
    pub json: bool,
    /// With --watch: reconnect attempts in a row when the API goes away.
    #[arg(long, env = "MNEMO_WATCH_RECONNECTS", default_value_t = crate::cmd::watch::DEFAULT_RECONNECTS)]
    pub reconnects: u32,
}

const CHUNK: usize = 256 * 1024;

/// Streams one file: metadata first, then its bytes.
pub async fn upload_file(
    documents: &mut Documents,
    path: &Path,
    topic: &str,
    batch_id: &str,
    new_document: bool,
) -> Result<pb::UploadResponse> {
    let meta = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    if meta.is_dir() {
        // Said once: the caller prefixes the path.
        anyhow::bail!(
            "is a directory: name its files (e.g. `mnemo upload {}/*.pdf`)",
            path.display()
        );
    }
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
            new_document,
        })),
    };
    // A read error ends the upload with a message the server refuses (so
    // nothing half-read is stored); the error itself is kept to be reported.
    let read_error = Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
    let seen = read_error.clone();
    let chunks = futures::stream::unfold(Some(file), move |state| {
        let seen = seen.clone();
        async move {
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
                Err(e) => {
                    *seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    Some((
                        pb::UploadRequest {
                            part: Some(Part::Metadata(Default::default())),
                        },
                        None,
                    ))
                }
            }
        }
    });
    let requests = futures::stream::once(async move { first }).chain(chunks);
    let r = documents.upload(requests).await;
    let read = read_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(e) = read {
        return Err(e).with_context(|| format!("cannot read {}", path.display()));
    }
    Ok(r.map_err(|s| anyhow::anyhow!(describe(&s)))?.into_inner())
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

/// Follows one document until it reaches `until` or ends; returns the last
/// update. Resumes across API restarts. (`mnemo-bench pipeline` follows
/// its uploads with it too.)
pub async fn watch(
    progress: Progress,
    document_id: String,
    until: i32,
    bar: Option<ProgressBar>,
) -> Result<Option<pb::ProgressUpdate>> {
    let req = request(Scope::DocumentId(document_id), 0, false);
    let mut stream = resuming(progress, req, DEFAULT_RECONNECTS);
    let mut last = None;
    while let Some(u) = stream.next().await? {
        if let Some(bar) = &bar {
            show(bar, &u);
        }
        let done = reached(&u, until);
        last = Some(u);
        if done {
            break;
        }
    }
    Ok(last)
}

fn show(bar: &ProgressBar, u: &pb::ProgressUpdate) {
    bar.set_position((u.fraction * 1000.0) as u64);
    bar.set_message(format!("{:<10} {}", stage_name(u.stage), u.message));
}

/// Whether a document needs no more watching: terminal, or at `until`.
fn reached(u: &pb::ProgressUpdate, until: i32) -> bool {
    u.terminal || u.stage >= until
}

struct Outcome {
    path: PathBuf,
    upload: Result<pb::UploadResponse, String>,
    last: Option<pb::ProgressUpdate>,
}

impl Outcome {
    /// "notes.pdf: indexed: 40 chunks searchable", "scan.pdf: failed while
    /// extracting: no text layer (OCR not supported) [no_text_layer]",
    /// "x.pdf: not uploaded: ...".
    fn line(&self) -> String {
        let file = self.path.display();
        let last = match (&self.upload, &self.last) {
            (Err(e), _) => return format!("{file}: not uploaded: {e}"),
            (Ok(_), None) => return format!("{file}: uploaded (no progress seen)"),
            (Ok(_), Some(u)) => u,
        };
        let stage = stage_name(last.stage);
        let mut line = if last.message.starts_with(stage) {
            format!("{file}: {}", last.message)
        } else {
            format!("{file}: {stage}: {}", last.message)
        };
        if let Some(code) = failure_name(last.failure_code) {
            line.push_str(&format!(" [{code}]"));
        }
        line
    }
}

/// A document uploaded before, as the outcome of a file that was the same
/// bytes: its stage now, and why it failed if it did.
fn already_uploaded(d: &pb::Document) -> pb::ProgressUpdate {
    let reason = if d.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", d.reason)
    };
    let again = if d.stage == pb::Stage::Failed as i32 || d.stage == pb::Stage::Cancelled as i32 {
        format!(
            " (`mnemo docs reprocess {}` runs it again; `mnemo upload --new` makes another)",
            d.document_id
        )
    } else {
        String::new()
    };
    pb::ProgressUpdate {
        document_id: d.document_id.clone(),
        stage: d.stage,
        message: format!("already uploaded as {}{reason}{again}", d.document_id),
        failed_stage: d.failed_stage,
        failure_code: d.failure_code,
        sequence: d.sequence,
        ..Default::default()
    }
}

/// How a batch's files ended, for the summary line.
#[derive(Default)]
struct Tally(std::collections::BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, o: &Outcome) {
        let word = match (&o.upload, &o.last) {
            (Err(_), _) => "not uploaded",
            (Ok(_), None) => "uploaded",
            (Ok(_), Some(u)) => stage_name(u.stage),
        };
        *self.0.entry(word).or_default() += 1;
    }

    /// "4 indexed, 1 failed" (most common first, then by name).
    fn summary(&self) -> String {
        let mut parts: Vec<(&&str, &usize)> = self.0.iter().collect();
        parts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let total: usize = self.0.values().sum();
        let parts: Vec<String> = parts.iter().map(|(w, n)| format!("{n} {w}")).collect();
        format!("{}: {}", count(total as u64, "file"), parts.join(", "))
    }
}

/// The files' documents as one batch watch reports them: bars drawn as
/// updates come, each document's latest update kept for the summary.
struct BatchView {
    until: i32,
    latest: HashMap<String, pb::ProgressUpdate>,
    bars: HashMap<String, ProgressBar>,
    /// Documents uploaded by this call (updates may come before the upload's
    /// response does).
    ours: Vec<String>,
}

impl BatchView {
    fn update(&mut self, u: pb::ProgressUpdate) {
        if let Some(bar) = self.bars.get(&u.document_id) {
            show(bar, &u);
        }
        self.latest.insert(u.document_id.clone(), u);
    }

    fn uploaded(&mut self, document_id: &str, bar: Option<ProgressBar>) {
        self.ours.push(document_id.to_owned());
        if let Some(bar) = bar {
            if let Some(u) = self.latest.get(document_id) {
                show(&bar, u);
            }
            self.bars.insert(document_id.to_owned(), bar);
        }
    }

    fn settled(&self) -> bool {
        self.ours
            .iter()
            .all(|d| self.latest.get(d).is_some_and(|u| reached(u, self.until)))
    }
}

pub async fn run(global: &Global, args: UploadArgs) -> Result<ExitCode> {
    let clients = connect(global).await?;
    let batch_id = uuid::Uuid::now_v7().to_string();
    let topic = args.topic.clone().unwrap_or_default();
    let until = until_value(args.until);
    let multi = Arc::new(MultiProgress::new());
    let show_bars = args.watch && !args.json;
    let new_document = args.new_document;
    let style = ProgressStyle::with_template("{prefix:<32!} [{bar:30}] {percent:>3}% {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");

    let mut uploads = futures::stream::iter(args.files.clone())
        .map(|path| {
            let mut documents = clients.documents.clone();
            let (topic, batch_id, multi, style) = (
                topic.clone(),
                batch_id.clone(),
                multi.clone(),
                style.clone(),
            );
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
                let upload = upload_file(&mut documents, &path, &topic, &batch_id, new_document)
                    .await
                    .map_err(|e| format!("{e:#}"));
                if let (Err(e), Some(b)) = (&upload, &bar) {
                    b.abandon_with_message(format!("upload refused: {e}"));
                }
                (path, upload, bar)
            }
        })
        .buffer_unordered(args.parallel.max(1));

    // One watch for the whole batch, open from the start (follow: documents
    // join as their uploads land), resumed across API restarts.
    let mut watch = args.watch.then(|| {
        let req = request(Scope::BatchId(batch_id.clone()), 0, true);
        resuming(clients.progress.clone(), req, args.reconnects)
    });
    let mut view = BatchView {
        until,
        latest: HashMap::new(),
        bars: HashMap::new(),
        ours: Vec::new(),
    };
    let mut uploaded: Vec<(PathBuf, Result<pb::UploadResponse, String>)> = Vec::new();
    let mut uploads_done = false;
    let mut watch_error = None;
    while !(uploads_done && (watch.is_none() || view.settled())) {
        let next_update = async {
            match watch.as_mut() {
                Some(w) => w.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = uploads.next(), if !uploads_done => match next {
                Some((path, upload, bar)) => {
                    match (&upload, bar) {
                        // Bytes uploaded before: that document, in its own
                        // batch; this watch will not see it (read below).
                        (Ok(r), Some(bar)) if r.batch_id != batch_id => {
                            bar.finish_with_message(format!("already uploaded as {}", r.document_id));
                        }
                        (Ok(r), bar) if r.batch_id == batch_id => view.uploaded(&r.document_id, bar),
                        _ => {}
                    }
                    uploaded.push((path, upload));
                }
                None => uploads_done = true,
            },
            u = next_update => match u {
                Ok(Some(u)) => view.update(u),
                Ok(None) => watch = None,
                Err(e) => {
                    for bar in view.bars.values() {
                        bar.abandon_with_message(format!("watch failed: {e}"));
                    }
                    watch_error = Some(e);
                    watch = None;
                }
            },
        }
    }
    // Leave each bar where its document stopped (a cancelled or failed run,
    // or --until, is not 100 %).
    for bar in view.bars.values() {
        if !bar.is_finished() {
            bar.abandon();
        }
    }
    let mut outcomes: Vec<Outcome> = uploaded
        .into_iter()
        .map(|(path, upload)| {
            let last = upload
                .as_ref()
                .ok()
                .and_then(|r| view.latest.get(&r.document_id).cloned());
            Outcome { path, upload, last }
        })
        .collect();
    if args.watch {
        // Files that were already documents: their state now.
        for o in &mut outcomes {
            let Ok(r) = &o.upload else { continue };
            if r.batch_id == batch_id {
                continue;
            }
            let mut documents = clients.documents.clone();
            o.last = Some(
                match documents
                    .get(pb::GetDocumentRequest {
                        document_id: r.document_id.clone(),
                    })
                    .await
                {
                    Ok(d) => already_uploaded(&d.into_inner()),
                    Err(s) => pb::ProgressUpdate {
                        message: format!("already uploaded as {}: {}", r.document_id, describe(&s)),
                        ..Default::default()
                    },
                },
            );
        }
    }
    let mut failed = false;
    let mut tally = Tally::default();
    for o in &outcomes {
        let final_stage = o.last.as_ref().map(|u| u.stage);
        let doc_failed = matches!(final_stage, Some(s) if s == pb::Stage::Failed as i32);
        failed |= o.upload.is_err() || doc_failed;
        tally.add(o);
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
                    "failure_code": o.last.as_ref().and_then(|u| failure_name(u.failure_code)),
                }),
                Err(e) => serde_json::json!({"file": o.path.display().to_string(), "error": e}),
            };
            println!("{v}");
        } else if args.watch {
            // One line per file with its outcome in full, whatever the
            // terminal's width (the bars cut it, and are not drawn off a
            // terminal at all).
            println!("{}", o.line());
        } else {
            match &o.upload {
                Ok(r) => println!(
                    "{}  {}  {}{}",
                    r.document_id,
                    r.content_type,
                    o.path.display(),
                    if r.deduplicated {
                        "  (already uploaded)"
                    } else {
                        ""
                    }
                ),
                Err(e) => eprintln!("{}: {e}", o.path.display()),
            }
        }
    }
    if args.watch && !args.json {
        println!("{} (batch {batch_id})", tally.summary());
    }
    if let Some(e) = watch_error {
        if e.resumable {
            eprintln!(
                "error: {}; follow the rest with `mnemo progress --batch {batch_id} --from {}`",
                e.reason, e.last_sequence
            );
        } else {
            eprintln!("error: {}", e.reason);
        }
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
