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

use crate::domain::PricedLine;
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
    customer_id: String,
    skus: Vec<String>,
    quantities: Vec<i32>,
    unit_prices: Vec<i64>,
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

/// The saga of `order_id`, locked until the transaction ends, with what its
/// commands are built from (the order's customer and lines), in one statement;
/// `None` if there is none.
#[tracing::instrument(name = "db.lock_saga", skip(tx))]
pub async fn lock_saga(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Option<LockedSaga>, sqlx::Error> {
    let row: Option<SagaRow> = sqlx::query_as(
        "SELECT s.state, s.attempt, s.amount_minor, s.reason, s.release_pending, s.refund_pending,
                s.traceparent, (extract(epoch FROM now() - s.updated_at) * 1000)::bigint AS step_millis,
                o.customer_id,
                array(SELECT l.sku FROM order_lines l WHERE l.order_id = s.order_id ORDER BY l.line_no) AS skus,
                array(SELECT l.quantity FROM order_lines l WHERE l.order_id = s.order_id ORDER BY l.line_no) AS quantities,
                array(SELECT l.unit_price_minor FROM order_lines l WHERE l.order_id = s.order_id ORDER BY l.line_no) AS unit_prices
           FROM sagas s JOIN orders o USING (order_id)
          WHERE s.order_id = $1
            FOR UPDATE OF s",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| {
        let traceparent = row.traceparent.clone();
        let step_millis = row.step_millis;
        let amount_minor = row.amount_minor;
        let customer_id = row.customer_id.clone();
        let lines = row
            .skus
            .iter()
            .zip(&row.quantities)
            .zip(&row.unit_prices)
            .map(|((sku, quantity), unit_price_minor)| PricedLine {
                sku: sku.clone(),
                quantity: *quantity,
                unit_price_minor: *unit_price_minor,
            })
            .collect();
        Ok(LockedSaga {
            state: decode_state(row)?,
            traceparent,
            step_millis,
            amount_minor,
            customer_id,
            lines,
        })
    })
    .transpose()
}

/// A saga read under its row lock, with its order's customer and lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedSaga {
    /// Where it stands.
    pub state: SagaState,
    /// The W3C traceparent of the span that started it.
    pub traceparent: Option<String>,
    /// Milliseconds since the saga last moved (or re-sent its step).
    pub step_millis: i64,
    /// What the saga charges, once the stock is priced (kept after CHARGING).
    pub amount_minor: Option<i64>,
    /// The order's customer.
    pub customer_id: String,
    /// The order's lines. Their skus and quantities never change; their prices
    /// are as of the statement's start, which can predate a transaction this
    /// one waited for on the saga's lock: take the amount from `amount_minor`.
    pub lines: Vec<PricedLine>,
}

/// Stores the saga's new state (inserting it at the start), its deadline, and
/// the transition in the history, in one statement; returns when the
/// transition was recorded. A saga that ends also wakes, on every replica,
/// the watchers of its order (`NOTIFY order_status`; moves on the way are
/// announced by the process that made them, see `saga::updates`).
#[tracing::instrument(name = "db.save_saga", skip(tx, record), fields(to = record.to.name()))]
pub async fn save_saga(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    record: TransitionRecord<'_>,
    step_timeout: Duration,
) -> Result<DateTime<Utc>, sqlx::Error> {
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
    let at: DateTime<Utc> = sqlx::query_scalar(
        "WITH saga AS (
            INSERT INTO sagas (order_id, state, attempt, amount_minor, reason, release_pending, refund_pending, deadline_at, traceparent)
            VALUES ($1, $2, $3, $4, $5, $6, $7,
                    CASE WHEN $8 THEN NULL ELSE now() + make_interval(secs => $9::double precision / 1000) END,
                    nullif($10, ''))
            ON CONFLICT (order_id) DO UPDATE
               SET state = EXCLUDED.state, attempt = EXCLUDED.attempt,
                   amount_minor = coalesce(EXCLUDED.amount_minor, sagas.amount_minor),
                   reason = EXCLUDED.reason, release_pending = EXCLUDED.release_pending,
                   refund_pending = EXCLUDED.refund_pending, deadline_at = EXCLUDED.deadline_at, updated_at = now()
            RETURNING order_id
         )
         INSERT INTO saga_history (order_id, from_state, to_state, event, message_id)
         SELECT order_id, $11, $2, $12, $13 FROM saga
         RETURNING at",
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
    .bind(record.from.map(SagaState::name))
    .bind(record.event)
    .bind(record.message_id)
    .fetch_one(&mut **tx)
    .await?;
    // Entering a final state (not a move within one, such as a late refund).
    if state.is_terminal() && !record.from.is_some_and(SagaState::is_terminal) {
        sqlx::query("SELECT pg_notify('order_status', $1)")
            .bind(order_id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(at)
}

/// Whether any saga's step deadline has passed.
pub async fn any_overdue(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sagas WHERE deadline_at <= now())")
        .fetch_one(pool)
        .await
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
