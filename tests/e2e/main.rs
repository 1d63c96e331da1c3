//! End-to-end tests: real NATS, real PostgreSQL, real PDFs.
//! Each test gets its own namespace from `mnemo_tests::TestEnv`.

mod api;
mod backfill;
mod cli;
mod cluster;
mod consumer;
mod erase;
mod event_store;
mod examples;
mod isolation;
mod learning;
mod nats_access;
mod owners;
mod pipeline;
mod postgres_restart;
mod postgres_role;
mod progress;
mod progress_scopes;
mod projector;
mod qa;
mod quota;
mod replicas;
mod search;
mod stats;
mod web;
