//! The number of parked messages in one database, reported as information.
//!
//! A dead letter is a message no consumer could handle. It is not by itself an
//! inconsistency (the saga's deadlines compensate for a lost step), but a
//! non-zero count after a chaos run is worth a look, so the report shows it.

use sqlx::PgConnection;

/// How many rows `dead_letters` holds, or `None` if the database has no such
/// table (a schema from before dead letters existed).
pub(super) async fn count_dead_letters(db: &mut PgConnection) -> Result<Option<u64>, sqlx::Error> {
    let table_exists: bool = sqlx::query_scalar("SELECT to_regclass('dead_letters') IS NOT NULL")
        .fetch_one(&mut *db)
        .await?;
    if !table_exists {
        return Ok(None);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&mut *db)
        .await?;
    Ok(Some(u64::try_from(count).unwrap_or_default()))
}
