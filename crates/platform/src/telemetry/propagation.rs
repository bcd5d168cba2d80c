//! W3C trace context across process boundaries, by one pair of types per
//! carrier: gRPC metadata (client side), HTTP/2 headers (server side), NATS
//! headers, and the envelope's own `TraceContext` (which the outbox row keeps,
//! so a message published later still continues the trace of the transaction
//! that wrote it).

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, global};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use microcosm_proto::messaging::TraceContext;

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

/// The current trace's id (32 hex digits), if the current span is traced.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Writes the current context into outgoing gRPC metadata.
pub struct MetadataInjector<'a>(pub &'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(&value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Reads a context from incoming HTTP/2 headers (a gRPC request as the server
/// layer sees it).
pub struct HeaderExtractor<'a>(pub &'a tonic::codegen::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
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

/// A tonic interceptor that sends the current trace context with every call.
///
/// # Errors
/// Never; the signature is tonic's.
pub fn inject_trace_context(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
    });
    Ok(request)
}
