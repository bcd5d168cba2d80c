//! Queries on `payments`, and the balance movements that go with them. Each
//! runs inside the transaction of the command that caused it, together with the
//! inbox row, the ledger entry and the reply in the outbox.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::ledger::EntryKind;
use crate::domain::{DeclineReason, PaymentStatus};

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    /// Who paid.
    pub customer_id: String,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The amount taken (or that would have been).
    pub amount_minor: i64,
    /// Why it was declined.
    pub decline_reason: Option<DeclineReason>,
}

/// The order's payment, locked until the transaction ends.
#[tracing::instrument(name = "db.lock_payment", skip(tx))]
pub async fn lock_payment(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Option<StoredPayment>, sqlx::Error> {
    let row: Option<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT customer_id, status, amount_minor, decline_reason FROM payments WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((customer_id, status, amount_minor, decline_reason)) = row else {
        return Ok(None);
    };
    let decode = |error: String| sqlx::Error::Decode(error.into());
    Ok(Some(StoredPayment {
        customer_id,
        status: status.parse().map_err(decode)?,
        amount_minor,
        decline_reason: decline_reason
            .map(|reason| reason.parse())
            .transpose()
            .map_err(decode)?,
    }))
}

/// The customer's balance, locked; `None` if there is no account.
#[tracing::instrument(name = "db.lock_balance", skip(tx))]
pub async fn lock_balance(
    tx: &mut Transaction<'_, Postgres>,
    customer_id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT balance_minor FROM accounts WHERE customer_id = $1 FOR UPDATE")
        .bind(customer_id)
        .fetch_optional(&mut **tx)
        .await
}

/// Takes the amount from the balance, records the charge and the payment, in
/// one statement.
#[tracing::instrument(name = "db.capture_payment", skip(tx))]
pub async fn capture_payment(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    customer_id: &str,
    amount_minor: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH debited AS (
            UPDATE accounts SET balance_minor = balance_minor - $3, updated_at = now()
             WHERE customer_id = $2
         ), charged AS (
            INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor, order_id)
            VALUES ($4, $2, $5, $3, $1)
         )
         INSERT INTO payments (order_id, customer_id, status, amount_minor) VALUES ($1, $2, 'CAPTURED', $3)",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(amount_minor)
    .bind(Uuid::now_v7())
    .bind(EntryKind::Charge.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a payment that took nothing: DECLINED (with a reason) or VOIDED.
#[tracing::instrument(name = "db.insert_unpaid", skip(tx))]
pub async fn insert_unpaid(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    customer_id: &str,
    status: PaymentStatus,
    amount_minor: i64,
    decline_reason: Option<DeclineReason>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (order_id, customer_id, status, amount_minor, decline_reason) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(status.as_str())
    .bind(amount_minor)
    .bind(decline_reason.map(DeclineReason::as_str))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives a captured payment back: balance, ledger and status together, in one
/// statement.
#[tracing::instrument(name = "db.refund_captured", skip(tx, payment))]
pub async fn refund_captured(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    payment: &StoredPayment,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH credited AS (
            UPDATE accounts SET balance_minor = balance_minor + $3, updated_at = now()
             WHERE customer_id = $2
         ), refunded AS (
            INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor, order_id)
            VALUES ($4, $2, $5, $3, $1)
         )
         UPDATE payments SET status = 'REFUNDED', updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(&payment.customer_id)
    .bind(payment.amount_minor)
    .bind(Uuid::now_v7())
    .bind(EntryKind::Refund.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
