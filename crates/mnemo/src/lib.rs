//! `mnemo`: the one user-facing binary, and the library behind it. Servers
//! (`mnemo serve …`) and the client commands (`upload`, `docs list`,
//! `progress`, `search`, `ask`, `token`, `doctor`, `cards`, `topics`,
//! `review`, `study stats`, `replay learner`), the operator commands (`dlq`,
//! `projections`, `backfill`, `model`, `learner erase`, `keys init`), and
//! `fsrs simulate`, which runs the
//! domain's scheduler locally.
//!
//! Owns: command-line parsing, configuration (flags with env fallbacks),
//! logging and trace export setup, signal handling, and presenting results to people
//! (tables, progress bars) or scripts (`--json`).
//! Must not: hold business logic. Servers are the library crates' `run`/`serve`;
//! client commands speak only the public gRPC API. Nor carry the benchmarks:
//! they are the `mnemo-bench` binary, which links this library for the
//! global flags, the gRPC client and the upload and watch helpers; `mnemo bench …` and `mnemo eval …` only run it.
//!
//! # Layout
//! - [`allocator`]: the global allocator (mimalloc) and its tuning.
//! - [`binary`]: logging for `mnemo-bench` (through [`telemetry`]), exit
//!   status, and how `mnemo` and `mnemo-bench` find each other.
//! - [`telemetry`]: logs to stderr and `serve`'s trace export over OTLP
//!   (`--otlp-endpoint`).
//! - [`cli`]: the parser, the global and backend flags, the list of commands.
//! - [`cmd`]: one module per command, each with its `Args`.
//! - [`serve`]: `mnemo serve [all|api|extractor|chunker|embedder|projector]`:
//!   each service's flags flattened from its crate (`<Service>Args`), and
//!   the settings services share (`ModelArgs`).
//! - [`health`]: the operator's port of `serve` (`--metrics-listen`):
//!   `/metrics`, `/healthz`, `/readyz`.
//! - [`client`]: gRPC channel with the bearer token.
//! - [`secret`]: where the JWT secret comes from (flag, env, or a local file).

pub mod allocator;
pub mod binary;
pub mod cli;
pub mod client;
pub mod cmd;
pub mod health;
pub mod secret;
pub mod serve;
pub mod telemetry;
