//! Queries on `accounts`.

use sqlx::{PgExecutor, Postgres, Transaction};

use crate::domain::{Account, CustomerId, DepositAmount};

/// Opens an empty account; `None` if the customer already has one.
#[tracing::instrument(name = "db.open_account", skip(db), fields(customer_id = %customer_id))]
pub async fn open_account(
    db: impl PgExecutor<'_>,
    customer_id: &CustomerId,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO accounts (customer_id) VALUES ($1)
         ON CONFLICT (customer_id) DO NOTHING
         RETURNING customer_id, balance_minor, opened_at",
    )
    .bind(customer_id.as_str())
    .fetch_optional(db)
    .await
}

/// The customer's account, if any.
#[tracing::instrument(name = "db.get_account", skip(db), fields(customer_id = %customer_id))]
pub async fn get_account(
    db: impl PgExecutor<'_>,
    customer_id: &CustomerId,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(
        "SELECT customer_id, balance_minor, opened_at FROM accounts WHERE customer_id = $1",
    )
    .bind(customer_id.as_str())
    .fetch_optional(db)
    .await
}

/// Adds `amount` to the balance; `None` if the customer has no account.
#[tracing::instrument(name = "db.credit_account", skip(tx), fields(customer_id = %customer_id))]
pub async fn credit_account(
    tx: &mut Transaction<'_, Postgres>,
    customer_id: &CustomerId,
    amount: DepositAmount,
) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE accounts
            SET balance_minor = balance_minor + $2, updated_at = now()
          WHERE customer_id = $1
      RETURNING customer_id, balance_minor, opened_at",
    )
    .bind(customer_id.as_str())
    .bind(amount.minor_units())
    .fetch_optional(&mut **tx)
    .await
}
