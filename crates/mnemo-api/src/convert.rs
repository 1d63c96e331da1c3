//! Domain and read-model types into wire types.

use mnemo_domain::progress::Progress;
use mnemo_domain::progress_set::SetUpdate;
use mnemo_domain::{Document, FailureCode, Stage};
use mnemo_projector::documents::DocumentRow;
use mnemo_proto::v1 as pb;
use time::OffsetDateTime;

pub fn stage(s: Option<Stage>) -> pb::Stage {
    match s {
        None => pb::Stage::Unspecified,
        Some(Stage::Uploaded) => pb::Stage::Uploaded,
        Some(Stage::Extracting) => pb::Stage::Extracting,
        Some(Stage::Chunking) => pb::Stage::Chunking,
        Some(Stage::Embedding) => pb::Stage::Embedding,
        Some(Stage::Indexed) => pb::Stage::Indexed,
        Some(Stage::Failed) => pb::Stage::Failed,
        Some(Stage::Cancelled) => pb::Stage::Cancelled,
    }
}

pub fn failure_code(c: Option<FailureCode>) -> pb::FailureCode {
    match c {
        None => pb::FailureCode::Unspecified,
        Some(FailureCode::NoTextLayer) => pb::FailureCode::NoTextLayer,
        Some(FailureCode::Damaged) => pb::FailureCode::Damaged,
        Some(FailureCode::NeedsPassword) => pb::FailureCode::NeedsPassword,
        Some(FailureCode::TimedOut) => pb::FailureCode::TimedOut,
        Some(FailureCode::RetriesExhausted) => pb::FailureCode::RetriesExhausted,
        Some(FailureCode::TooLarge) => pb::FailureCode::TooLarge,
        Some(FailureCode::Other) => pb::FailureCode::Other,
    }
}

pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

/// A document folded from its events (strongly consistent view).
pub fn document(
    doc: &Document,
    uploaded_at: Option<OffsetDateTime>,
    updated_at: Option<OffsetDateTime>,
    sequence: u64,
) -> pb::Document {
    pb::Document {
        document_id: doc.id.map(|i| i.to_string()).unwrap_or_default(),
        filename: doc.filename.clone(),
        topic: doc.topic.clone().unwrap_or_default(),
        batch_id: doc.batch_id.clone(),
        content_type: doc
            .content_type
            .map(|c| c.mime().to_owned())
            .unwrap_or_default(),
        size_bytes: doc.size_bytes,
        sha256: doc
            .sha256
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        stage: stage(doc.stage) as i32,
        run: doc.run,
        reason: doc.reason.clone().unwrap_or_default(),
        uploaded_at: uploaded_at.map(timestamp),
        updated_at: updated_at.map(timestamp),
        sequence,
        external_id: doc.external_id.clone().unwrap_or_default(),
        pages_total: doc.pages_total,
        pages_failed: doc.pages_failed,
        failed_stage: stage(doc.failure.map(|f| f.0)) as i32,
        failure_code: failure_code(doc.failure.map(|f| f.1)) as i32,
    }
}

/// A row's failure code; for a failure projected before the column existed
/// (until `projections rebuild documents`), derived from its reason as the
/// aggregate does.
fn row_failure_code(row: &DocumentRow) -> Option<FailureCode> {
    match (&row.failure_code, &row.reason) {
        (Some(code), _) => FailureCode::parse(code),
        (None, Some(reason)) if row.stage == Stage::Failed.as_str() => {
            Some(FailureCode::classify(reason))
        }
        _ => None,
    }
}

/// A row of the `documents` read model.
pub fn document_row(row: &DocumentRow) -> pb::Document {
    pb::Document {
        document_id: row.document_id.to_string(),
        filename: row.filename.clone(),
        topic: row.topic.clone().unwrap_or_default(),
        batch_id: row.batch_id.clone(),
        content_type: row.content_type.clone(),
        size_bytes: row.size_bytes.max(0) as u64,
        sha256: row.sha256.clone(),
        stage: stage(Stage::parse(&row.stage)) as i32,
        run: row.run.max(0) as u32,
        reason: row.reason.clone().unwrap_or_default(),
        uploaded_at: Some(timestamp(row.uploaded_at)),
        updated_at: Some(timestamp(row.updated_at)),
        sequence: row.last_sequence.max(0) as u64,
        external_id: row.external_id.clone().unwrap_or_default(),
        pages_total: row.pages_total.unwrap_or(0).max(0) as u32,
        pages_failed: row.pages_failed.max(0) as u32,
        failed_stage: stage(row.failed_stage.as_deref().and_then(Stage::parse)) as i32,
        failure_code: failure_code(row_failure_code(row)) as i32,
    }
}

pub fn progress(document_id: &str, p: &Progress) -> pb::ProgressUpdate {
    pb::ProgressUpdate {
        document_id: document_id.to_owned(),
        stage: stage(p.stage) as i32,
        fraction: p.fraction,
        message: p.message.clone(),
        run: p.run,
        pages_done: p.pages_done,
        pages_total: p.pages_total,
        chunks_embedded: p.chunks_embedded,
        chunks_total: p.chunks_total,
        sequence: p.sequence,
        event_type: p.event_type.to_owned(),
        terminal: p.is_terminal(),
        summary: None,
        batch_id: String::new(),
        filename: String::new(),
        pages_failed: p.pages_failed,
        failed_stage: stage(p.failure.map(|f| f.0)) as i32,
        failure_code: failure_code(p.failure.map(|f| f.1)) as i32,
    }
}

/// One update of a document, batch or all-documents watch; `scoped` adds
/// the summary of the whole set (batch and all-documents scopes).
pub fn set_update(u: &SetUpdate<'_>, scoped: bool) -> pb::ProgressUpdate {
    let s = &u.summary;
    pb::ProgressUpdate {
        batch_id: u.member.batch_id.clone(),
        filename: u.member.filename.clone(),
        summary: scoped.then(|| pb::ScopeSummary {
            total: s.total,
            done: s.done,
            failed: s.failed,
            cancelled: s.cancelled,
            finished: s.finished(),
            // A mean of shares: 1e-6 is plenty, and reads as people expect.
            fraction: (s.fraction * 1e6).round() / 1e6,
        }),
        ..progress(&u.document.to_string(), &u.member.progress)
    }
}
