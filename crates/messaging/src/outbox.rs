//! The transactional outbox: dispatch after commit, and the sweeper.
//!
//! A service never publishes inside a transaction. It stores its messages with
//! [`enqueue`] in the same transaction as the state change, so a message exists
//! if and only if the change committed. Right after the commit it hands what
//! [`enqueue`] returned to the [`Dispatcher`], which publishes them to JetStream
//! with `Nats-Msg-Id` = message id and waits for their PubAcks; a consumer
//! acknowledges the message it handled only after that (see [`crate::consumer`]).
//! This is how NServiceBus's outbox and MassTransit's consumer outbox work: the
//! message leaves as soon as it can, and nothing has to be woken to send it.
//!
//! The [`Sweeper`] covers the gap: it marks the dispatched rows published, in
//! one statement for everything dispatched since its last round, and publishes
//! any row still unpublished [`SweepSettings::grace`] after it was stored (the
//! commit happened, then the process died or NATS failed before the dispatch).
//! A row published twice (swept while its dispatch was in flight, or published
//! again for a redelivered command) is dropped by JetStream's duplicate window,
//! and past that by the consumer's inbox. The sweeper claims rows with
//! `FOR UPDATE SKIP LOCKED`, so replicas sweep side by side.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use microcosm_proto::messaging::Envelope;
use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::envelope::subject_of;

/// A stored message, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The outbox row.
    pub outbox_id: i64,
    /// The message id (`Nats-Msg-Id`).
    pub message_id: Uuid,
    /// Where it goes.
    pub subject: String,
    /// The encoded envelope, as stored.
    pub payload: Vec<u8>,
    /// The envelope (for the producer span's parent and attributes).
    pub envelope: Envelope,
}

/// Stores `envelopes` in the outbox, in the caller's transaction, with one
/// statement, and returns them ready to dispatch once the transaction commits.
///
/// # Errors
/// If the database fails, or an envelope has no body or a bad id (a bug).
#[tracing::instrument(name = "db.enqueue_outbox", skip_all, fields(messages = envelopes.len()))]
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    envelopes: Vec<Envelope>,
) -> Result<Vec<Outgoing>, sqlx::Error> {
    if envelopes.is_empty() {
        return Ok(Vec::new());
    }
    let mut message_ids = Vec::with_capacity(envelopes.len());
    let mut subjects = Vec::with_capacity(envelopes.len());
    let mut payloads = Vec::with_capacity(envelopes.len());
    let mut causations = Vec::with_capacity(envelopes.len());
    for envelope in &envelopes {
        let body = envelope
            .body
            .as_ref()
            .ok_or_else(|| sqlx::Error::Protocol("an outbox message needs a body".into()))?;
        message_ids.push(
            Uuid::parse_str(&envelope.message_id)
                .map_err(|error| sqlx::Error::Encode(Box::new(error)))?,
        );
        subjects.push(subject_of(body));
        payloads.push(envelope.encode_to_vec());
        causations.push(Uuid::parse_str(&envelope.causation_id).ok());
    }
    let stored: Vec<(i64, Uuid)> = sqlx::query_as(
        // created_at is when the row is written, not when its transaction began:
        // the sweeper's grace period must not be used up by a long transaction.
        "INSERT INTO outbox (message_id, subject, payload, causation_id, created_at)
         SELECT *, clock_timestamp() FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::uuid[])
         RETURNING id, message_id",
    )
    .bind(&message_ids)
    .bind(&subjects)
    .bind(&payloads)
    .bind(&causations)
    .fetch_all(&mut **tx)
    .await?;
    envelopes
        .into_iter()
        .zip(message_ids)
        .zip(subjects)
        .zip(payloads)
        .map(|(((envelope, message_id), subject), payload)| {
            let outbox_id = stored
                .iter()
                .find(|(_, stored_id)| *stored_id == message_id)
                .map(|(id, _)| *id)
                .ok_or_else(|| sqlx::Error::RowNotFound)?;
            Ok(Outgoing {
                outbox_id,
                message_id,
                subject: subject.to_owned(),
                payload,
                envelope,
            })
        })
        .collect()
}

/// The messages stored while handling `causation_id`, in the caller's
/// transaction: what a redelivery of it publishes again.
///
/// # Errors
/// If the database fails.
pub async fn caused_by(
    tx: &mut Transaction<'_, Postgres>,
    causation_id: Uuid,
) -> Result<Vec<Outgoing>, sqlx::Error> {
    let rows: Vec<(i64, Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, message_id, subject, payload FROM outbox WHERE causation_id = $1 ORDER BY id",
    )
    .bind(causation_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(outgoing_from_row).collect())
}

fn outgoing_from_row(
    (outbox_id, message_id, subject, payload): (i64, Uuid, String, Vec<u8>),
) -> Outgoing {
    // Stored by enqueue, so it decodes; a row that does not still gets published
    // (its consumer dead-letters it), only without a parent for its span.
    let envelope = Envelope::decode(payload.as_slice()).unwrap_or_default();
    Outgoing {
        outbox_id,
        message_id,
        subject,
        payload,
        envelope,
    }
}

/// Why a publish failed. The rows stay unpublished: a redelivery or the sweeper
/// publishes them later.
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

/// Publishes stored messages right after the commit that stored them, and
/// remembers which were acknowledged for the sweeper to mark.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    jetstream: jetstream::Context,
    ack_timeout: Duration,
    acknowledged: Arc<Mutex<Vec<i64>>>,
}

impl Dispatcher {
    /// A dispatcher publishing on `jetstream`, waiting at most `ack_timeout` for
    /// the PubAcks of one dispatch.
    pub fn new(jetstream: jetstream::Context, ack_timeout: Duration) -> Self {
        Self {
            jetstream,
            ack_timeout,
            acknowledged: Arc::default(),
        }
    }

    /// Publishes `messages` and waits for their PubAcks.
    ///
    /// # Errors
    /// If a publish was not acknowledged in time (those that were are kept as
    /// published; the rest stay for a redelivery or the sweeper).
    pub async fn dispatch(&self, messages: &[Outgoing]) -> Result<(), RelayError> {
        if messages.is_empty() {
            return Ok(());
        }
        let published = publish_all(&self.jetstream, messages, self.ack_timeout).await;
        crate::metrics::outbox_published(published.stored);
        let failure = published.failure;
        self.remember(published.acknowledged);
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Dispatches `messages` without making the caller wait (an API call must
    /// not hang on a stalled NATS; what fails is swept up later).
    pub fn dispatch_in_background(&self, messages: Vec<Outgoing>) {
        if messages.is_empty() {
            return;
        }
        let dispatcher = self.clone();
        tokio::spawn(
            async move {
                if let Err(error) = dispatcher.dispatch(&messages).await {
                    tracing::debug!(error = %crate::error_chain(&error), "dispatch failed; the sweeper will publish");
                }
            }
            .in_current_span(),
        );
    }

    /// Records `messages` as published without publishing them: what a broker
    /// that acknowledged them and then lost them leaves behind (the
    /// `lose_next_replies` fault flag).
    pub fn lose(&self, messages: &[Outgoing]) {
        self.remember(messages.iter().map(|message| message.outbox_id).collect());
    }

    fn remember(&self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        self.acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(ids);
    }

    fn take_acknowledged(&self) -> Vec<i64> {
        std::mem::take(
            &mut *self
                .acknowledged
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Marks what was acknowledged since the last call as published, in one
    /// statement. On failure the ids are kept for the next call. The sweeper
    /// calls it every round; a service calls it once more on its way out,
    /// after its consumers finished.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn mark_acknowledged(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let ids = self.take_acknowledged();
        if ids.is_empty() {
            return Ok(());
        }
        let marked = sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(pool)
            .await;
        if marked.is_err() {
            self.remember(ids);
        }
        marked.map(|_| ())
    }
}

/// What one publish batch achieved.
struct Published {
    /// The outbox ids JetStream acknowledged.
    acknowledged: Vec<i64>,
    /// How many of those it stored (the rest it had already: duplicates).
    stored: u64,
    /// The first failure.
    failure: Option<RelayError>,
}

/// Publishes every message, then collects the acknowledgements: one round trip
/// of latency for the batch.
async fn publish_all(
    js: &jetstream::Context,
    messages: &[Outgoing],
    ack_timeout: Duration,
) -> Published {
    let mut pending = Vec::with_capacity(messages.len());
    let mut failure = None;
    for message in messages {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            message.message_id.to_string().as_str(),
        );
        let span =
            crate::trace::publish_span(&message.subject, message.message_id, &message.envelope);
        crate::trace::inject(&span, &mut headers);
        let published = js
            .publish_with_headers(
                message.subject.clone(),
                headers,
                message.payload.clone().into(),
            )
            .instrument(span)
            .await;
        match published {
            Ok(ack) => pending.push((message, ack)),
            Err(source) => {
                failure = Some(RelayError::Publish {
                    subject: message.subject.clone(),
                    source: source.into(),
                });
                break;
            }
        }
    }
    // One deadline for the whole batch: waiting ack_timeout per message would
    // hold a sweep's rows locked for minutes while NATS is stalled.
    let deadline = tokio::time::Instant::now() + ack_timeout;
    let mut acknowledged = Vec::with_capacity(pending.len());
    let mut stored = 0;
    for (message, ack) in pending {
        let source: async_nats::Error = match tokio::time::timeout_at(deadline, ack).await {
            Ok(Ok(ack)) => {
                acknowledged.push(message.outbox_id);
                stored += u64::from(!ack.duplicate);
                continue;
            }
            Ok(Err(error)) => error.into(),
            Err(elapsed) => elapsed.into(),
        };
        failure.get_or_insert(RelayError::Publish {
            subject: message.subject.clone(),
            source,
        });
    }
    Published {
        acknowledged,
        stored,
        failure,
    }
}

/// Settings of the sweeper.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Rows claimed per sweep round.
    pub batch_size: i64,
    /// How often the sweeper marks what was dispatched and looks for what was not.
    pub poll_interval: Duration,
    /// How old an unpublished row must be before the sweeper publishes it: its
    /// own dispatch gets this long.
    pub grace: Duration,
    /// How long published rows are kept (for debugging, and to publish again
    /// for a redelivered command) before deletion.
    pub retention: Duration,
    /// How long to wait for JetStream's acknowledgements of one publish batch.
    pub ack_timeout: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            batch_size: 64,
            poll_interval: Duration::from_millis(500),
            grace: Duration::from_secs(2),
            retention: Duration::from_secs(300),
            ack_timeout: Duration::from_secs(5),
        }
    }
}

/// How often published rows past their retention are deleted.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(30);

/// How long the last marking may take on the way out; rows left unmarked are
/// published again by the next sweep, and dropped as duplicates.
const FINAL_MARK_BOUND: Duration = Duration::from_millis(250);

/// Marks dispatched rows published and publishes what was not dispatched,
/// round after round, until shutdown.
pub struct Sweeper {
    /// The service's database.
    pub pool: PgPool,
    /// The dispatcher whose acknowledged rows it marks, and through which it publishes.
    pub dispatcher: Dispatcher,
    /// Timing and batch settings.
    pub settings: SweepSettings,
}

impl Sweeper {
    /// Sweeps until `shutdown`. Errors are logged and retried with backoff: the
    /// outbox keeps every message until NATS or the database is back. Every wait
    /// races the shutdown signal; a round abandoned half way is harmless (its
    /// transaction rolls back, and a row published but not yet marked is
    /// published again and dropped by JetStream's duplicate window).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut last_cleanup = tokio::time::Instant::now();
        let mut wait = self.settings.poll_interval;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => break,
            }
            let Some(round) = shutdown.run_until_cancelled(self.round()).await else {
                break;
            };
            match round {
                Ok(swept) => {
                    backoff = Duration::from_millis(100);
                    wait = if swept as i64 == self.settings.batch_size {
                        Duration::ZERO // more are waiting
                    } else {
                        self.settings.poll_interval
                    };
                }
                Err(error) => {
                    tracing::warn!(error = %crate::error_chain(&error), ?backoff, "outbox relay round failed; retrying");
                    wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
            if last_cleanup.elapsed() >= self.settings.retention.min(CLEANUP_INTERVAL) {
                let cleanup = delete_published(&self.pool, self.settings.retention);
                match shutdown.run_until_cancelled(cleanup).await {
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        tracing::warn!(%error, "could not clean up published outbox rows");
                    }
                    None => break,
                }
                last_cleanup = tokio::time::Instant::now();
            }
        }
        let marking = self.dispatcher.mark_acknowledged(&self.pool);
        if !matches!(
            tokio::time::timeout(FINAL_MARK_BOUND, marking).await,
            Ok(Ok(()))
        ) {
            tracing::debug!("dispatched rows left unmarked; the next sweep publishes them again");
        }
    }

    /// One round: mark what was dispatched, read the backlog into the gauges,
    /// and publish a batch of rows older than the grace period. Returns how
    /// many rows were swept.
    async fn round(&self) -> Result<usize, RelayError> {
        self.dispatcher.mark_acknowledged(&self.pool).await?;
        let grace_ms = i64::try_from(self.settings.grace.as_millis()).unwrap_or(i64::MAX);
        let (pending, overdue, lag): (i64, i64, f64) = sqlx::query_as(
            "SELECT count(*),
                    count(*) FILTER (WHERE created_at < now() - make_interval(secs => $1::double precision / 1000)),
                    coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
               FROM outbox WHERE published_at IS NULL",
        )
        .bind(grace_ms)
        .fetch_one(&self.pool)
        .await?;
        crate::metrics::outbox_backlog(u64::try_from(pending).unwrap_or(0), lag.max(0.0));
        if overdue == 0 {
            return Ok(0);
        }
        sweep_batch(&self.pool, &self.dispatcher, &self.settings).await
    }
}

/// Claims up to a batch of rows that were not dispatched in time, publishes
/// them, waits for their acknowledgements and marks the acknowledged ones.
/// Returns how many were published.
///
/// # Errors
/// If the database fails, or a publish was not acknowledged (the rows that were
/// acknowledged are still marked).
#[tracing::instrument(name = "outbox.sweep", skip_all, fields(published))]
pub async fn sweep_batch(
    pool: &PgPool,
    dispatcher: &Dispatcher,
    settings: &SweepSettings,
) -> Result<usize, RelayError> {
    let grace_ms = i64::try_from(settings.grace.as_millis()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT id, message_id, subject, payload
           FROM outbox
          WHERE published_at IS NULL
            AND created_at < now() - make_interval(secs => $2::double precision / 1000)
          ORDER BY id
          LIMIT $1
          FOR UPDATE SKIP LOCKED",
    )
    .bind(settings.batch_size)
    .bind(grace_ms)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let messages: Vec<Outgoing> = rows.into_iter().map(outgoing_from_row).collect();
    let Published {
        acknowledged,
        stored,
        failure,
    } = publish_all(&dispatcher.jetstream, &messages, settings.ack_timeout).await;
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&acknowledged)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    crate::metrics::outbox_published(stored);
    tracing::Span::current().record("published", acknowledged.len());
    if !acknowledged.is_empty() {
        tracing::info!(
            published = acknowledged.len(),
            "swept outbox rows that were stored but not dispatched"
        );
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(acknowledged.len()),
    }
}

async fn delete_published(pool: &PgPool, retention: Duration) -> Result<(), sqlx::Error> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1::double precision / 1000)")
        .bind(retention_ms)
        .execute(pool)
        .await?;
    Ok(())
}
