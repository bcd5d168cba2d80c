//! Queries on `sagas` and `saga_history`: the saga's durable state.
//!
//! The state machine's [`SagaState`] is stored as explicit columns (state name,
//! attempt, amount, reason, pending compensations) so that it can be read in
//! `psql` while debugging, and so that the CHECKs in the migration hold it honest.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use microcosm_platform::telemetry::propagation::current_trace_context;

use crate::saga::machine::{CancelReason, SagaState};

#[derive(sqlx::FromRow)]
struct SagaRow {
    state: String,
    attempt: i32,
    amount_minor: Option<i64>,
    reason: Option<String>,
    release_pending: bool,
    refund_pending: bool,
    traceparent: Option<String>,
    step_millis: i64,
}

/// One stored transition.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HistoryEntry {
    /// The state before (None at the start).
    pub from_state: Option<String>,
    /// The state after.
    pub to_state: String,
    /// What caused it.
    pub event: String,
    /// The message that caused it.
    pub message_id: Option<Uuid>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What changed, for the history.
#[derive(Debug, Clone, Copy)]
pub struct TransitionRecord<'a> {
    /// The state before (None when the saga starts).
    pub from: Option<SagaState>,
    /// The state after.
    pub to: SagaState,
    /// What caused it.
    pub event: &'a str,
    /// The message that caused it.
    pub message_id: Option<Uuid>,
}

/// The saga of `order_id`, locked until the transaction ends; `None` if there is none.
#[tracing::instrument(name = "db.lock_saga", skip(tx))]
pub async fn lock_saga(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Option<LockedSaga>, sqlx::Error> {
    let row: Option<SagaRow> = sqlx::query_as(
        "SELECT state, attempt, amount_minor, reason, release_pending, refund_pending, traceparent,
                (extract(epoch FROM now() - updated_at) * 1000)::bigint AS step_millis
           FROM sagas WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        let traceparent = row.traceparent.clone();
        let step_millis = row.step_millis;
        Ok(LockedSaga {
            state: decode_state(row)?,
            traceparent,
            step_millis,
        })
    })
    .transpose()
}

/// A saga read under its row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedSaga {
    /// Where it stands.
    pub state: SagaState,
    /// The W3C traceparent of the span that started it.
    pub traceparent: Option<String>,
    /// Milliseconds since the saga last moved (or re-sent its step).
    pub step_millis: i64,
}

/// Stores the saga's new state (inserting it at the start), its deadline, and
/// the transition in the history.
#[tracing::instrument(name = "db.save_saga", skip(tx, record), fields(to = record.to.name()))]
pub async fn save_saga(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    record: TransitionRecord<'_>,
    step_timeout: Duration,
) -> Result<(), sqlx::Error> {
    let state = record.to;
    let (attempt, amount_minor, reason, release_pending, refund_pending) = match state {
        SagaState::Reserving { attempt } | SagaState::Committing { attempt } => {
            (attempt, None, None, false, false)
        }
        SagaState::Charging {
            amount_minor,
            attempt,
        } => (attempt, Some(amount_minor), None, false, false),
        SagaState::Compensating {
            reason,
            release_pending,
            refund_pending,
            attempt,
        } => (attempt, None, Some(reason), release_pending, refund_pending),
        SagaState::Confirmed => (1, None, None, false, false),
        SagaState::Cancelled { reason } => (1, None, Some(reason), false, false),
    };
    let timeout_ms = i64::try_from(step_timeout.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO sagas (order_id, state, attempt, amount_minor, reason, release_pending, refund_pending, deadline_at, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
                 CASE WHEN $8 THEN NULL ELSE now() + make_interval(secs => $9::double precision / 1000) END,
                 nullif($10, ''))
         ON CONFLICT (order_id) DO UPDATE
            SET state = EXCLUDED.state, attempt = EXCLUDED.attempt,
                amount_minor = coalesce(EXCLUDED.amount_minor, sagas.amount_minor),
                reason = EXCLUDED.reason, release_pending = EXCLUDED.release_pending,
                refund_pending = EXCLUDED.refund_pending, deadline_at = EXCLUDED.deadline_at, updated_at = now()",
    )
    .bind(order_id)
    .bind(state.name())
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .bind(amount_minor)
    .bind(reason.map(CancelReason::as_str))
    .bind(release_pending)
    .bind(refund_pending)
    .bind(state.is_terminal())
    .bind(timeout_ms)
    .bind(current_trace_context().traceparent)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO saga_history (order_id, from_state, to_state, event, message_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order_id)
    .bind(record.from.map(SagaState::name))
    .bind(state.name())
    .bind(record.event)
    .bind(record.message_id)
    .execute(&mut **tx)
    .await?;
    // Wake WatchOrder streams and waiting PlaceOrder calls, on every replica.
    sqlx::query("SELECT pg_notify('order_status', $1)")
        .bind(order_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sagas whose step deadline has passed, locked (skipping those another
/// replica is handling), oldest deadline first.
#[tracing::instrument(name = "db.lock_overdue_sagas", skip(tx))]
pub async fn lock_overdue_sagas(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM sagas
          WHERE deadline_at <= now()
          ORDER BY deadline_at
          LIMIT $1
          FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// The saga's state name, for orders read without their saga locked.
pub async fn saga_state_name(pool: &PgPool, order_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT state FROM sagas WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// Every transition of the order's saga, oldest first.
#[tracing::instrument(name = "db.saga_history", skip(pool))]
pub async fn saga_history(pool: &PgPool, order_id: Uuid) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT from_state, to_state, event, message_id, at FROM saga_history WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

fn decode_state(row: SagaRow) -> Result<SagaState, sqlx::Error> {
    let decode = |error: String| sqlx::Error::Decode(error.into());
    let attempt = u32::try_from(row.attempt).unwrap_or(1);
    let reason = || -> Result<CancelReason, sqlx::Error> {
        row.reason
            .as_deref()
            .ok_or_else(|| decode(format!("saga in state {} has no reason", row.state)))?
            .parse()
            .map_err(decode)
    };
    Ok(match row.state.as_str() {
        "RESERVING" => SagaState::Reserving { attempt },
        "CHARGING" => SagaState::Charging {
            amount_minor: row.amount_minor.unwrap_or(0),
            attempt,
        },
        "COMMITTING" => SagaState::Committing { attempt },
        "COMPENSATING" => SagaState::Compensating {
            reason: reason()?,
            release_pending: row.release_pending,
            refund_pending: row.refund_pending,
            attempt,
        },
        "CONFIRMED" => SagaState::Confirmed,
        "CANCELLED" => SagaState::Cancelled { reason: reason()? },
        other => return Err(decode(format!("unknown saga state {other:?}"))),
    })
}
