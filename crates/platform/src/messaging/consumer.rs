//! The consumer loop every service runs for each durable consumer.
//!
//! For each delivery: decode the envelope, hand it to the service's handler,
//! and acknowledge only after the handler's transaction committed. A failure
//! that may pass (database down) is NAKed with a delay and redelivered; a
//! message that can never be handled (undecodable, unknown type, or still
//! failing on its last allowed delivery) is parked in `dead_letters`, reported,
//! and acknowledged, so it never blocks the messages behind it and never
//! crashes the service.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use sqlx::PgPool;

use super::envelope::{ReceivedEnvelope, decode};
use super::streams::{ConsumerSpec, ensure_consumer};
use opentelemetry::global;
use opentelemetry::trace::TraceContextExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::faults::Faults;
use crate::service::error_chain;
use crate::shutdown::Shutdown;
use crate::telemetry::propagation::{NatsHeaderExtractor, context_of};

/// One delivery of a message, as the handler sees it.
#[derive(Debug)]
pub struct Delivery {
    /// The decoded envelope.
    pub message: ReceivedEnvelope,
    /// The subject it arrived on.
    pub subject: String,
    /// Which delivery this is (1 for the first).
    pub attempt: i64,
    /// The durable consumer's name (for the inbox).
    pub consumer: &'static str,
}

/// Why a handler did not apply a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlingError {
    /// Worth retrying (the database is unreachable, a serialisation conflict...).
    #[error("transient failure")]
    Transient(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Can never succeed: the message is parked as a dead letter.
    #[error("cannot be handled: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlingError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(Box::new(error))
    }
}

/// A service's reaction to its messages. Implementations open a transaction,
/// record the message in the inbox, apply the effect, write replies to the
/// outbox, and commit — or skip everything if the inbox says "seen".
pub trait MessageHandler: Send + Sync + 'static {
    /// Applies one delivery.
    fn handle(&self, delivery: &Delivery)
    -> impl Future<Output = Result<(), HandlingError>> + Send;
}

/// Reads `spec`'s consumer until shutdown, handing each message to `handler`.
/// Reconnects (with backoff) whenever NATS goes away.
pub async fn run_consumer<H: MessageHandler>(
    js: jetstream::Context,
    pool: PgPool,
    spec: ConsumerSpec,
    handler: H,
    faults: Faults,
    shutdown: Shutdown,
) {
    crate::metrics::consumer_started(spec.durable);
    let handler = Arc::new(handler);
    let spec = Arc::new(spec);
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        // JetStream requests wait for a NATS that is not there: the set-up races
        // the shutdown signal like every other wait in this loop.
        let setting_up = async {
            super::streams::ensure_streams(&js).await?;
            let consumer = ensure_consumer(&js, &spec).await?;
            let lag = tokio::spawn(report_lag(consumer.clone(), spec.durable));
            Ok::<_, async_nats::Error>((
                consumer
                    .stream()
                    .max_messages_per_batch(16)
                    .messages()
                    .await?,
                AbortOnDrop(lag),
            ))
        };
        let Some(messages) = shutdown.unless_triggered(setting_up).await else {
            return;
        };
        let (mut messages, _lag_reporter) = match messages {
            Ok(messages) => {
                backoff = Duration::from_millis(100);
                messages
            }
            Err(error) => {
                tracing::warn!(consumer = spec.durable, error = %error, ?backoff, "cannot consume yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.triggered() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            // At most `concurrency` messages in hand at once; each is handled in
            // its own task and transaction. Messages of one order are
            // serialised by the row locks their handlers take, and the saga
            // tolerates any order between different messages.
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit,
                () = shutdown.triggered() => break,
            };
            let Ok(permit) = permit else { break };
            let next = tokio::select! {
                next = messages.next() => next,
                () = shutdown.triggered() => break,
            };
            match next {
                Some(Ok(message)) => {
                    let span = process_span(&spec, &message);
                    let (pool, spec, handler, faults, shutdown) = (
                        pool.clone(),
                        Arc::clone(&spec),
                        Arc::clone(&handler),
                        faults.clone(),
                        shutdown.clone(),
                    );
                    in_flight.spawn(
                        async move {
                            handle_delivery(
                                &pool,
                                &spec,
                                handler.as_ref(),
                                &faults,
                                &shutdown,
                                message,
                            )
                            .await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Some(Err(error)) => {
                    tracing::warn!(consumer = spec.durable, %error, "consumer stream error; reconnecting");
                    break;
                }
                None => break,
            }
            while in_flight.try_join_next().is_some() {}
        }
        // Let the messages in hand finish (their handlers are short transactions).
        while in_flight.join_next().await.is_some() {}
    }
}

/// How often a consumer's lag is read from JetStream.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Reads the consumer's lag (messages pending plus in hand) from JetStream every
/// [`LAG_INTERVAL`] into `microcosm.messaging.consumer.lag`.
async fn report_lag(mut consumer: jetstream::consumer::PullConsumer, durable: &'static str) {
    let mut ticks = tokio::time::interval(LAG_INTERVAL);
    loop {
        ticks.tick().await;
        if let Ok(info) = consumer.info().await {
            crate::metrics::consumer_lag(durable, info.num_pending + info.num_ack_pending as u64);
        }
    }
}

/// Aborts a task when dropped: the lag reporter lives as long as its stream.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn handle_delivery<H: MessageHandler>(
    pool: &PgPool,
    spec: &ConsumerSpec,
    handler: &H,
    faults: &Faults,
    shutdown: &Shutdown,
    message: jetstream::Message,
) {
    let (attempt, stream_sequence) = match message.info() {
        Ok(info) => (info.delivered, Some(info.stream_sequence)),
        Err(_) => (1, None),
    };
    if attempt > 1 {
        crate::metrics::redelivered(spec.durable);
    }
    let subject = message.subject.to_string();
    if !wait_while_unavailable(faults, spec, &message, shutdown).await {
        return; // shutting down: unacknowledged, so redelivered to whoever runs next
    }
    tokio::time::sleep(faults.added_latency()).await;
    faults.crash_if_owed(pool).await;
    let outcome = match decode(&message.payload) {
        Err(error) => Err(HandlingError::Permanent(error.to_string())),
        Ok(received) => {
            let delivery = Delivery {
                message: received,
                subject: subject.clone(),
                attempt,
                consumer: spec.durable,
            };
            handler.handle(&delivery).await
        }
    };
    if let Err(error) = &outcome {
        let span = tracing::Span::current();
        span.record("otel.status_code", "ERROR");
        span.record("error.message", error.to_string());
    }
    let acknowledgement = match outcome {
        Ok(()) if faults.should_drop_ack(stream_sequence.unwrap_or(0), attempt) => {
            tracing::warn!(consumer = spec.durable, %subject, "dropping the ack (fault flag drop_ack_percent); JetStream will redeliver");
            return;
        }
        Ok(()) => AckKind::Ack,
        Err(HandlingError::Transient(cause)) if attempt < spec.max_deliver => {
            let delay = Duration::from_millis(100 * 2_u64.pow(attempt.clamp(0, 5) as u32));
            tracing::warn!(consumer = spec.durable, %subject, attempt, error = %error_chain(cause.as_ref()), ?delay, "handling failed; will be redelivered");
            AckKind::Nak(Some(delay))
        }
        Err(error) => {
            let reason = match &error {
                HandlingError::Transient(cause) => {
                    format!(
                        "still failing after {attempt} deliveries: {}",
                        error_chain(cause.as_ref())
                    )
                }
                HandlingError::Permanent(reason) => reason.clone(),
            };
            let parked = DeadLetter {
                consumer: spec.durable,
                subject: &subject,
                stream_sequence,
                delivered: attempt,
                reason: &reason,
                payload: &message.payload,
            };
            match park_dead_letter(pool, &parked).await {
                Ok(()) => {
                    crate::metrics::dead_lettered(spec.durable);
                    AckKind::Term
                }
                Err(store_error) => {
                    tracing::warn!(%store_error, "could not park a dead letter; will be redelivered");
                    AckKind::Nak(Some(Duration::from_secs(1)))
                }
            }
        }
    };
    if let Err(error) = message.ack_with(acknowledgement).await {
        // The message will be redelivered after ack_wait; the inbox makes that harmless.
        tracing::warn!(consumer = spec.durable, %subject, %error, "could not acknowledge");
    }
}

/// The consumer span of one delivery (OpenTelemetry messaging conventions:
/// operation `process`). Its parent is the producer's publish span, read from
/// the message's W3C headers (or, for a message published without them, the
/// trace context inside the envelope), so the whole saga is one trace. A
/// redelivery is a second `process` span in the same trace, with a higher
/// `messaging.nats.delivery_attempt`.
fn process_span(spec: &ConsumerSpec, message: &jetstream::Message) -> tracing::Span {
    let attempt = message.info().map(|info| info.delivered).unwrap_or(1);
    let decoded = decode(&message.payload).ok();
    let span = tracing::info_span!(
        "consumer.process",
        otel.name = %format!("process {}", message.subject),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %message.subject,
        messaging.consumer.group.name = spec.durable,
        messaging.message.id = decoded.as_ref().map(|received| received.message_id.to_string()).unwrap_or_default(),
        messaging.nats.delivery_attempt = attempt,
        order_id = decoded.as_ref().map(|received| received.correlation_id.to_string()).unwrap_or_default(),
        otel.status_code = tracing::field::Empty,
        error.message = tracing::field::Empty,
    );
    let from_headers = message.headers.as_ref().map(|headers| {
        global::get_text_map_propagator(|propagator| {
            propagator.extract(&NatsHeaderExtractor(headers))
        })
    });
    let parent = match from_headers {
        Some(context) if context.span().span_context().is_valid() => context,
        _ => context_of(
            decoded
                .as_ref()
                .and_then(|received| received.envelope.trace_context.as_ref()),
        ),
    };
    let _ = span.set_parent(parent);
    span
}

/// While the `unavailable` fault flag is on, holds the message without handling
/// it, telling JetStream it is still being worked on (so it is neither
/// redelivered nor counted as another delivery). `false` if shutdown came first.
async fn wait_while_unavailable(
    faults: &Faults,
    spec: &ConsumerSpec,
    message: &jetstream::Message,
    shutdown: &Shutdown,
) -> bool {
    while faults.is_unavailable() {
        if let Err(error) = message.ack_with(AckKind::Progress).await {
            tracing::debug!(%error, "could not extend the ack deadline");
        }
        tokio::select! {
            () = tokio::time::sleep((spec.ack_wait / 3).min(Duration::from_millis(500))) => {}
            () = shutdown.triggered() => return false,
        }
    }
    true
}

/// A message that can never be handled.
struct DeadLetter<'a> {
    consumer: &'a str,
    subject: &'a str,
    stream_sequence: Option<u64>,
    delivered: i64,
    reason: &'a str,
    payload: &'a [u8],
}

/// Stores the dead letter for a human to inspect, and reports it in the log.
async fn park_dead_letter(pool: &PgPool, letter: &DeadLetter<'_>) -> Result<(), sqlx::Error> {
    let message_id = decode(letter.payload)
        .ok()
        .map(|received| received.message_id.to_string());
    sqlx::query(
        "INSERT INTO dead_letters (consumer, subject, stream_sequence, delivered, reason, message_id, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(letter.consumer)
    .bind(letter.subject)
    .bind(letter.stream_sequence.and_then(|sequence| i64::try_from(sequence).ok()))
    .bind(letter.delivered)
    .bind(letter.reason)
    .bind(message_id)
    .bind(letter.payload)
    .execute(pool)
    .await?;
    tracing::error!(
        consumer = letter.consumer,
        subject = letter.subject,
        stream_sequence = letter.stream_sequence,
        reason = letter.reason,
        "message dead-lettered (see the dead_letters table); the stream moves on"
    );
    Ok(())
}
