//! The deadline sweeper: sagas whose current step got no reply in time.
//!
//! Every sweep interval it locks overdue sagas (`FOR UPDATE SKIP LOCKED`, so
//! replicas share the work) and applies `DeadlinePassed` to each: the machine
//! re-sends the step's command (commands are idempotent) or, past the retry
//! budget, starts compensating. Deadlines live in the database, so a restarted
//! orchestrator picks up every overdue saga where it was.

use std::time::Duration;

use sqlx::PgPool;

use super::driver::{Cause, SagaDriver};
use super::machine::SagaEvent;
use crate::db::sagas;
use crate::domain::OrderId;
use microcosm_platform::service::error_chain;
use microcosm_platform::shutdown::Shutdown;

/// Most overdue sagas handled in one transaction.
const SWEEP_BATCH: i64 = 100;

/// Sweeps every `interval` until shutdown.
pub async fn run_deadline_sweeper(
    pool: PgPool,
    driver: SagaDriver,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut last_census = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.triggered() => return,
        }
        if last_census.elapsed() >= CENSUS_INTERVAL {
            last_census = tokio::time::Instant::now();
            if shutdown
                .unless_triggered(record_sagas_in_flight(&pool))
                .await
                .is_none()
            {
                return;
            }
        }
        // A sweep abandoned by shutdown rolls back; the next process sweeps again.
        let Some(swept) = shutdown
            .unless_triggered(sweep_overdue_sagas(&pool, &driver))
            .await
        else {
            return;
        };
        match swept {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "applied missed deadlines"),
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "deadline sweep failed; will retry")
            }
        }
    }
}

/// How often the sagas in flight are counted for `microcosm.saga.in_flight`.
const CENSUS_INTERVAL: Duration = Duration::from_secs(1);

/// Counts the sagas not yet ended, by state, into `microcosm.saga.in_flight`.
async fn record_sagas_in_flight(pool: &PgPool) {
    let counted: Result<Vec<(String, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT state, count(*) FROM sagas
          WHERE state NOT IN ('CONFIRMED', 'CANCELLED') GROUP BY state",
    )
    .fetch_all(pool)
    .await;
    match counted {
        Ok(counts) => microcosm_platform::metrics::sagas_in_flight(
            ["RESERVING", "CHARGING", "COMMITTING", "COMPENSATING"].map(|state| {
                let count = counts
                    .iter()
                    .find(|(name, _)| name == state)
                    .map_or(0, |(_, count)| u64::try_from(*count).unwrap_or(0));
                (state, count)
            }),
        ),
        Err(error) => tracing::debug!(%error, "could not count the sagas in flight"),
    }
}

/// One sweep: applies `DeadlinePassed` to up to a batch of overdue sagas.
///
/// # Errors
/// If the database fails (nothing of the sweep is kept then).
#[tracing::instrument(name = "saga.sweep_deadlines", skip_all)]
pub async fn sweep_overdue_sagas(pool: &PgPool, driver: &SagaDriver) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let overdue = sagas::lock_overdue_sagas(&mut tx, SWEEP_BATCH).await?;
    let cause = Cause {
        name: "deadline_passed",
        message_id: None,
    };
    let mut applied = 0;
    let mut moves = Vec::new();
    for order_id in &overdue {
        // A savepoint per saga: one saga that cannot be applied must not hold
        // back every other deadline.
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match driver
            .apply(
                &mut savepoint,
                OrderId::from(*order_id),
                &SagaEvent::DeadlinePassed,
                cause,
            )
            .await
        {
            Ok(moved) => {
                savepoint.commit().await?;
                applied += 1;
                moves.push(moved);
            }
            Err(error) => {
                tracing::error!(%order_id, error = %error_chain(&error), "cannot apply a missed deadline; skipping this saga");
                savepoint.rollback().await?;
            }
        }
    }
    tx.commit().await?;
    for moved in &moves {
        moved.record_metrics();
    }
    Ok(applied)
}
