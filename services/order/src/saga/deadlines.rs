//! The deadline sweeper: sagas whose current step got no reply in time.
//!
//! Every sweep interval it locks overdue sagas (`FOR UPDATE SKIP LOCKED`, so
//! replicas share the work) and applies `DeadlinePassed` to each: the machine
//! re-sends the step's command (commands are idempotent) or, past the retry
//! budget, starts compensating. Deadlines live in the database, so a restarted
//! orchestrator picks up every overdue saga where it was.

use std::time::Duration;

use sqlx::PgPool;

use microcosm_messaging::outbox::Dispatcher;

use super::driver::{Applied, Cause, SagaDriver};
use super::machine::SagaEvent;
use super::updates::OrderUpdates;
use crate::db::sagas;
use crate::domain::OrderId;
use microcosm_platform::service::error_chain;
use microcosm_platform::shutdown::Shutdown;

/// Most overdue sagas handled in one transaction.
const SWEEP_BATCH: i64 = 100;

/// What the sweeper works with.
#[derive(Debug, Clone)]
pub struct DeadlineSweeper {
    /// The service's database.
    pub pool: PgPool,
    /// Applies `DeadlinePassed`.
    pub driver: SagaDriver,
    /// Publishes the re-sent commands once a sweep committed.
    pub dispatcher: Dispatcher,
    /// Announces the moves.
    pub updates: OrderUpdates,
}

/// Sweeps every `interval` until shutdown.
pub async fn run_deadline_sweeper(
    sweeper: DeadlineSweeper,
    interval: Duration,
    shutdown: Shutdown,
) {
    let pool = &sweeper.pool;
    let mut last_census = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.triggered() => return,
        }
        if last_census.elapsed() >= CENSUS_INTERVAL {
            last_census = tokio::time::Instant::now();
            if shutdown
                .unless_triggered(record_sagas_in_flight(pool))
                .await
                .is_none()
            {
                return;
            }
        }
        // A sweep abandoned by shutdown rolls back; the next process sweeps again.
        let Some(swept) = shutdown
            .unless_triggered(sweep_overdue_sagas(&sweeper))
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
pub async fn sweep_overdue_sagas(sweeper: &DeadlineSweeper) -> Result<usize, sqlx::Error> {
    // One cheap look first: a transaction of three statements four times a
    // second for nothing would be most of an idle service's work.
    if !sagas::any_overdue(&sweeper.pool).await? {
        return Ok(0);
    }
    let mut tx = sweeper.pool.begin().await?;
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
        match sweeper
            .driver
            .apply(
                &mut savepoint,
                OrderId::from(*order_id),
                &SagaEvent::DeadlinePassed,
                cause,
            )
            .await
        {
            Ok(step) => {
                savepoint.commit().await?;
                applied += 1;
                moves.push((*order_id, step));
            }
            Err(error) => {
                tracing::error!(%order_id, error = %error_chain(&error), "cannot apply a missed deadline; skipping this saga");
                savepoint.rollback().await?;
            }
        }
    }
    tx.commit().await?;
    let mut outgoing = Vec::new();
    for (order_id, step) in moves {
        step.applied.record_metrics();
        if matches!(step.applied, Applied::Moved { .. }) {
            sweeper.updates.moved(order_id);
        }
        outgoing.extend(step.outgoing);
    }
    if let Err(error) = sweeper.dispatcher.dispatch(&outgoing).await {
        tracing::warn!(error = %error_chain(&error), "could not publish the re-sent commands; the outbox sweeper will");
    }
    Ok(applied)
}
