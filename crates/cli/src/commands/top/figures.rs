//! The key figures `microcosm top` shows, computed from two snapshots of the
//! local collector's metrics file: totals from the newer one, rates and latency
//! percentiles from what changed between them (as Prometheus' `rate` and
//! `histogram_quantile` would over the same window).

use std::collections::BTreeMap;

use microcosm_testkit::CollectedPoint;

/// One reading of the metrics file.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// When the collector last wrote it, in milliseconds since the Unix epoch.
    pub(crate) updated_unix_ms: u64,
    /// The latest point of every metric and attribute set.
    pub(crate) points: Vec<CollectedPoint>,
}

impl Snapshot {
    /// Reads the file's JSON document.
    pub(crate) fn from_json(document: &serde_json::Value) -> Option<Self> {
        Some(Self {
            updated_unix_ms: document.get("updated_unix_ms")?.as_u64()?,
            points: document
                .get("points")?
                .as_array()?
                .iter()
                .filter_map(CollectedPoint::from_json)
                .collect(),
        })
    }

    fn find<'a>(&'a self, metric: &'a str) -> impl Iterator<Item = &'a CollectedPoint> + 'a {
        self.points
            .iter()
            .filter(move |point| point.metric == metric)
    }

    /// The same point (service, metric, attributes) in this snapshot.
    fn same(&self, point: &CollectedPoint) -> Option<&CollectedPoint> {
        self.points.iter().find(|other| {
            other.metric == point.metric
                && other.service == point.service
                && other.attributes == point.attributes
        })
    }
}

/// What one service is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServiceFigures {
    /// gRPC calls served per second.
    pub(crate) calls_per_second: f64,
    /// Of those, calls that ended with a status other than OK, per second.
    pub(crate) errors_per_second: f64,
    /// Median latency of the calls served in the window (ms); `None` without calls.
    pub(crate) p50_ms: Option<f64>,
    /// 99th percentile latency (ms).
    pub(crate) p99_ms: Option<f64>,
    /// Resident memory (bytes).
    pub(crate) memory_bytes: Option<f64>,
    /// Database connections in use and idle.
    pub(crate) db_connections_used: f64,
    /// Idle database connections.
    pub(crate) db_connections_idle: f64,
    /// Outbox rows waiting to be published.
    pub(crate) outbox_pending: f64,
    /// Age of the oldest of them (s).
    pub(crate) outbox_lag_seconds: f64,
}

/// What one durable consumer is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ConsumerFigures {
    /// The service it belongs to.
    pub(crate) service: String,
    /// Messages not yet acknowledged.
    pub(crate) lag: f64,
    /// Redeliveries so far.
    pub(crate) redeliveries: f64,
    /// Messages dead-lettered so far.
    pub(crate) dead_letters: f64,
}

/// Everything on one screen of `microcosm top`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Figures {
    /// Seconds between the two snapshots the rates come from (0: one snapshot).
    pub(crate) window_seconds: f64,
    /// Orders placed per second (PlaceOrder calls that succeeded).
    pub(crate) orders_per_second: f64,
    /// Sagas ended per second.
    pub(crate) sagas_completed_per_second: f64,
    /// Orders confirmed so far (since the order service started).
    pub(crate) confirmed: f64,
    /// Orders cancelled so far, by reason.
    pub(crate) cancelled: BTreeMap<String, f64>,
    /// Sagas not yet ended, by state.
    pub(crate) in_flight: BTreeMap<String, f64>,
    /// Per service.
    pub(crate) services: BTreeMap<String, ServiceFigures>,
    /// Per durable consumer.
    pub(crate) consumers: BTreeMap<String, ConsumerFigures>,
    /// The order service's calls to inventory and billing: per second and p99 (ms).
    pub(crate) client_calls_per_second: f64,
    /// 99th percentile of those calls (ms).
    pub(crate) client_p99_ms: Option<f64>,
}

impl Figures {
    /// The figures of `now`, with rates over the time since `before` (if any).
    pub(crate) fn compute(before: Option<&Snapshot>, now: &Snapshot) -> Self {
        let window_seconds = before.map_or(0.0, |before| {
            now.updated_unix_ms.saturating_sub(before.updated_unix_ms) as f64 / 1000.0
        });
        // A counter's growth per second in the window, over the time between the
        // two values' own timestamps (each service exports on its own clock; the
        // file's time is the last export of any of them). A counter that went
        // down was reset by a restart, so all of it is new; so is a series that
        // appeared in the window.
        let rate = |point: &CollectedPoint| -> f64 {
            let Some(before) = before else { return 0.0 };
            let (delta, seconds) = match before.same(point) {
                Some(old) => {
                    let delta = if old.value <= point.value {
                        point.value - old.value
                    } else {
                        point.value
                    };
                    let seconds = if old.time_unix_nanos > 0 && point.time_unix_nanos > 0 {
                        point.time_unix_nanos.saturating_sub(old.time_unix_nanos) as f64 / 1e9
                    } else {
                        window_seconds
                    };
                    (delta, seconds)
                }
                None => (point.value, window_seconds),
            };
            if seconds > 0.0 { delta / seconds } else { 0.0 }
        };
        let bucket_delta = |point: &CollectedPoint| -> Vec<(f64, u64)> {
            let old = before.and_then(|before| before.same(point));
            match old {
                Some(old)
                    if old.value <= point.value && old.buckets.len() == point.buckets.len() =>
                {
                    point
                        .buckets
                        .iter()
                        .zip(&old.buckets)
                        .map(|((bound, new), (_, old))| (*bound, new.saturating_sub(*old)))
                        .collect()
                }
                _ if before.is_some() => point.buckets.clone(),
                _ => Vec::new(),
            }
        };

        let mut figures = Self {
            window_seconds,
            ..Self::default()
        };
        let mut latency: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
        for point in now.find("rpc.server.call.duration") {
            let service = figures.services.entry(point.service.clone()).or_default();
            let calls = rate(point);
            service.calls_per_second += calls;
            let ok = point.attribute("rpc.grpc.status_code") == Some("0");
            if !ok {
                service.errors_per_second += calls;
            }
            if ok && point.attribute("rpc.method") == Some("PlaceOrder") {
                figures.orders_per_second += calls;
            }
            merge(
                latency.entry(point.service.clone()).or_default(),
                &bucket_delta(point),
            );
        }
        for (name, buckets) in &latency {
            if let Some(service) = figures.services.get_mut(name) {
                service.p50_ms = quantile(buckets, 0.5).map(|seconds| seconds * 1000.0);
                service.p99_ms = quantile(buckets, 0.99).map(|seconds| seconds * 1000.0);
            }
        }
        let mut client_buckets = Vec::new();
        for point in now.find("rpc.client.call.duration") {
            figures.client_calls_per_second += rate(point);
            merge(&mut client_buckets, &bucket_delta(point));
        }
        figures.client_p99_ms = quantile(&client_buckets, 0.99).map(|seconds| seconds * 1000.0);

        for point in now.find("microcosm.saga.completed") {
            figures.sagas_completed_per_second += rate(point);
            if point.attribute("microcosm.saga.outcome") == Some("confirmed") {
                figures.confirmed += point.value;
            } else {
                let reason = point.attribute("microcosm.saga.reason").unwrap_or("");
                *figures.cancelled.entry(reason.to_owned()).or_default() += point.value;
            }
        }
        for point in now.find("microcosm.saga.in_flight") {
            let state = point.attribute("microcosm.saga.state").unwrap_or("");
            *figures.in_flight.entry(state.to_owned()).or_default() += point.value;
        }
        for point in &now.points {
            let service = || point.service.clone();
            match point.metric.as_str() {
                "process.memory.usage" => {
                    figures.services.entry(service()).or_default().memory_bytes = Some(point.value);
                }
                "db.client.connection.count" => {
                    let figures = figures.services.entry(service()).or_default();
                    if point.attribute("db.client.connection.state") == Some("idle") {
                        figures.db_connections_idle = point.value;
                    } else {
                        figures.db_connections_used = point.value;
                    }
                }
                "microcosm.outbox.pending" => {
                    figures
                        .services
                        .entry(service())
                        .or_default()
                        .outbox_pending = point.value;
                }
                "microcosm.outbox.lag" => {
                    figures
                        .services
                        .entry(service())
                        .or_default()
                        .outbox_lag_seconds = point.value;
                }
                "microcosm.messaging.consumer.lag"
                | "microcosm.messaging.redeliveries"
                | "microcosm.messaging.dead_letters" => {
                    let Some(consumer) = point.attribute("messaging.consumer.group.name") else {
                        continue;
                    };
                    let figures = figures.consumers.entry(consumer.to_owned()).or_default();
                    figures.service = service();
                    match point.metric.as_str() {
                        "microcosm.messaging.consumer.lag" => figures.lag = point.value,
                        "microcosm.messaging.redeliveries" => figures.redeliveries = point.value,
                        _ => figures.dead_letters = point.value,
                    }
                }
                _ => {}
            }
        }
        figures
    }

    /// The figures as one JSON document (`microcosm top --json`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let services: serde_json::Map<String, serde_json::Value> = self
            .services
            .iter()
            .map(|(name, service)| {
                let value = serde_json::json!({
                    "calls_per_second": service.calls_per_second,
                    "errors_per_second": service.errors_per_second,
                    "p50_ms": service.p50_ms,
                    "p99_ms": service.p99_ms,
                    "memory_bytes": service.memory_bytes,
                    "db_connections_used": service.db_connections_used,
                    "db_connections_idle": service.db_connections_idle,
                    "outbox_pending": service.outbox_pending,
                    "outbox_lag_seconds": service.outbox_lag_seconds,
                });
                (name.clone(), value)
            })
            .collect();
        let consumers: serde_json::Map<String, serde_json::Value> = self
            .consumers
            .iter()
            .map(|(name, consumer)| {
                let value = serde_json::json!({
                    "service": consumer.service,
                    "lag": consumer.lag,
                    "redeliveries": consumer.redeliveries,
                    "dead_letters": consumer.dead_letters,
                });
                (name.clone(), value)
            })
            .collect();
        serde_json::json!({
            "window_seconds": self.window_seconds,
            "orders_per_second": self.orders_per_second,
            "sagas_completed_per_second": self.sagas_completed_per_second,
            "confirmed": self.confirmed,
            "cancelled": self.cancelled,
            "completed": self.completed(),
            "in_flight": self.in_flight,
            "services": services,
            "consumers": consumers,
            "client_calls_per_second": self.client_calls_per_second,
            "client_p99_ms": self.client_p99_ms,
        })
    }

    /// Orders that ended, confirmed or cancelled.
    pub(crate) fn completed(&self) -> f64 {
        self.confirmed + self.cancelled.values().sum::<f64>()
    }
}

/// Adds `more` buckets into `into` (same bounds; `into` may be empty).
fn merge(into: &mut Vec<(f64, u64)>, more: &[(f64, u64)]) {
    if into.is_empty() {
        into.extend_from_slice(more);
    } else if into.len() == more.len() {
        for (bucket, (_, count)) in into.iter_mut().zip(more) {
            bucket.1 += count;
        }
    }
}

/// The `q` quantile of a histogram's buckets, interpolating linearly inside the
/// bucket it falls in (as Prometheus' `histogram_quantile`); the unbounded
/// bucket answers with the highest finite bound. `None` if the buckets are empty.
pub(crate) fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().map(|(_, count)| count).sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    let mut lower = 0.0;
    for (bound, count) in buckets {
        if (seen + count) as f64 >= rank && *count > 0 {
            if !bound.is_finite() {
                return Some(lower);
            }
            let inside = (rank - seen as f64) / *count as f64;
            return Some(lower + (bound - lower) * inside);
        }
        seen += count;
        if bound.is_finite() {
            lower = *bound;
        }
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(
        service: &str,
        metric: &str,
        attributes: &[(&str, &str)],
        value: f64,
    ) -> CollectedPoint {
        CollectedPoint {
            service: service.to_owned(),
            metric: metric.to_owned(),
            attributes: attributes
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            value,
            time_unix_nanos: 0,
            sum: 0.0,
            buckets: Vec::new(),
        }
    }

    fn histogram(
        service: &str,
        method: &str,
        code: &str,
        buckets: &[(f64, u64)],
    ) -> CollectedPoint {
        let mut point = point(
            service,
            "rpc.server.call.duration",
            &[("rpc.method", method), ("rpc.grpc.status_code", code)],
            buckets.iter().map(|(_, count)| *count as f64).sum(),
        );
        point.buckets = buckets.to_vec();
        point
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_they_fall_in() {
        let buckets = [(0.01, 50), (0.1, 40), (1.0, 10), (f64::INFINITY, 0)];
        assert_eq!(quantile(&buckets, 0.5), Some(0.01));
        let p90 = quantile(&buckets, 0.9).expect("p90");
        assert!((p90 - 0.1).abs() < 1e-9, "{p90}");
        let p95 = quantile(&buckets, 0.95).expect("p95");
        assert!((p95 - 0.55).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(&[(0.01, 0), (f64::INFINITY, 0)], 0.5), None);
        assert_eq!(quantile(&[(0.01, 0), (f64::INFINITY, 3)], 0.5), Some(0.01));
    }

    #[test]
    fn rates_come_from_the_window_and_totals_from_the_newer_snapshot() {
        let bounds = |fast, slow| vec![(0.01, fast), (1.0, slow), (f64::INFINITY, 0)];
        let before = Snapshot {
            updated_unix_ms: 10_000,
            points: vec![
                histogram("order", "PlaceOrder", "0", &bounds(10, 0)),
                point(
                    "order",
                    "microcosm.saga.completed",
                    &[
                        ("microcosm.saga.outcome", "confirmed"),
                        ("microcosm.saga.reason", ""),
                    ],
                    8.0,
                ),
            ],
        };
        let now = Snapshot {
            updated_unix_ms: 12_000,
            points: vec![
                histogram("order", "PlaceOrder", "0", &bounds(18, 2)),
                histogram("order", "PlaceOrder", "8", &bounds(4, 0)),
                point(
                    "order",
                    "microcosm.saga.completed",
                    &[
                        ("microcosm.saga.outcome", "confirmed"),
                        ("microcosm.saga.reason", ""),
                    ],
                    14.0,
                ),
                point(
                    "order",
                    "microcosm.saga.completed",
                    &[
                        ("microcosm.saga.outcome", "cancelled"),
                        ("microcosm.saga.reason", "insufficient_funds"),
                    ],
                    2.0,
                ),
                point(
                    "order",
                    "microcosm.saga.in_flight",
                    &[("microcosm.saga.state", "charging")],
                    3.0,
                ),
            ],
        };
        let figures = Figures::compute(Some(&before), &now);
        assert_eq!(figures.window_seconds, 2.0);
        // 10 more successful PlaceOrder calls, 4 refused (a series new in the window).
        assert_eq!(figures.orders_per_second, 5.0);
        let order = &figures.services["order"];
        assert_eq!(order.calls_per_second, 7.0);
        assert_eq!(order.errors_per_second, 2.0);
        // Of the 14 calls in the window, 12 took ≤ 10 ms.
        assert!(order.p50_ms.expect("p50") <= 10.0);
        assert!(order.p99_ms.expect("p99") > 10.0);
        assert_eq!(figures.confirmed, 14.0);
        assert_eq!(figures.cancelled["insufficient_funds"], 2.0);
        assert_eq!(figures.completed(), 16.0);
        assert_eq!(figures.sagas_completed_per_second, 4.0);
        assert_eq!(figures.in_flight["charging"], 3.0);
    }

    #[test]
    fn each_rate_divides_by_its_own_points_time_gap_not_the_file_s() {
        let at = |seconds: u64, value: f64| {
            let mut point = point(
                "order",
                "microcosm.saga.completed",
                &[
                    ("microcosm.saga.outcome", "confirmed"),
                    ("microcosm.saga.reason", ""),
                ],
                value,
            );
            point.time_unix_nanos = seconds * 1_000_000_000;
            point
        };
        // The file was written 10 s apart, but order's two exports were 8 s apart.
        let before = Snapshot {
            updated_unix_ms: 100_000,
            points: vec![at(99, 10.0)],
        };
        let now = Snapshot {
            updated_unix_ms: 110_000,
            points: vec![at(107, 50.0)],
        };
        let figures = Figures::compute(Some(&before), &now);
        assert_eq!(figures.window_seconds, 10.0);
        assert_eq!(figures.sagas_completed_per_second, 5.0);
        // A point the service has not exported again since adds nothing.
        let stale = Snapshot {
            updated_unix_ms: 110_000,
            points: vec![at(99, 10.0)],
        };
        assert_eq!(
            Figures::compute(Some(&before), &stale).sagas_completed_per_second,
            0.0
        );
    }

    #[test]
    fn a_counter_that_went_down_was_reset_and_counts_whole() {
        let before = Snapshot {
            updated_unix_ms: 0,
            points: vec![histogram("billing", "GetAccount", "0", &[(0.01, 100)])],
        };
        let now = Snapshot {
            updated_unix_ms: 1_000,
            points: vec![histogram("billing", "GetAccount", "0", &[(0.01, 3)])],
        };
        let figures = Figures::compute(Some(&before), &now);
        assert_eq!(figures.services["billing"].calls_per_second, 3.0);
    }

    #[test]
    fn one_snapshot_gives_totals_and_no_rates() {
        let now = Snapshot {
            updated_unix_ms: 1_000,
            points: vec![
                histogram("order", "PlaceOrder", "0", &[(0.01, 5)]),
                point("inventory", "process.memory.usage", &[], 4.0e6),
                point(
                    "inventory",
                    "microcosm.messaging.dead_letters",
                    &[("messaging.consumer.group.name", "inventory-commands")],
                    1.0,
                ),
            ],
        };
        let figures = Figures::compute(None, &now);
        assert_eq!(figures.orders_per_second, 0.0);
        assert_eq!(figures.services["order"].p50_ms, None);
        assert_eq!(figures.services["inventory"].memory_bytes, Some(4.0e6));
        assert_eq!(figures.consumers["inventory-commands"].dead_letters, 1.0);
        assert_eq!(figures.consumers["inventory-commands"].service, "inventory");
    }

    #[test]
    fn the_metrics_file_format_round_trips() {
        let mut original = histogram("order", "PlaceOrder", "0", &[(0.01, 5), (f64::INFINITY, 1)]);
        original.sum = 0.25;
        let document = serde_json::json!({
            "updated_unix_ms": 42,
            "points": [original.to_json()],
        });
        let snapshot = Snapshot::from_json(&document).expect("a snapshot");
        assert_eq!(snapshot.updated_unix_ms, 42);
        assert_eq!(snapshot.points, vec![original]);
    }
}
