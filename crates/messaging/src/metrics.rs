//! The messaging instruments (docs/observability.md lists them): dead letters,
//! redeliveries, publishes, the outbox's backlog and each consumer's lag. They
//! come from the global meter provider the service installs at start; before
//! that (and in unit tests) they record nothing.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

struct Instruments {
    dead_letters: Counter<u64>,
    redeliveries: Counter<u64>,
    outbox_published: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("microcosm");
        Instruments {
            dead_letters: meter
                .u64_counter("microcosm.messaging.dead_letters")
                .with_description("Messages parked in dead_letters, by consumer")
                .with_unit("{message}")
                .build(),
            redeliveries: meter
                .u64_counter("microcosm.messaging.redeliveries")
                .with_description("Deliveries after the first, by consumer")
                .with_unit("{message}")
                .build(),
            outbox_published: meter
                .u64_counter("microcosm.outbox.published")
                .with_description("Outbox rows published to JetStream (PubAck received)")
                .with_unit("{message}")
                .build(),
        }
    })
}

fn consumer_attribute(consumer: &'static str) -> [KeyValue; 1] {
    [KeyValue::new("messaging.consumer.group.name", consumer)]
}

/// `consumer` started: its dead-letter and redelivery series exist from now
/// on, at 0, so that a dashboard's increase() sees the first one.
pub fn consumer_started(consumer: &'static str) {
    instruments()
        .dead_letters
        .add(0, &consumer_attribute(consumer));
    instruments()
        .redeliveries
        .add(0, &consumer_attribute(consumer));
}

/// A message was dead-lettered by `consumer`.
pub fn dead_lettered(consumer: &'static str) {
    instruments()
        .dead_letters
        .add(1, &consumer_attribute(consumer));
}

/// `consumer` got a message for the second time or later.
pub fn redelivered(consumer: &'static str) {
    instruments()
        .redeliveries
        .add(1, &consumer_attribute(consumer));
}

/// `count` outbox rows were published (dispatched or swept) and stored by
/// JetStream (a duplicate it dropped is not counted).
pub fn outbox_published(count: u64) {
    instruments().outbox_published.add(count, &[]);
}

/// The latest readings behind the observable gauges. The gauges' callbacks run
/// on the metric reader's thread while the SDK holds its pipeline lock, so they
/// take only this mutex, never a lock that registering an instrument could be
/// waiting behind.
struct Readings {
    outbox_pending: u64,
    outbox_lag_seconds: f64,
    consumer_lag: BTreeMap<&'static str, u64>,
}

static READINGS: Mutex<Readings> = Mutex::new(Readings {
    outbox_pending: 0,
    outbox_lag_seconds: 0.0,
    consumer_lag: BTreeMap::new(),
});

fn readings() -> MutexGuard<'static, Readings> {
    READINGS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outbox's backlog: rows not yet marked published and the oldest's age.
pub fn outbox_backlog(pending: u64, lag_seconds: f64) {
    let mut readings = readings();
    readings.outbox_pending = pending;
    readings.outbox_lag_seconds = lag_seconds;
}

/// A durable consumer's lag, as JetStream reports it.
pub fn consumer_lag(consumer: &'static str, lag: u64) {
    readings().consumer_lag.insert(consumer, lag);
}

/// Registers the observable gauges `microcosm.outbox.pending`,
/// `microcosm.outbox.lag` and `microcosm.messaging.consumer.lag`. Call once at
/// start, after the meter provider is installed.
pub fn observe() {
    let meter = opentelemetry::global::meter("microcosm");
    let _pending = meter
        .u64_observable_gauge("microcosm.outbox.pending")
        .with_description("Outbox rows not yet published to JetStream")
        .with_unit("{message}")
        .with_callback(|observer| observer.observe(readings().outbox_pending, &[]))
        .build();
    let _lag = meter
        .f64_observable_gauge("microcosm.outbox.lag")
        .with_description("Age of the oldest unpublished outbox row (0 when none)")
        .with_unit("s")
        .with_callback(|observer| observer.observe(readings().outbox_lag_seconds, &[]))
        .build();
    let _consumers = meter
        .u64_observable_gauge("microcosm.messaging.consumer.lag")
        .with_description(
            "Messages a durable consumer has not yet acknowledged (pending + in hand)",
        )
        .with_unit("{message}")
        .with_callback(|observer| {
            let lags = readings().consumer_lag.clone();
            for (consumer, lag) in lags {
                observer.observe(lag, &consumer_attribute(consumer));
            }
        })
        .build();
}
