//! The JetStream streams and durable consumers, declared by code at start.
//!
//! Each service owns one stream holding everything on its subjects (`order.>`,
//! `inventory.>`, `billing.>`): the commands sent to it and the replies and
//! events it sends. Every service declares all three with the same settings
//! (`get_or_create` is idempotent), so start order does not matter.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

/// How long JetStream remembers a `Nats-Msg-Id` to drop a re-published message.
/// A relay that crashed after publishing and before marking its row re-publishes
/// within seconds; past the window the consumer's inbox still drops it.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long messages are kept (for late watchers and debugging).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A stream and the subjects it captures.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    /// Stream name.
    pub name: &'static str,
    /// Subjects it captures.
    pub subject: &'static str,
}

/// The order service's domain events.
pub const ORDER_STREAM: StreamSpec = StreamSpec {
    name: "ORDER",
    subject: "order.>",
};
/// Commands to inventory, and its replies and events.
pub const INVENTORY_STREAM: StreamSpec = StreamSpec {
    name: "INVENTORY",
    subject: "inventory.>",
};
/// Commands to billing, and its replies and events.
pub const BILLING_STREAM: StreamSpec = StreamSpec {
    name: "BILLING",
    subject: "billing.>",
};
/// All of them.
pub const ALL_STREAMS: [StreamSpec; 3] = [ORDER_STREAM, INVENTORY_STREAM, BILLING_STREAM];

/// Creates the streams that do not exist yet.
///
/// # Errors
/// If JetStream is unreachable or refuses the configuration.
pub async fn ensure_streams(js: &jetstream::Context) -> Result<(), async_nats::Error> {
    for spec in ALL_STREAMS {
        js.get_or_create_stream(stream::Config {
            name: spec.name.to_owned(),
            subjects: vec![spec.subject.to_owned()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: MAX_AGE,
            ..Default::default()
        })
        .await?;
    }
    Ok(())
}

/// A durable pull consumer: who reads what, and how patiently.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The stream to read.
    pub stream: &'static str,
    /// The durable name; replicas of a service share it, so each message goes to one.
    pub durable: &'static str,
    /// The subjects to read from the stream.
    pub filter_subject: &'static str,
    /// Deliveries before a message that keeps failing is dead-lettered (counted
    /// by the consumer loop, not by JetStream: see [`ensure_consumer`]).
    pub max_deliver: i64,
    /// How long a delivered message may stay unacknowledged before redelivery.
    pub ack_wait: Duration,
    /// How many messages one process handles at once.
    pub concurrency: usize,
}

/// Creates the consumer if it does not exist, and returns it.
///
/// # Errors
/// If JetStream is unreachable or refuses the configuration.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<consumer::Consumer<consumer::pull::Config>, async_nats::Error> {
    let stream = js.get_stream(spec.stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            spec.durable,
            consumer::pull::Config {
                durable_name: Some(spec.durable.to_owned()),
                filter_subject: spec.filter_subject.to_owned(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: spec.ack_wait,
                // Unlimited on JetStream's side: if JetStream stopped redelivering,
                // a message whose last delivery could not even be parked (the
                // database down) would vanish. The consumer loop counts the
                // deliveries and parks the message itself once it has a place to.
                max_deliver: -1,
                // A few messages in flight at a time: a large prefetch waiting
                // behind a slow handler would outlive ack_wait and be redelivered.
                max_ack_pending: 64,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await?;
    Ok(consumer)
}
