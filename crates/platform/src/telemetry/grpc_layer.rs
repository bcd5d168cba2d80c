//! A server span for every gRPC call, continuing the caller's trace: the
//! `traceparent` the client sent (in the HTTP/2 headers) becomes the parent, so
//! a call from the CLI, from grpcurl with a traceparent, or from another service
//! joins the caller's trace. Health and reflection calls are not traced (probes
//! would drown the traces).

use std::task::{Context, Poll};

use opentelemetry::global;
use tonic::codegen::{BoxFuture, Service, http};
use tower_layer::Layer;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::propagation::HeaderExtractor;

/// Paths that get no span.
const UNTRACED_PREFIXES: [&str; 2] = ["/grpc.health.", "/grpc.reflection."];

/// Wraps a server's routes with a span per call.
#[derive(Debug, Clone, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TracedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TracedService { inner }
    }
}

/// The routes, traced.
#[derive(Debug, Clone)]
pub struct TracedService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for TracedService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path().to_owned();
        if UNTRACED_PREFIXES
            .iter()
            .any(|prefix| path.starts_with(prefix))
        {
            return Box::pin(inner.call(request));
        }
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((&path, ""));
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let parent = global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        // A caller without a traceparent starts a new trace here.
        let _ = span.set_parent(parent);
        let recorded = span.clone();
        let (service, method) = (service.to_owned(), method.to_owned());
        let started = std::time::Instant::now();
        Box::pin(
            async move {
                let response = inner.call(request).await?;
                // Trailers-only answers (every error tonic returns) carry the status
                // in the headers; an answer without it is a success whose status
                // follows in the trailers.
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|code| code.to_str().ok())
                    .unwrap_or("0");
                crate::metrics::rpc_served(
                    &service,
                    &method,
                    code,
                    started.elapsed().as_secs_f64(),
                );
                // A call that fails before its first message carries its status
                // in the response headers ("trailers-only"); streamed statuses
                // come later in the trailers and are recorded by the handler.
                if let Some(code) = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|code| code.to_str().ok())
                {
                    recorded.record("rpc.grpc.status_code", code);
                    if code != "0" {
                        recorded.record("otel.status_code", "ERROR");
                    }
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
