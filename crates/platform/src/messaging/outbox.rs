//! The transactional outbox and its relay.
//!
//! A service never publishes inside a request or a message handler. It calls
//! [`enqueue`] in the same transaction as the state change, so the message exists
//! if and only if the change committed. The relay then publishes unpublished rows
//! to JetStream with `Nats-Msg-Id` = the message id, waits for each PubAck, and
//! only then marks the rows published. A crash between publish and mark
//! re-publishes the row, and JetStream's duplicate window drops the copy.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, so several replicas can relay
//! side by side without publishing one row twice at the same time. The relay is
//! woken by `NOTIFY outbox` (sent by a trigger when a writing transaction
//! commits) and polls as a fallback, in case a notification is lost while its
//! listening connection reconnects.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use microcosm_proto::messaging::Envelope;
use prost::Message;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use opentelemetry::global;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::envelope::subject_of;
use crate::shutdown::Shutdown;
use crate::telemetry::propagation::{NatsHeaderInjector, context_of};

/// Writes `envelope` to the outbox, in the caller's transaction.
///
/// # Errors
/// If the database fails, or the envelope has no body or a bad id (a bug).
#[tracing::instrument(name = "db.enqueue_outbox", skip_all, fields(message_id = %envelope.message_id))]
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    envelope: &Envelope,
) -> Result<(), sqlx::Error> {
    let body = envelope
        .body
        .as_ref()
        .ok_or_else(|| sqlx::Error::Protocol("an outbox message needs a body".into()))?;
    let message_id = Uuid::parse_str(&envelope.message_id)
        .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    sqlx::query("INSERT INTO outbox (message_id, subject, payload) VALUES ($1, $2, $3)")
        .bind(message_id)
        .bind(subject_of(body))
        .bind(envelope.encode_to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Why a relay round failed. The relay logs it and tries again.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The outbox could not be read or marked.
    #[error("outbox database error")]
    Database(#[from] sqlx::Error),
    /// JetStream did not acknowledge a publish.
    #[error("publishing {subject} to JetStream failed")]
    Publish {
        /// The message's subject.
        subject: String,
        /// The NATS error.
        #[source]
        source: async_nats::Error,
    },
}

/// Settings of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Rows claimed per round.
    pub batch_size: i64,
    /// How long to wait for a NOTIFY before looking anyway.
    pub poll_interval: Duration,
    /// How long published rows are kept (for debugging) before deletion.
    pub retention: Duration,
    /// How long to wait for JetStream's acknowledgements of a whole batch.
    pub ack_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 64,
            poll_interval: Duration::from_millis(500),
            retention: Duration::from_secs(300),
            ack_timeout: Duration::from_secs(5),
        }
    }
}

/// Publishes the outbox, round after round, until shutdown.
pub struct OutboxRelay {
    /// The service's database.
    pub pool: PgPool,
    /// JetStream, for publishing.
    pub jetstream: jetstream::Context,
    /// Timing and batch settings.
    pub settings: RelaySettings,
}

impl OutboxRelay {
    /// Relays until `shutdown`. Errors are logged and retried with backoff: the
    /// outbox keeps every message until NATS or the database is back. Every wait
    /// races the shutdown signal; a round abandoned half way is harmless (its
    /// transaction rolls back, and a row published but not yet marked is
    /// published again and dropped by JetStream's duplicate window).
    pub async fn run(self, shutdown: Shutdown) {
        let Some(mut listener) = shutdown.unless_triggered(self.listen()).await else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        let mut last_cleanup = tokio::time::Instant::now();
        while !shutdown.is_triggered() {
            let round = relay_outbox_batch(&self.pool, &self.jetstream, &self.settings);
            let Some(round) = shutdown.unless_triggered(round).await else {
                break;
            };
            match round {
                Ok(published) => {
                    crate::metrics::outbox_published(published as u64);
                    if shutdown
                        .unless_triggered(record_backlog(&self.pool))
                        .await
                        .is_none()
                    {
                        break;
                    }
                    backoff = Duration::from_millis(100);
                    if published as i64 == self.settings.batch_size {
                        continue; // more are waiting
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %crate::service::error_chain(&error), ?backoff, "outbox relay round failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.triggered() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
            if last_cleanup.elapsed() >= self.settings.retention.min(Duration::from_secs(30)) {
                let cleanup = delete_published(&self.pool, self.settings.retention);
                match shutdown.unless_triggered(cleanup).await {
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        tracing::warn!(%error, "could not clean up published outbox rows");
                    }
                    None => break,
                }
                last_cleanup = tokio::time::Instant::now();
            }
            self.wait_for_work(&mut listener, &shutdown).await;
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen("outbox").await.ok()?;
        Some(listener)
    }

    /// Waits for a NOTIFY, the poll interval, or shutdown, whichever comes first.
    async fn wait_for_work(&self, listener: &mut Option<PgListener>, shutdown: &Shutdown) {
        let notified = async {
            match listener.as_mut() {
                Some(listening) => listening.recv().await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = notified => {
                if result.is_err() {
                    // The listening connection broke; poll until it is back.
                    *listener = None;
                }
            }
            () = tokio::time::sleep(self.settings.poll_interval) => {
                if listener.is_none() {
                    *listener = shutdown.unless_triggered(self.listen()).await.flatten();
                }
            }
            () = shutdown.triggered() => {}
        }
    }
}

/// Reads the backlog (rows waiting, the oldest's age) into the outbox gauges.
async fn record_backlog(pool: &PgPool) {
    let backlog: Result<(i64, f64), sqlx::Error> = sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
           FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await;
    match backlog {
        Ok((pending, lag)) => {
            crate::metrics::outbox_backlog(u64::try_from(pending).unwrap_or(0), lag.max(0.0));
        }
        Err(error) => tracing::debug!(%error, "could not read the outbox backlog"),
    }
}

/// One round: claim up to a batch of unpublished rows, publish them all, wait for
/// their acknowledgements, mark the acknowledged ones. Returns how many were published.
///
/// # Errors
/// If the database fails, or a publish was not acknowledged (the rows that were
/// acknowledged are still marked).
#[tracing::instrument(name = "outbox.relay_batch", skip_all, fields(published))]
pub async fn relay_outbox_batch(
    pool: &PgPool,
    js: &jetstream::Context,
    settings: &RelaySettings,
) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, message_id, subject, payload
           FROM outbox
          WHERE published_at IS NULL
          ORDER BY id
          LIMIT $1
          FOR UPDATE SKIP LOCKED",
    )
    .bind(settings.batch_size)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }

    // Publish the whole batch, then collect the acknowledgements: one round trip
    // of latency per batch instead of per message.
    let mut pending = Vec::with_capacity(rows.len());
    let mut failure = None;
    for (id, message_id, subject, payload) in rows {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message_id.to_string().as_str(),
        );
        let publish = publish_span(&subject, message_id, &payload);
        // The consumer continues from this publish span (W3C headers).
        let context = publish.context();
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut NatsHeaderInjector(&mut headers));
        });
        match js
            .publish_with_headers(subject.clone(), headers, payload.into())
            .instrument(publish)
            .await
        {
            Ok(ack) => pending.push((id, subject, ack)),
            Err(source) => {
                failure = Some(RelayError::Publish {
                    subject,
                    source: source.into(),
                });
                break;
            }
        }
    }
    // One deadline for the whole batch: waiting ack_timeout per message would
    // hold the rows locked for minutes while NATS is stalled.
    let deadline = tokio::time::Instant::now() + settings.ack_timeout;
    let mut acknowledged = Vec::with_capacity(pending.len());
    for (id, subject, ack) in pending {
        match tokio::time::timeout_at(deadline, ack).await {
            Ok(Ok(_)) => acknowledged.push(id),
            Ok(Err(source)) => {
                failure.get_or_insert(RelayError::Publish {
                    subject,
                    source: source.into(),
                });
            }
            Err(elapsed) => {
                failure.get_or_insert(RelayError::Publish {
                    subject,
                    source: elapsed.into(),
                });
            }
        }
    }
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&acknowledged)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::Span::current().record("published", acknowledged.len());
    match failure {
        Some(error) => Err(error),
        None => Ok(acknowledged.len()),
    }
}

/// A producer span for one message, child of the transaction that wrote it (the
/// trace context stored in the envelope), however long ago that was.
fn publish_span(subject: &str, message_id: Uuid, payload: &[u8]) -> tracing::Span {
    let envelope = Envelope::decode(payload).ok();
    let span = tracing::info_span!(
        "outbox.publish",
        otel.name = %format!("publish {subject}"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "publish",
        messaging.destination.name = %subject,
        messaging.message.id = %message_id,
        order_id = envelope.as_ref().map(|envelope| envelope.correlation_id.as_str()).unwrap_or_default(),
    );
    let _ = span.set_parent(context_of(
        envelope
            .as_ref()
            .and_then(|envelope| envelope.trace_context.as_ref()),
    ));
    span
}

async fn delete_published(pool: &PgPool, retention: Duration) -> Result<(), sqlx::Error> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1::double precision / 1000)")
        .bind(retention_ms)
        .execute(pool)
        .await?;
    Ok(())
}
