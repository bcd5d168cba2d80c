//! W3C trace context across process boundaries, by one pair of types per
//! carrier: gRPC metadata (client side) and HTTP/2 headers (server side) here;
//! NATS headers and the envelope's own `TraceContext` in
//! `microcosm_messaging::trace`, re-exported.

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use microcosm_messaging::trace::{
    NatsHeaderExtractor, NatsHeaderInjector, context_of, current_trace_context,
};

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
