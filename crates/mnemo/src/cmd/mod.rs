//! Commands, one module each, each with its `Args` beside the code that
//! runs it ([`watch`] is the resuming progress stream that `progress` and
//! `upload --watch` share). Client commands speak only the public gRPC
//! API; the operator commands `dlq`, `projections`, `backfill`, `nats`,
//! `learner` and `keys` talk to
//! NATS and PostgreSQL directly (like `serve`); `extract` and `fsrs` run
//! domain logic locally; [`bench`] only hands `bench` and `eval` to the
//! `mnemo-bench` binary.

pub mod ask;
pub mod backfill;
pub mod bench;
pub mod cards;
pub mod cards_generate;
pub mod dlq;
pub mod docs;
pub mod doctor;
pub mod extract;
pub mod fsrs;
pub mod keys;
pub mod learner;
pub mod model;
pub mod nats;
pub mod progress;
pub mod projections;
pub mod replay;
pub mod review;
pub mod search;
pub mod stats;
pub mod study;
pub mod token;
pub mod topics;
pub mod upload;
pub mod watch;

use mnemo_proto::v1 as pb;

/// The stage's lowercase name.
pub fn stage_name(stage: i32) -> &'static str {
    match pb::Stage::try_from(stage).unwrap_or(pb::Stage::Unspecified) {
        pb::Stage::Unspecified => "unknown",
        pb::Stage::Uploaded => "uploaded",
        pb::Stage::Extracting => "extracting",
        pb::Stage::Chunking => "chunking",
        pb::Stage::Embedding => "embedding",
        pb::Stage::Indexed => "indexed",
        pb::Stage::Failed => "failed",
        pb::Stage::Cancelled => "cancelled",
    }
}

/// A failure code's stable name (`damaged`, ...), as in `DocumentFailed`;
/// `None` when the document has not failed.
pub fn failure_name(code: i32) -> Option<&'static str> {
    use pb::FailureCode as C;
    Some(match C::try_from(code).unwrap_or(C::Other) {
        C::Unspecified => return None,
        C::NoTextLayer => "no_text_layer",
        C::Damaged => "damaged",
        C::NeedsPassword => "needs_password",
        C::TimedOut => "timed_out",
        C::RetriesExhausted => "retries_exhausted",
        C::TooLarge => "too_large",
        C::Other => "other",
    })
}

/// The stage a document failed in, by name; `None` when it has not.
fn failed_stage_name(stage: i32) -> Option<&'static str> {
    (stage != pb::Stage::Unspecified as i32).then(|| stage_name(stage))
}

/// "1 chunk", "2 chunks": `noun` with an `s` unless `n` is one.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A document as JSON for `--json` output (times in RFC 3339).
pub fn document_json(d: &pb::Document) -> serde_json::Value {
    serde_json::json!({
        "document_id": d.document_id,
        "filename": d.filename,
        "topic": d.topic,
        "batch_id": d.batch_id,
        "content_type": d.content_type,
        "size_bytes": d.size_bytes,
        "sha256": d.sha256,
        "stage": stage_name(d.stage),
        "run": d.run,
        "reason": d.reason,
        "failed_stage": failed_stage_name(d.failed_stage),
        "failure_code": failure_name(d.failure_code),
        "pages_total": d.pages_total,
        "pages_failed": d.pages_failed,
        "uploaded_at": d.uploaded_at.as_ref().map(|t| cards::rfc3339(Some(t))),
        "updated_at": d.updated_at.as_ref().map(|t| cards::rfc3339(Some(t))),
        "sequence": d.sequence,
    })
}

/// A progress update as JSON for `--json` output.
pub fn progress_json(u: &pb::ProgressUpdate) -> serde_json::Value {
    serde_json::json!({
        "document_id": u.document_id,
        "stage": stage_name(u.stage),
        "fraction": u.fraction,
        "message": u.message,
        "failed_stage": failed_stage_name(u.failed_stage),
        "failure_code": failure_name(u.failure_code),
        "run": u.run,
        "pages_done": u.pages_done,
        "pages_total": u.pages_total,
        "pages_failed": u.pages_failed,
        "chunks_embedded": u.chunks_embedded,
        "chunks_total": u.chunks_total,
        "sequence": u.sequence,
        "event_type": u.event_type,
        "terminal": u.terminal,
        "batch_id": u.batch_id,
        "filename": u.filename,
        "summary": u.summary.as_ref().map(|s| serde_json::json!({
            "total": s.total,
            "done": s.done,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "finished": s.finished,
            "fraction": s.fraction,
        })),
    })
}
