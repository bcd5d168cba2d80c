//! Queries on `fault_flags`.

use std::collections::HashMap;

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use super::FaultFlag;

/// Every stored flag by name.
pub(super) async fn load_flags(pool: &PgPool) -> Result<HashMap<String, u32>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM fault_flags")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, value)| (name, u32::try_from(value).unwrap_or(u32::MAX)))
        .collect())
}

/// Stores `value` for `flag` and tells every replica.
pub(super) async fn store_flag(
    pool: &PgPool,
    flag: FaultFlag,
    value: u32,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO fault_flags (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(flag.name())
    .bind(i64::from(value))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('fault_flags', $1)")
        .bind(flag.name())
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Counts a counted flag (owed crashes, lost replies) one down; `false` if it
/// was at 0 already (another replica took the last one).
pub(super) async fn take_one(pool: &PgPool, flag: FaultFlag) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE fault_flags SET value = value - 1, updated_at = now()
          WHERE name = $1 AND value > 0",
    )
    .bind(flag.name())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// A listener for changes.
pub(super) async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen("fault_flags").await?;
    Ok(listener)
}
