//! Logging and tracing, set up in one place.
//!
//! - Logs are JSON when stderr is not a terminal (for collectors and `jq`) and
//!   human-readable when it is; `LOG_FORMAT` overrides the guess. Every line
//!   written inside a traced span carries its `trace_id` and `span_id`, so a log
//!   line leads to its trace and back.
//! - Spans go to an OpenTelemetry tracer provider. With
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` set they are exported over OTLP/gRPC in
//!   batches; without it export is off, but trace ids still exist and still
//!   travel (logs and stored orders keep them). The SDK honours the standard
//!   `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_RESOURCE_ATTRIBUTES` variables.
//! - The exporter's own crates (tonic, h2, hyper, tower) are kept out of the
//!   traces, so the exporter does not trace itself.
//!
//! [`propagation`] carries the W3C trace context across gRPC and NATS.

pub mod grpc_layer;
mod log_format;
pub mod propagation;

use std::io::IsTerminal;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use log_format::WithTraceIds;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Compact, human-readable lines for a terminal.
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            other => Err(format!("unknown log format {other:?}")),
        }
    }
}

/// Telemetry settings, read from `LOG_FORMAT`, `RUST_LOG` and the standard `OTEL_*`
/// variables.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `OTEL_SERVICE_NAME`: the name in logs and traces (defaults to the service's name).
    pub service_name: String,
    /// `LOG_FORMAT`: `json` or `pretty`; unset means pretty on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// `RUST_LOG`: a `tracing` filter (default `info`).
    pub log_filter: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: where spans go; unset means export is off.
    pub otlp_endpoint: Option<String>,
}

/// Keeps telemetry alive; [`TelemetryGuard::shutdown`] flushes the spans still
/// buffered. Call it on the way out of `main`.
#[derive(Debug)]
#[must_use = "spans are flushed by TelemetryGuard::shutdown"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
    meters: SdkMeterProvider,
}

impl TelemetryGuard {
    /// Exports what is buffered and stops the exporters, waiting at most `bound`:
    /// `false` if that was not enough (a collector that does not answer must not
    /// hold a process that was asked to stop). The SDK's shutdown blocks, so it
    /// runs on a thread of its own, which is left behind if it overruns.
    pub async fn shutdown(self, bound: Duration) -> bool {
        let (provider, meters) = (self.provider, self.meters);
        let (done, flushed) = tokio::sync::oneshot::channel();
        let flushing = std::thread::Builder::new()
            .name("telemetry-flush".into())
            .spawn(move || {
                let _ = done.send((provider.shutdown_with_timeout(bound), meters.shutdown()));
            });
        if flushing.is_err() {
            return false;
        }
        match tokio::time::timeout(bound, flushed).await {
            Ok(Ok((spans, metrics))) => {
                if let Err(error) = spans {
                    tracing::warn!(%error, "could not flush the last spans");
                }
                if let Err(error) = metrics {
                    tracing::warn!(%error, "could not flush the last metrics");
                }
                true
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }
}

/// Targets kept out of the exported traces: the exporter's own transport.
const NOT_TRACED: [&str; 5] = ["h2", "hyper", "hyper_util", "tonic", "tower"];

/// Installs the global `tracing` subscriber (logs + OpenTelemetry) and the W3C
/// propagator. Call once, at the start of `main`, inside the tokio runtime (the
/// OTLP exporter needs it).
///
/// A filter that does not parse falls back to `info`, and an exporter that
/// cannot be built leaves export off (with a warning): telemetry must never be
/// the reason a service is down.
pub fn init_telemetry(config: &TelemetryConfig) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder().with_service_name(config.service_name.clone());
    // Two replicas of a service must be two series in Prometheus: each process
    // is an instance of its own unless OTEL_RESOURCE_ATTRIBUTES names one.
    let named_instance = std::env::var("OTEL_RESOURCE_ATTRIBUTES")
        .is_ok_and(|attributes| attributes.contains("service.instance.id="));
    let resource = if named_instance {
        resource.build()
    } else {
        resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.instance.id",
                uuid::Uuid::new_v4().to_string(),
            ))
            .build()
    };
    let mut provider = SdkTracerProvider::builder().with_resource(resource.clone());
    let mut export_error = None;
    if let Some(endpoint) = &config.otlp_endpoint {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
        {
            Ok(exporter) => provider = provider.with_batch_exporter(exporter),
            Err(error) => export_error = Some(error),
        }
    }
    let provider = provider.build();
    let tracer = provider.tracer("microcosm");
    // Metrics go to the same OTLP endpoint, every OTEL_METRIC_EXPORT_INTERVAL ms
    // (the SDK reads it; default 60 s). Without an endpoint the instruments record
    // into a provider with no reader: nothing is kept or sent.
    let mut meters = SdkMeterProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        match opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
        {
            Ok(exporter) => meters = meters.with_reader(PeriodicReader::builder(exporter).build()),
            Err(error) => export_error = Some(error),
        }
    }
    let meters = meters.build();
    opentelemetry::global::set_meter_provider(meters.clone());

    let (filter, filter_error) = match EnvFilter::try_new(&config.log_filter) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    let format = config.log_format.unwrap_or_else(|| {
        if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    });
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .map_event_format(WithTraceIds::json)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .map_event_format(WithTraceIds::text)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(NOT_TRACED.iter().fold(
            Targets::new().with_default(tracing::Level::TRACE),
            |targets, target| {
                targets.with_target(*target, tracing::level_filters::LevelFilter::OFF)
            },
        ));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(traces)
        .with(logs)
        .try_init();
    if installed.is_err() {
        tracing::debug!("a global subscriber was already installed; keeping it");
    }
    if let Some(error) = filter_error {
        tracing::warn!(%error, filter = %config.log_filter, "RUST_LOG does not parse; logging at info");
    }
    if let Some(error) = export_error {
        tracing::warn!(%error, "could not build the OTLP exporter; traces are not exported");
    }
    tracing::info!(
        service = %config.service_name,
        otlp_endpoint = config.otlp_endpoint.as_deref().unwrap_or("off"),
        "telemetry initialised"
    );
    TelemetryGuard { provider, meters }
}
