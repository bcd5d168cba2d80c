//! The database pool and migrations.
//!
//! Start-up waits (bounded) for the database, so a service started together with
//! its PostgreSQL (compose, Kubernetes, `microcosm up`) does not crash-loop while
//! the server is still booting. Migrations are embedded in each service binary with
//! `sqlx::migrate!` and applied by [`migrate`]; sqlx holds a PostgreSQL advisory
//! lock while it migrates, so replicas starting together apply each migration once.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use tokio::time::Instant;

use crate::config::DatabaseUrl;

/// Why the database could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The database did not accept a connection before the deadline.
    #[error(
        "could not connect to {url} within {timeout:?} (is PostgreSQL running, and DATABASE_URL right?)"
    )]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// How long we tried.
        timeout: Duration,
        /// The last connection error.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens the pool, retrying until the database accepts a connection or `timeout` passes.
///
/// # Errors
/// [`DatabaseError::Connect`] with the last error once the deadline passes.
pub async fn connect(
    url: &DatabaseUrl,
    max_connections: u32,
    timeout: Duration,
) -> Result<PgPool, DatabaseError> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(max_connections)
            // No ping before each use (a round trip per transaction): a broken
            // connection fails the statement, which is retried like any failure.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url.expose())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(source) if Instant::now() + delay >= deadline => {
                return Err(DatabaseError::Connect {
                    url: url.to_string(),
                    timeout,
                    source,
                });
            }
            Err(error) => {
                tracing::warn!(%error, url = %url, "database not ready; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Applies the messaging tables every service shares (outbox, inbox, dead
/// letters: `crates/messaging/migrations`), the fault flags
/// (`crates/platform/migrations`) and the service's own embedded migrations, as
/// one set ordered by version, under sqlx's advisory lock.
///
/// # Errors
/// If a migration fails or an applied migration was changed after it ran.
pub async fn migrate(pool: &PgPool, service_migrations: &Migrator) -> Result<(), DatabaseError> {
    let mut migrations: Vec<_> = microcosm_messaging::MIGRATOR
        .iter()
        .chain(crate::MIGRATOR.iter())
        .chain(service_migrations.iter())
        .cloned()
        .collect();
    migrations.sort_by_key(|migration| migration.version);
    let migrator = Migrator::with_migrations(migrations);
    migrator.run(pool).await?;
    tracing::info!(
        migrations = migrator.iter().count(),
        "database schema up to date"
    );
    Ok(())
}

/// Whether the database answers a trivial query within `timeout`.
pub async fn is_reachable(pool: &PgPool, timeout: Duration) -> bool {
    let probe = sqlx::query("SELECT 1").execute(pool);
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(_)))
}
