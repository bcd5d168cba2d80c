//! An OTLP trace collector in the test process: the services export their
//! spans to it (`OTEL_EXPORTER_OTLP_ENDPOINT`), and tests read whole traces
//! back to check their shape. It is opentelemetry-proto's real gRPC service,
//! so the services' exporters run exactly as they do against Jaeger.
//!
//! `microcosm up` runs the same collector and appends every span as one JSON
//! line to a file, which `microcosm trace` reads when no Jaeger is around; it
//! also keeps the latest metric points in a JSON file that `microcosm top` reads.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use tokio::sync::oneshot;

/// One span as the collector received it, with ids as lowercase hex.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedSpan {
    /// The trace (32 hex digits).
    pub trace_id: String,
    /// The span (16 hex digits).
    pub span_id: String,
    /// The parent span; empty for a root.
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// `service.name` of the process that recorded it.
    pub service: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes, rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// Whether its status is ERROR.
    pub is_error: bool,
    /// Trace ids of its links.
    pub linked_trace_ids: Vec<String>,
}

impl CollectedSpan {
    /// An attribute's value, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The span as one JSON object (the line format of the collector's file).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "service": self.service,
            "start_unix_nanos": self.start_unix_nanos,
            "end_unix_nanos": self.end_unix_nanos,
            "attributes": self.attributes,
            "is_error": self.is_error,
            "linked_trace_ids": self.linked_trace_ids,
        })
    }
}

/// One metric data point as last received: the services export cumulative
/// values, so the latest point per attribute set is the total so far.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectedPoint {
    /// `service.name` of the process that recorded it.
    pub service: String,
    /// The metric's name, e.g. `microcosm.saga.completed`.
    pub metric: String,
    /// The point's attributes, rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// A sum's or gauge's value; a histogram's count.
    pub value: f64,
    /// When the exporting process took the value, in nanoseconds since the
    /// Unix epoch (0 if unknown).
    pub time_unix_nanos: u64,
    /// A histogram's sum (0 for other kinds).
    pub sum: f64,
    /// A histogram's buckets: (upper bound, count in the bucket), the last one
    /// unbounded (`f64::INFINITY`). Empty for other kinds.
    pub buckets: Vec<(f64, u64)>,
}

impl CollectedPoint {
    /// The point as one JSON object (the format of the collector's metrics file).
    pub fn to_json(&self) -> serde_json::Value {
        let buckets: Vec<serde_json::Value> = self
            .buckets
            .iter()
            .map(|(bound, count)| {
                // JSON has no infinity: the unbounded bucket's bound is null.
                let bound = bound.is_finite().then_some(*bound);
                serde_json::json!([bound, count])
            })
            .collect();
        serde_json::json!({
            "service": self.service,
            "metric": self.metric,
            "attributes": self.attributes,
            "value": self.value,
            "time_unix_nanos": self.time_unix_nanos,
            "sum": self.sum,
            "buckets": buckets,
        })
    }

    /// A point from [`CollectedPoint::to_json`]'s format; `None` if it is not one.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        let text = |key: &str| value.get(key)?.as_str().map(str::to_owned);
        Some(Self {
            service: text("service")?,
            metric: text("metric")?,
            attributes: value
                .get("attributes")?
                .as_object()?
                .iter()
                .map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect::<Option<_>>()?,
            value: value.get("value")?.as_f64()?,
            time_unix_nanos: value
                .get("time_unix_nanos")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            sum: value
                .get("sum")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(0.0),
            buckets: value
                .get("buckets")
                .and_then(serde_json::Value::as_array)
                .map(|buckets| {
                    buckets
                        .iter()
                        .filter_map(|bucket| {
                            let bound = bucket.get(0)?.as_f64().unwrap_or(f64::INFINITY);
                            Some((bound, bucket.get(1)?.as_u64()?))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// An attribute's value, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One data point of an export, before it is keyed and stored.
#[derive(Default)]
struct Reading {
    attributes: Vec<KeyValue>,
    value: f64,
    time_unix_nanos: u64,
    sum: f64,
    buckets: Vec<(f64, u64)>,
}

/// A point's identity: service, metric, attributes.
type PointKey = (String, String, Vec<(String, String)>);

#[derive(Debug, Default)]
struct Received {
    spans: Mutex<Vec<CollectedSpan>>,
    /// Latest point per (service, metric, attributes).
    points: Mutex<BTreeMap<PointKey, CollectedPoint>>,
    files: CollectorFiles,
}

/// Where a collector also writes what it receives (for the CLI).
#[derive(Debug, Clone, Default)]
pub struct CollectorFiles {
    /// Spans are appended here, one JSON object per line (`microcosm trace`).
    pub traces: Option<PathBuf>,
    /// The latest point of every metric is kept here, replaced after every
    /// export: `{"updated_unix_ms": .., "points": [..]}` (`microcosm top`).
    pub metrics: Option<PathBuf>,
}

/// The gRPC face of [`Received`].
#[derive(Debug, Clone)]
struct Receiver(Arc<Received>);

fn service_name(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .and_then(|resource| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
        })
        .map(render_value)
        .unwrap_or_default()
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
        let mut points = self
            .0
            .points
            .lock()
            .map_err(|_| tonic::Status::internal("collector poisoned"))?;
        for resource_metrics in request.into_inner().resource_metrics {
            let service = service_name(resource_metrics.resource.as_ref());
            for scope in resource_metrics.scope_metrics {
                for metric in scope.metrics {
                    let values: Vec<Reading> = match metric.data {
                        Some(Data::Sum(sum)) => sum
                            .data_points
                            .into_iter()
                            .map(|point| Reading {
                                value: number(point.value),
                                time_unix_nanos: point.time_unix_nano,
                                attributes: point.attributes,
                                ..Reading::default()
                            })
                            .collect(),
                        Some(Data::Gauge(gauge)) => gauge
                            .data_points
                            .into_iter()
                            .map(|point| Reading {
                                value: number(point.value),
                                time_unix_nanos: point.time_unix_nano,
                                attributes: point.attributes,
                                ..Reading::default()
                            })
                            .collect(),
                        Some(Data::Histogram(histogram)) => histogram
                            .data_points
                            .into_iter()
                            .map(|point| {
                                let bounds = point
                                    .explicit_bounds
                                    .iter()
                                    .copied()
                                    .chain(std::iter::once(f64::INFINITY));
                                Reading {
                                    value: point.count as f64,
                                    time_unix_nanos: point.time_unix_nano,
                                    sum: point.sum.unwrap_or(0.0),
                                    buckets: bounds
                                        .zip(point.bucket_counts.iter().copied())
                                        .collect(),
                                    attributes: point.attributes,
                                }
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    for reading in values {
                        let attributes: BTreeMap<String, String> = reading
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), render_value(kv)))
                            .collect();
                        let key = (
                            service.clone(),
                            metric.name.clone(),
                            attributes.clone().into_iter().collect(),
                        );
                        points.insert(
                            key,
                            CollectedPoint {
                                service: service.clone(),
                                metric: metric.name.clone(),
                                attributes,
                                value: reading.value,
                                time_unix_nanos: reading.time_unix_nanos,
                                sum: reading.sum,
                                buckets: reading.buckets,
                            },
                        );
                    }
                }
            }
        }
        if let Some(path) = &self.0.files.metrics {
            write_metrics_file(path, points.values());
        }
        fn number(value: Option<Number>) -> f64 {
            match value {
                Some(Number::AsDouble(value)) => value,
                Some(Number::AsInt(value)) => value as f64,
                None => 0.0,
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut collected = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| {
                    resource
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "service.name")
                })
                .map(render_value)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    collected.push(CollectedSpan {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                        service: service.clone(),
                        start_unix_nanos: span.start_time_unix_nano,
                        end_unix_nanos: span.end_time_unix_nano,
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), render_value(kv)))
                            .collect(),
                        is_error: span.status.is_some_and(|status| status.code == 2),
                        linked_trace_ids: span
                            .links
                            .iter()
                            .map(|link| hex(&link.trace_id))
                            .collect(),
                    });
                }
            }
        }
        if let Some(path) = &self.0.files.traces {
            let lines: String = collected
                .iter()
                .map(|span| format!("{}\n", span.to_json()))
                .collect();
            let appended = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(lines.as_bytes()));
            if let Err(error) = appended {
                tracing::warn!(%error, path = %path.display(), "could not append spans");
            }
        }
        self.0
            .spans
            .lock()
            .map_err(|_| tonic::Status::internal("collector poisoned"))?
            .extend(collected);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running collector; stops when dropped.
#[derive(Debug)]
pub struct OtlpCollector {
    addr: SocketAddr,
    received: Arc<Received>,
    _stop: oneshot::Sender<()>,
}

impl OtlpCollector {
    /// Starts a collector on a free loopback port, keeping spans in memory.
    ///
    /// # Errors
    /// If no port can be bound.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            CollectorFiles::default(),
        )
        .await
    }

    /// Starts a collector on `addr`, also writing what it receives to `files`.
    ///
    /// # Errors
    /// If the address cannot be bound.
    pub async fn start_on(addr: SocketAddr, files: CollectorFiles) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not bind the OTLP collector to {addr}"))?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Received {
            files,
            ..Received::default()
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let service = TraceServiceServer::new(Receiver(Arc::clone(&received)));
        let metrics = MetricsServiceServer::new(Receiver(Arc::clone(&received)));
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .add_service(metrics)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "OTLP collector stopped");
            }
        });
        Ok(Self {
            addr,
            received,
            _stop: stop,
        })
    }

    /// The endpoint to export to (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.received
            .spans
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }

    /// The latest data point of every metric and attribute set received so far.
    pub fn metric_points(&self, metric: &str) -> Vec<CollectedPoint> {
        self.received
            .points
            .lock()
            .map(|points| {
                points
                    .values()
                    .filter(|point| point.metric == metric)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<CollectedSpan> {
        self.spans()
            .into_iter()
            .filter(|span| span.trace_id == trace_id)
            .collect()
    }

    /// Waits until the spans of `trace_id` satisfy `complete`, and returns them.
    ///
    /// # Errors
    /// If `timeout` passes first; the error lists what arrived.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        complete: impl Fn(&[CollectedSpan]) -> bool,
    ) -> anyhow::Result<Vec<CollectedSpan>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.trace(trace_id);
            if complete(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<String> = spans
                    .iter()
                    .map(|span| format!("{}:{}", span.service, span.name))
                    .collect();
                anyhow::bail!("trace {trace_id} incomplete after {timeout:?}; got {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Replaces the metrics file with the latest points (written aside, then
/// renamed, so a reader never sees half a file).
fn write_metrics_file<'a>(path: &Path, points: impl Iterator<Item = &'a CollectedPoint>) {
    let updated_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    let document = serde_json::json!({
        "updated_unix_ms": updated_unix_ms,
        "points": points.map(CollectedPoint::to_json).collect::<Vec<_>>(),
    });
    let aside = path.with_extension("json.tmp");
    let written =
        std::fs::write(&aside, document.to_string()).and_then(|()| std::fs::rename(&aside, path));
    if let Err(error) = written {
        tracing::warn!(%error, path = %path.display(), "could not write the metrics file");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn render_value(kv: &KeyValue) -> String {
    match kv
        .value
        .as_ref()
        .and_then(|value: &AnyValue| value.value.as_ref())
    {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
