//! The services' OpenTelemetry metrics, exported over OTLP with the traces (see
//! [`crate::telemetry`]). Names follow the OpenTelemetry semantic conventions
//! where one exists (`rpc.server.call.duration`, `db.client.connection.count`);
//! Microcosm's own are under `microcosm.`. docs/observability.md lists them.
//!
//! The instruments are created on first use, from the global meter provider that
//! `init_telemetry` installs; before that (and in unit tests) they record nothing.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use sqlx::PgPool;

struct Instruments {
    saga_completed: Counter<u64>,
    saga_step: Histogram<f64>,
    rpc_duration: Histogram<f64>,
    rpc_client_duration: Histogram<f64>,
}

/// Histogram buckets for durations in seconds, 1 ms to 10 s (the SDK's default
/// buckets are meant for milliseconds and would put every call in the first).
const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0,
];

fn meter() -> Meter {
    opentelemetry::global::meter("microcosm")
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = meter();
        Instruments {
            saga_completed: meter
                .u64_counter("microcosm.saga.completed")
                .with_description("Orders whose saga ended, by outcome and reason")
                .with_unit("{order}")
                .build(),
            saga_step: meter
                .f64_histogram("microcosm.saga.step.duration")
                .with_description(
                    "Time a saga spent in a step before moving on (since the step's last send)",
                )
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            rpc_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_description("Duration of gRPC calls served, by method and status")
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            rpc_client_duration: meter
                .f64_histogram("rpc.client.call.duration")
                .with_description(
                    "Duration of gRPC calls made to other services, by method and status",
                )
                .with_unit("s")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    })
}

/// A saga ended: `outcome` is `confirmed` or `cancelled`, `reason` the
/// cancellation reason (empty for a confirmed order). Call after the commit.
pub fn saga_completed(outcome: &'static str, reason: &str) {
    instruments().saga_completed.add(
        1,
        &[
            KeyValue::new("microcosm.saga.outcome", outcome),
            KeyValue::new("microcosm.saga.reason", reason.to_owned()),
        ],
    );
}

/// Makes every outcome's series exist, at 0, before the first saga ends (a
/// counter is exported only once something was added to it, and Prometheus'
/// `increase()` cannot see a series' first value).
pub fn saga_outcomes_known<'a>(outcomes: impl IntoIterator<Item = (&'static str, &'a str)>) {
    for (outcome, reason) in outcomes {
        instruments().saga_completed.add(
            0,
            &[
                KeyValue::new("microcosm.saga.outcome", outcome),
                KeyValue::new("microcosm.saga.reason", reason.to_owned()),
            ],
        );
    }
}

/// A saga left the step `state` after `duration` in it. Call after the commit.
pub fn saga_step_finished(state: &'static str, duration: std::time::Duration) {
    instruments().saga_step.record(
        duration.as_secs_f64(),
        &[KeyValue::new("microcosm.saga.state", state)],
    );
}

/// A gRPC call was served.
pub fn rpc_served(service: &str, method: &str, status_code: &str, seconds: f64) {
    instruments()
        .rpc_duration
        .record(seconds, &rpc_attributes(service, method, status_code));
}

/// A gRPC call to another service finished (or ran out of time).
pub fn rpc_called(service: &str, method: &str, status_code: &str, seconds: f64) {
    instruments()
        .rpc_client_duration
        .record(seconds, &rpc_attributes(service, method, status_code));
}

/// The semantic conventions' attributes of one gRPC call.
fn rpc_attributes(service: &str, method: &str, status_code: &str) -> [KeyValue; 4] {
    [
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", service.to_owned()),
        KeyValue::new("rpc.method", method.to_owned()),
        KeyValue::new("rpc.grpc.status_code", status_code.to_owned()),
    ]
}

/// Registers the observable gauges: the pool's connections, idle and used, as
/// `db.client.connection.count` (the pool named after the service), the process's resident memory as
/// `process.memory.usage`, and the readings below. Call once at start,
/// after `init_telemetry`.
///
/// The gauges' callbacks run on the metric reader's thread while the SDK holds
/// its pipeline lock, so they only take [`READINGS`]' mutex, never a lock that
/// registering an instrument could be waiting behind (a lazily registered
/// gauge once deadlocked a service that way).
pub fn observe(pool_name: &'static str, pool: &PgPool) {
    let pool = pool.clone();
    let meter = meter();
    let _connections = meter
        .u64_observable_gauge("db.client.connection.count")
        .with_description("Database connections of the service's pool, by state")
        .with_unit("{connection}")
        .with_callback(move |observer| {
            let size = u64::from(pool.size());
            let idle = u64::try_from(pool.num_idle()).unwrap_or(0);
            let name = KeyValue::new("db.client.connection.pool.name", pool_name);
            let state = |state: &'static str| {
                [
                    name.clone(),
                    KeyValue::new("db.client.connection.state", state),
                ]
            };
            observer.observe(idle, &state("idle"));
            observer.observe(size.saturating_sub(idle), &state("used"));
        })
        .build();
    let _memory = meter
        .u64_observable_gauge("process.memory.usage")
        .with_description("Resident memory of the service's process (Linux only)")
        .with_unit("By")
        .with_callback(|observer| {
            if let Some(bytes) = resident_memory_bytes() {
                observer.observe(bytes, &[]);
            }
        })
        .build();
    let _sagas = meter
        .u64_observable_gauge("microcosm.saga.in_flight")
        .with_description("Sagas not yet ended, by the state they are in (order service)")
        .with_unit("{order}")
        .with_callback(|observer| {
            for (state, count) in read(|r| r.sagas_in_flight.clone()) {
                observer.observe(count, &[KeyValue::new("microcosm.saga.state", state)]);
            }
        })
        .build();
    microcosm_messaging::metrics::observe();
}

/// The process's resident set size, from `/proc/self/status` (`VmRSS`, in kB);
/// `None` where there is no procfs.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// The latest readings behind the observable gauges, updated by the order
/// service's census and read whenever metrics are collected.
struct Readings {
    sagas_in_flight: Vec<(&'static str, u64)>,
}

static READINGS: Mutex<Readings> = Mutex::new(Readings {
    sagas_in_flight: Vec::new(),
});

fn readings() -> MutexGuard<'static, Readings> {
    READINGS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(reading: impl FnOnce(&Readings) -> T) -> T {
    reading(&readings())
}

/// The sagas not yet ended, by state (the order service counts them every second).
pub fn sagas_in_flight(counts: impl IntoIterator<Item = (&'static str, u64)>) {
    readings().sagas_in_flight = counts.into_iter().collect();
}
