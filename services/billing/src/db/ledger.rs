//! Queries on `ledger_entries`: the history behind every balance.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

/// What moved the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Money in from the customer.
    Deposit,
    /// Money out for an order.
    Charge,
    /// Money back for an order.
    Refund,
}

impl EntryKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Charge => "charge",
            Self::Refund => "refund",
        }
    }
}

/// Records a movement of money. Runs in the same transaction as the balance
/// change, so the ledger and the balance can never disagree; a second charge or
/// refund for one order violates a unique index.
#[tracing::instrument(name = "db.record_ledger_entry", skip(tx))]
pub async fn record_entry(
    tx: &mut Transaction<'_, Postgres>,
    customer_id: &str,
    kind: EntryKind,
    amount_minor: i64,
    order_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor, order_id)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(customer_id)
    .bind(kind.as_str())
    .bind(amount_minor)
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
