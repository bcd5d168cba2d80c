//! The inbox: which messages this service has already acted on.
//!
//! A consumer calls [`record_inbox_message`] inside the transaction that applies
//! the message's effect. If the id is new, the effect commits together with it;
//! if it was seen before (a redelivery, or a duplicate publish past JetStream's
//! window) the consumer skips the effect. A *redelivery* also publishes again
//! what its first handling stored in the outbox: a reply lost after JetStream
//! acknowledged it (JetStream acknowledges before it syncs to disk) reaches the
//! saga after all. Either way the effect happens exactly once.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::consumer::{Delivery, Handled, HandlingError};
use super::outbox::{self, Outgoing};

/// Records `message_id` as handled by `consumer`; `false` if it was already (the
/// caller then commits without applying anything, which keeps the count of
/// duplicate deliveries).
///
/// # Errors
/// If the database fails.
#[tracing::instrument(name = "db.record_inbox_message", skip(tx))]
pub async fn record_inbox_message(
    tx: &mut Transaction<'_, Postgres>,
    message_id: Uuid,
    subject: &str,
    consumer: &str,
) -> Result<bool, sqlx::Error> {
    // A duplicate is counted (and the caller commits that count), so redeliveries
    // that were absorbed stay visible.
    sqlx::query_scalar(
        "INSERT INTO inbox (message_id, subject, consumer) VALUES ($1, $2, $3)
         ON CONFLICT (message_id) DO UPDATE SET duplicate_deliveries = inbox.duplicate_deliveries + 1
         RETURNING duplicate_deliveries = 0",
    )
    .bind(message_id)
    .bind(subject)
    .bind(consumer)
    .fetch_one(&mut **tx)
    .await
}

/// Whether a delivery is new.
#[derive(Debug)]
pub enum Begun {
    /// The first delivery: apply its effect in this transaction, whose inbox
    /// row is written already.
    New(Transaction<'static, Postgres>),
    /// Applied before: these are the messages its first handling stored, to
    /// be published again.
    Applied(Vec<Outgoing>),
}

/// Opens the transaction that applies `delivery` and records its message in the
/// inbox first. [`Begun::Applied`] if the message was applied before: the
/// duplicate is counted and committed, and, if JetStream is redelivering it,
/// what it caused is read back to be published again.
///
/// # Errors
/// If the database fails.
pub async fn begin_unless_applied(
    pool: &PgPool,
    delivery: &Delivery,
) -> Result<Begun, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let message_id = delivery.message.message_id;
    if record_inbox_message(&mut tx, message_id, &delivery.subject, delivery.consumer).await? {
        return Ok(Begun::New(tx));
    }
    // Only a redelivery (JetStream delivering the same stream message again)
    // means this handler's first attempt may not have been followed by its
    // replies. A copy published anew (a sweep, or a re-publish like this one,
    // past JetStream's duplicate window) is a first delivery of a message that
    // was handled: publishing again what it caused would replay the rest of
    // the saga one more time, down to its final events.
    let caused = if delivery.attempt > 1 {
        outbox::caused_by(&mut tx, message_id).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    tracing::info!(%message_id, attempt = delivery.attempt, republished = caused.len(), "duplicate delivery; already applied");
    Ok(Begun::Applied(caused))
}

/// Ends the handling of a command: `reply` goes into the outbox, caused by the
/// command and correlated with its saga, in the same transaction as the inbox row
/// and the command's effect, which then commits. `producer` names the service.
///
/// The reply is returned for dispatch once committed.
///
/// # Errors
/// A transient [`HandlingError`] if the outbox write or the commit fails (the
/// command is then redelivered and nothing of it was kept).
pub async fn commit_with_reply(
    mut tx: Transaction<'static, Postgres>,
    delivery: &Delivery,
    reply: microcosm_proto::messaging::envelope::Body,
    producer: &'static str,
) -> Result<Handled, HandlingError> {
    let message = &delivery.message;
    tracing::debug!(
        reply = super::envelope::type_name(&reply),
        "command applied"
    );
    let envelope = super::envelope::new_envelope(
        reply,
        message.correlation_id,
        Some(message.message_id),
        producer,
    );
    let reply = outbox::enqueue(&mut tx, vec![envelope]).await?;
    tx.commit().await?;
    Ok(Handled::dispatch(reply))
}

/// The error for a message on `service`'s command subjects that is not one of its
/// commands: it can never be handled, so it is dead-lettered.
pub fn not_a_command(
    service: &str,
    body: &microcosm_proto::messaging::envelope::Body,
) -> HandlingError {
    HandlingError::Permanent(format!(
        "{service} has no command {:?}",
        super::envelope::type_name(body)
    ))
}
