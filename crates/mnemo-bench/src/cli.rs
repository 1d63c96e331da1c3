//! The command line: the same global flags as `mnemo` ([`Global`]), and one
//! subcommand per benchmark, each with its flags in its own module.

use clap::{Parser, Subcommand};
use mnemo::cli::Global;

use crate::{
    abuse, append, chaos, embed, eval, extract, fairness, load, pipeline, progress, replay, search,
};

#[derive(Parser)]
#[command(
    name = "mnemo-bench",
    version,
    about = "mnemo's benchmarks and evaluations (each prints a table)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Commands/s across many aggregates, and upload-accept latency.
    Append(append::AppendBench),
    /// Event appended → progress update received, with many concurrent
    /// watchers over real gRPC (p50/p95/p99).
    Progress(progress::ProgressBench),
    /// pdf-rs against pdftotext on a folder of PDFs: word F1 and pages/s.
    Extract(extract::ExtractBench),
    /// Rebuilding the read models from sequence 1 on a synthetic event log:
    /// events/s into PostgreSQL.
    Replay(replay::ReplayBench),
    /// Tokens per CPU-second of the embedding model on the texts of a jsonl
    /// corpus (title + text), the way Python's bare onnxruntime is measured
    /// (deploy/model/prepare.sh --bench), and the way the service batches.
    Embed(embed::EmbedBench),
    /// The vector index at scale (exact scan vs HNSW: build, memory, latency,
    /// recall@10), the hybrid search path over PostgreSQL at 100,000 chunks,
    /// and 1,000,000 chunks over 1,000 owners within the API's memory budget.
    Search(search::SearchBench),
    /// A folder through the real services end to end (each its own process),
    /// then the embedder alone on the same chunks; peak RSS per service.
    Pipeline(pipeline::PipelineBench),
    /// Pathological inputs (no breaks, one endless line, one enormous PDF
    /// page, many tiny files) through `serve all`: peak RSS for each.
    Abuse(abuse::AbuseBench),
    /// One owner's small uploads while another owner's big batch is in
    /// flight: time to indexed against an idle server.
    Fairness(fairness::FairnessBench),
    /// Watchers, searches and uploads of many owners at once: a bystander
    /// owner's Get and Search latency, and the server's RSS.
    Load(load::LoadBench),
    /// Every service killed (SIGKILL) and stopped (SIGTERM) mid-run, then a
    /// rolling restart under load: every document indexed with exactly its chunks.
    Chaos(chaos::ChaosBench),
    /// Quality evaluations (print a table).
    Eval(eval::EvalArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every benchmark's flags beside the global ones, without clashes
    /// (clap checks this only when a command is parsed, in debug builds).
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
