//! The trace hop of a message, in one place: the producer span of a publish,
//! the consumer span of a delivery, and how the trace context travels.
//!
//! The carrier is the NATS message's W3C headers (`traceparent`, `tracestate`),
//! written at publish from the producer span. The envelope keeps its own copy
//! (`trace_context`, the transaction that stored the message): the producer span
//! is its child however late the message is published (a sweep after a crash),
//! and a message that arrives without headers (published by hand) is still
//! joined to its order's trace.

use std::collections::HashMap;

use microcosm_proto::messaging::{Envelope, TraceContext};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, global};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The current span's context as the envelope carries it.
pub fn current_trace_context() -> TraceContext {
    let mut fields = HashMap::new();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&tracing::Span::current().context(), &mut fields);
    });
    TraceContext {
        traceparent: fields.remove(TRACEPARENT).unwrap_or_default(),
        tracestate: fields.remove(TRACESTATE).unwrap_or_default(),
    }
}

/// The context an envelope carries (empty when it carries none).
pub fn context_of(trace: Option<&TraceContext>) -> Context {
    let mut fields = HashMap::new();
    if let Some(trace) = trace {
        fields.insert(TRACEPARENT.to_owned(), trace.traceparent.clone());
        fields.insert(TRACESTATE.to_owned(), trace.tracestate.clone());
    }
    global::get_text_map_propagator(|propagator| propagator.extract(&fields))
}

/// Writes a context into NATS message headers.
pub struct NatsHeaderInjector<'a>(pub &'a mut async_nats::HeaderMap);

impl Injector for NatsHeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Reads a context from NATS message headers.
pub struct NatsHeaderExtractor<'a>(pub &'a async_nats::HeaderMap);

impl Extractor for NatsHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(key, _)| key.as_ref()).collect()
    }
}

/// The producer span of one publish, child of the transaction that stored the
/// message (the envelope's trace context), however long ago that was.
pub fn publish_span(subject: &str, message_id: Uuid, envelope: &Envelope) -> tracing::Span {
    let span = tracing::info_span!(
        "outbox.publish",
        otel.name = %format!("publish {subject}"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "publish",
        messaging.destination.name = %subject,
        messaging.message.id = %message_id,
        order_id = envelope.correlation_id.as_str(),
    );
    if !span.is_disabled() {
        let _ = span.set_parent(context_of(envelope.trace_context.as_ref()));
    }
    span
}

/// Writes `span`'s context into `headers`, for the consumer to continue from.
pub fn inject(span: &tracing::Span, headers: &mut async_nats::HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut NatsHeaderInjector(headers));
    });
}

/// What the consumer span of a delivery is about.
pub struct Received<'a> {
    /// The subject it arrived on.
    pub subject: &'a str,
    /// The durable consumer handling it.
    pub consumer: &'static str,
    /// Which delivery this is (1 for the first).
    pub attempt: i64,
    /// The message's headers, if it had any.
    pub headers: Option<&'a async_nats::HeaderMap>,
    /// The decoded envelope, if it decoded.
    pub envelope: Option<&'a Envelope>,
}

/// The consumer span of one delivery (OpenTelemetry messaging conventions:
/// operation `process`). Its parent is the producer's publish span, read from
/// the message's W3C headers (or, for a message published without them, the
/// trace context inside the envelope), so the whole saga is one trace. A
/// redelivery is a second `process` span in the same trace, with a higher
/// `messaging.nats.delivery_attempt`.
pub fn process_span(received: &Received<'_>) -> tracing::Span {
    let envelope = received.envelope;
    let span = tracing::info_span!(
        "consumer.process",
        otel.name = %format!("process {}", received.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %received.subject,
        messaging.consumer.group.name = received.consumer,
        messaging.message.id = envelope.map(|envelope| envelope.message_id.as_str()).unwrap_or_default(),
        messaging.nats.delivery_attempt = received.attempt,
        order_id = envelope.map(|envelope| envelope.correlation_id.as_str()).unwrap_or_default(),
        otel.status_code = tracing::field::Empty,
        error.message = tracing::field::Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let from_headers = received.headers.map(|headers| {
        global::get_text_map_propagator(|propagator| {
            propagator.extract(&NatsHeaderExtractor(headers))
        })
    });
    let parent = match from_headers {
        Some(context) if context.span().span_context().is_valid() => context,
        _ => context_of(envelope.and_then(|envelope| envelope.trace_context.as_ref())),
    };
    let _ = span.set_parent(parent);
    span
}
