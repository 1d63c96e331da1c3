//! One trace from upload to indexed, across processes: the W3C trace
//! context (`traceparent`) every event carries is continued by the span
//! that handles it, and the events that span causes carry the span's own
//! context on.
//!
//! - *Continuing.* [`continue_trace`] makes a span the child of the
//!   `traceparent` a message (or a gRPC request) came with: the consumer
//!   loop does it for every delivery ([`crate::consumer`]), the API for
//!   every request, the projector for the `MarkIndexed` it sends.
//! - *Carrying on.* [`crate::envelope::Envelope::caused_metadata`] puts
//!   the current span's context on what the handler appends, when that
//!   span belongs to the event's trace ([`child_traceparent`]).
//! - *Off by default.* Without an OpenTelemetry layer in the process (no
//!   `mnemo serve --otlp-endpoint`), spans have no context: the events
//!   carry the incoming `traceparent` unchanged, as before traces were
//!   exported, and nothing here allocates more than a string compare.
//!
//! This module owns the propagation only; the exporter (OTLP, sampling,
//! the resource) is the binary's (`mnemo::telemetry`).

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::valid_traceparent;

/// The span context a `traceparent` header names (remote), if valid.
pub fn parse(traceparent: &str) -> Option<SpanContext> {
    if !valid_traceparent(traceparent) {
        return None;
    }
    let mut parts = traceparent.split('-');
    let version = parts.next()?;
    if version != "00" {
        return None;
    }
    let trace_id = TraceId::from_hex(parts.next()?).ok()?;
    let span_id = SpanId::from_hex(parts.next()?).ok()?;
    let flags = u8::from_str_radix(parts.next()?, 16).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// Makes `span` (not yet entered) the child of `traceparent`. An invalid
/// or missing one leaves the span where it was made (the child of the
/// current span, or a root).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    let Some(parent) = traceparent.and_then(parse) else {
        return;
    };
    let cx = opentelemetry::Context::new().with_remote_span_context(parent);
    // Fails only when no OpenTelemetry layer is installed: then there is
    // nothing to continue.
    let _ = span.set_parent(cx);
}

/// `span`'s own context as a `traceparent`, when an OpenTelemetry layer
/// gives it one.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// What an event caused by `cause` (a `traceparent`) carries: the current
/// span's context when that span is in `cause`'s trace (the handler's
/// span, a child of the delivery's), else `cause` unchanged.
pub fn child_traceparent(cause: &str) -> String {
    match traceparent_of(&tracing::Span::current()) {
        Some(current) if same_trace(&current, cause) => current,
        _ => cause.to_owned(),
    }
}

/// Whether two `traceparent`s name the same trace (hex in either case).
fn same_trace(a: &str, b: &str) -> bool {
    let trace = |t: &str| t.split('-').nth(1).map(str::to_ascii_lowercase);
    trace(a).is_some() && trace(a) == trace(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_parses_to_its_ids_and_flags() {
        let sc = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
        assert!(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
        assert!(parse("garbage").is_none());
    }

    #[test]
    fn without_a_layer_the_cause_is_carried_unchanged() {
        let cause = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = tracing::info_span!("deliver");
        continue_trace(&span, Some(cause));
        let _e = span.enter();
        assert_eq!(child_traceparent(cause), cause);
    }

    #[test]
    fn with_a_layer_what_a_span_causes_carries_the_span_in_the_same_trace() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let cause = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("deliver");
            continue_trace(&span, Some(cause));
            let _in = span.enter();
            let child = child_traceparent(cause);
            assert_ne!(child, cause, "the span's own id, not the cause's");
            assert!(same_trace(&child, cause));
            assert_eq!(traceparent_of(&span).as_deref(), Some(child.as_str()));
            // A span of another trace never stands in for the cause.
            let other = tracing::info_span!(parent: None, "unrelated");
            let _other = other.enter();
            assert_eq!(child_traceparent(cause), cause);
        });
    }

    #[test]
    fn traces_are_compared_by_their_trace_id() {
        let a = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let b = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
        let c = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(same_trace(a, b));
        assert!(!same_trace(a, c));
        assert!(!same_trace("x", "x"));
        assert!(same_trace(a, &a.to_ascii_uppercase()));
    }
}
