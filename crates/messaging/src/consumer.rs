//! The consumer loop every service runs for each durable consumer.
//!
//! For each delivery: decode the envelope (once), hand it to the service's
//! handler, publish what the handler's committed transaction stored in the
//! outbox, and acknowledge only after JetStream acknowledged those. A failure
//! that may pass (database down) is NAKed with a delay and redelivered; a
//! message that can never be handled (undecodable, unknown type, or still
//! failing on its last allowed delivery) is parked in `dead_letters`, reported,
//! and acknowledged, so it never blocks the messages behind it and never
//! crashes the service.
//!
//! Fault injection is not done here: a service wraps its handler in one that
//! misbehaves on purpose (`microcosm_platform::faults::FaultyHandler`), and asks
//! through [`Handled::after`] for its replies or its ack to be lost.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::envelope::{ReceivedEnvelope, decode};
use super::outbox::{Dispatcher, Outgoing};
use super::streams::{ConsumerSpec, ensure_consumer};
use crate::error_chain;
use crate::trace::{Received, process_span};

/// One delivery of a message, as the handler sees it.
#[derive(Debug)]
pub struct Delivery {
    /// The decoded envelope.
    pub message: ReceivedEnvelope,
    /// The subject it arrived on.
    pub subject: String,
    /// Which delivery this is (1 for the first).
    pub attempt: i64,
    /// Its sequence number in the stream, when JetStream said.
    pub stream_sequence: Option<u64>,
    /// The durable consumer's name (for the inbox).
    pub consumer: &'static str,
    /// The JetStream message, for progress acks.
    raw: Option<Arc<jetstream::Message>>,
}

impl Delivery {
    /// A delivery of `message` on `subject` (first attempt), not tied to a
    /// JetStream message: for handlers called outside the consumer loop.
    pub fn new(message: ReceivedEnvelope, subject: String, consumer: &'static str) -> Self {
        Self {
            message,
            subject,
            attempt: 1,
            stream_sequence: None,
            consumer,
            raw: None,
        }
    }

    /// Tells JetStream the message is still being worked on, so it is neither
    /// redelivered nor counted as another delivery while the handler waits.
    pub async fn extend_ack_deadline(&self) {
        if let Some(raw) = &self.raw
            && let Err(error) = raw.ack_with(AckKind::Progress).await
        {
            tracing::debug!(%error, "could not extend the ack deadline");
        }
    }
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

/// What happens once a handler's transaction committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AfterHandling {
    /// Publish what was stored, then acknowledge the delivery.
    #[default]
    PublishThenAck,
    /// Publish, but leave the delivery unacknowledged: JetStream redelivers it
    /// after `ack_wait` (the `drop_ack_percent` fault flag, or a shutdown).
    PublishWithoutAck,
    /// Neither publish nor acknowledge, and record the messages as published:
    /// a broker that acknowledged both and then lost them (a crash before its
    /// disk sync) leaves exactly this (the `lose_next_replies` fault flag).
    LoseRepliesUnacked,
}

/// What handling a delivery left to do after its commit.
#[derive(Debug, Default)]
pub struct Handled {
    /// The messages its transaction stored (or, for a duplicate, that its first
    /// handling stored), to publish before acknowledging.
    pub dispatch: Vec<Outgoing>,
    /// What to do with them and with the delivery.
    pub after: AfterHandling,
}

impl Handled {
    /// Nothing to publish; acknowledge.
    pub fn nothing() -> Self {
        Self::default()
    }

    /// Publish `messages`, then acknowledge.
    pub fn dispatch(messages: Vec<Outgoing>) -> Self {
        Self {
            dispatch: messages,
            after: AfterHandling::PublishThenAck,
        }
    }
}

/// A service's reaction to its messages. Implementations open a transaction,
/// record the message in the inbox, apply the effect, store replies in the
/// outbox, commit, and return the replies for dispatch — or, if the inbox says
/// "seen", return what the first handling stored.
pub trait MessageHandler: Send + Sync + 'static {
    /// Applies one delivery.
    fn handle(
        &self,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<Handled, HandlingError>> + Send;
}

/// What a consumer needs besides its handler.
#[derive(Debug, Clone)]
pub struct ConsumerContext {
    /// JetStream, to consume from.
    pub jetstream: jetstream::Context,
    /// The service's database, for dead letters.
    pub pool: PgPool,
    /// Publishes what handlers stored.
    pub dispatcher: Dispatcher,
}

/// Reads `spec`'s consumer until `shutdown`, handing each message to
/// `handler`. Reconnects (with backoff) whenever NATS goes away.
pub async fn run_consumer<H: MessageHandler>(
    context: ConsumerContext,
    spec: ConsumerSpec,
    handler: H,
    shutdown: CancellationToken,
) {
    crate::metrics::consumer_started(spec.durable);
    let handler = Arc::new(handler);
    let spec = Arc::new(spec);
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    let js = &context.jetstream;
    while !shutdown.is_cancelled() {
        // JetStream requests wait for a NATS that is not there: the set-up races
        // the shutdown signal like every other wait in this loop.
        let setting_up = async {
            super::streams::ensure_streams(js).await?;
            let consumer = ensure_consumer(js, &spec).await?;
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
        let Some(messages) = shutdown.run_until_cancelled(setting_up).await else {
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
                    () = shutdown.cancelled() => return,
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
                () = shutdown.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            let next = tokio::select! {
                next = messages.next() => next,
                () = shutdown.cancelled() => break,
            };
            match next {
                Some(Ok(message)) => {
                    let (context, spec, handler) =
                        (context.clone(), Arc::clone(&spec), Arc::clone(&handler));
                    let decoded = decode(&message.payload);
                    let attempt = message.info().map(|info| info.delivered).unwrap_or(1);
                    let span = process_span(&Received {
                        subject: message.subject.as_str(),
                        consumer: spec.durable,
                        attempt,
                        headers: message.headers.as_ref(),
                        envelope: decoded.as_ref().ok().map(|received| &received.envelope),
                    });
                    in_flight.spawn(
                        async move {
                            handle_delivery(&context, &spec, handler.as_ref(), message, decoded)
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
    context: &ConsumerContext,
    spec: &ConsumerSpec,
    handler: &H,
    message: jetstream::Message,
    decoded: Result<ReceivedEnvelope, super::envelope::EnvelopeError>,
) {
    let (attempt, stream_sequence) = match message.info() {
        Ok(info) => (info.delivered, Some(info.stream_sequence)),
        Err(_) => (1, None),
    };
    if attempt > 1 {
        crate::metrics::redelivered(spec.durable);
    }
    let subject = message.subject.to_string();
    let message = Arc::new(message);
    let outcome = match decoded {
        Err(error) => Err(HandlingError::Permanent(error.to_string())),
        Ok(received) => {
            let delivery = Delivery {
                message: received,
                subject: subject.clone(),
                attempt,
                stream_sequence,
                consumer: spec.durable,
                raw: Some(Arc::clone(&message)),
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
        Ok(handled) => after_commit(&context.dispatcher, spec, &subject, attempt, handled).await,
        Err(HandlingError::Transient(cause)) if attempt < spec.max_deliver => {
            let delay = Duration::from_millis(100 * 2_u64.pow(attempt.clamp(0, 5) as u32));
            tracing::warn!(consumer = spec.durable, %subject, attempt, error = %error_chain(cause.as_ref()), ?delay, "handling failed; will be redelivered");
            Some(AckKind::Nak(Some(delay)))
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
            match park_dead_letter(&context.pool, &parked).await {
                Ok(()) => {
                    crate::metrics::dead_lettered(spec.durable);
                    Some(AckKind::Term)
                }
                Err(store_error) => {
                    tracing::warn!(%store_error, "could not park a dead letter; will be redelivered");
                    Some(AckKind::Nak(Some(Duration::from_secs(1))))
                }
            }
        }
    };
    let Some(acknowledgement) = acknowledgement else {
        return; // left unacknowledged on purpose: JetStream redelivers it
    };
    if let Err(error) = message.ack_with(acknowledgement).await {
        // The message will be redelivered after ack_wait; the inbox makes that harmless.
        tracing::warn!(consumer = spec.durable, %subject, %error, "could not acknowledge");
    }
}

/// Publishes what the handler stored and says how to acknowledge the
/// delivery: `None` to leave it unacknowledged.
async fn after_commit(
    dispatcher: &Dispatcher,
    spec: &ConsumerSpec,
    subject: &str,
    attempt: i64,
    handled: Handled,
) -> Option<AckKind> {
    // Never on the last allowed delivery: JetStream would not deliver it again,
    // and the replies recorded as published would be lost for good.
    if handled.after == AfterHandling::LoseRepliesUnacked && attempt < spec.max_deliver {
        dispatcher.lose(&handled.dispatch);
        tracing::warn!(consumer = spec.durable, %subject, lost = handled.dispatch.len(), "losing the replies and the ack as a crashed broker would (fault flag lose_next_replies); JetStream will redeliver");
        return None;
    }
    if let Err(error) = dispatcher.dispatch(&handled.dispatch).await {
        // Redelivered as a duplicate, it publishes its stored messages again.
        let delay = Duration::from_millis(100 * 2_u64.pow(attempt.clamp(0, 5) as u32));
        tracing::warn!(consumer = spec.durable, %subject, error = %error_chain(&error), ?delay, "could not publish what the message caused; will be redelivered");
        return Some(AckKind::Nak(Some(delay)));
    }
    match handled.after {
        AfterHandling::PublishThenAck => Some(AckKind::Ack),
        // (lost replies on a last delivery were published above, as usual)
        AfterHandling::LoseRepliesUnacked if attempt >= spec.max_deliver => Some(AckKind::Ack),
        AfterHandling::PublishWithoutAck | AfterHandling::LoseRepliesUnacked => None,
    }
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
