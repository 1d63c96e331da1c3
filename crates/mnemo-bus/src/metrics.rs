//! The consumers' metrics, through the `metrics` facade: nothing is
//! recorded unless the binary installs a recorder (`mnemo serve
//! --metrics-listen`, which exports them for Prometheus at `/metrics`).
//! Each is labelled with the service (`extractor`, `chunker`, ...).
//!
//! | name | kind | what |
//! |---|---|---|
//! | `mnemo_consumer_messages_total` | counter | messages finished, by `result`: `done`, `retried`, `dead_lettered`, `handed_back` |
//! | `mnemo_consumer_handle_seconds` | histogram | a message's handling, from its start to its acknowledgement |
//! | `mnemo_consumer_running` | gauge | 1 while the consumer loop runs |
//! | `mnemo_consumer_pending` | gauge | messages in the stream not yet delivered to the service (its lag) |
//! | `mnemo_consumer_ack_pending` | gauge | messages delivered and not yet acknowledged |
//! | `mnemo_consumer_redelivered` | gauge | messages delivered more than once and not yet acknowledged |
//! | `mnemo_consumer_held` | gauge | messages read ahead and waiting in the fair-share window |
//! | `mnemo_dlq_messages` | gauge | dead letters waiting in the namespace (no `service` label) |
//!
//! Owns: the names and labels. Must not: record anything about an owner
//! (labels are services and results only, so their number stays small).

use std::time::Duration;

use async_nats::jetstream::consumer::Info;

/// A message finished with `result` after `took`.
pub(crate) fn handled(service: &str, result: &'static str, took: Duration) {
    let service = service.to_owned();
    metrics::counter!("mnemo_consumer_messages_total", "service" => service.clone(), "result" => result)
        .increment(1);
    metrics::histogram!("mnemo_consumer_handle_seconds", "service" => service)
        .record(took.as_secs_f64());
}

/// Whether the consumer loop of `service` runs.
pub(crate) fn running(service: &str, yes: bool) {
    metrics::gauge!("mnemo_consumer_running", "service" => service.to_owned()).set(if yes {
        1.0
    } else {
        0.0
    });
}

/// The consumer's position as JetStream reports it.
pub(crate) fn consumer_state(service: &str, info: &Info) {
    let service = service.to_owned();
    metrics::gauge!("mnemo_consumer_pending", "service" => service.clone())
        .set(info.num_pending as f64);
    metrics::gauge!("mnemo_consumer_ack_pending", "service" => service.clone())
        .set(info.num_ack_pending as f64);
    metrics::gauge!("mnemo_consumer_redelivered", "service" => service)
        .set(info.num_redelivered as f64);
}

/// Messages waiting in the fair-share window.
pub(crate) fn held(service: &str, n: usize) {
    metrics::gauge!("mnemo_consumer_held", "service" => service.to_owned()).set(n as f64);
}

/// Dead letters waiting in the namespace's DLQ stream.
pub(crate) fn dead_letters(n: u64) {
    metrics::gauge!("mnemo_dlq_messages").set(n as f64);
}
