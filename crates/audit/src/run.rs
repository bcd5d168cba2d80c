//! The audit's entry point: read the three snapshots, run every check, count.

use std::time::Duration;

use chrono::TimeDelta;
use sqlx::PgPool;

use crate::checks;
use crate::error::AuditError;
use crate::report::{AuditReport, DeadLetterCounts, OrderCounts};
use crate::snapshot::{OrderSnapshot, Snapshot};
use crate::status::OrderStatus;

/// How long an order may stay PENDING before the audit calls it stuck, unless
/// [`AuditOptions::stuck_after`] says otherwise. Comfortably longer than a saga
/// takes, even with its step deadlines and a retry or two.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(60);

/// The three service databases, each as its own pool: they are separate
/// databases (possibly on separate servers), so no one connection sees all three.
#[derive(Debug, Clone, Copy)]
pub struct AuditDatabases<'a> {
    /// The order service's database.
    pub order: &'a PgPool,
    /// The inventory service's database.
    pub inventory: &'a PgPool,
    /// The billing service's database.
    pub billing: &'a PgPool,
}

/// How strict the audit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// A PENDING order older than this is a violation (its saga is stuck); a
    /// younger one is in flight and not checked yet. Default [`DEFAULT_STUCK_AFTER`].
    pub stuck_after: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self {
            stuck_after: DEFAULT_STUCK_AFTER,
        }
    }
}

/// Reads the three databases and checks that they agree.
///
/// Meant for a system at rest (after a chaos run has healed): orders still in
/// flight are counted but not checked, and a saga that moves between the reads
/// of two databases can look inconsistent for that one audit.
///
/// # Errors
/// [`AuditError::Read`] if any database cannot be read; the audit then proves
/// nothing and returns no partial report.
pub async fn audit(
    dbs: AuditDatabases<'_>,
    options: &AuditOptions,
) -> Result<AuditReport, AuditError> {
    let snapshot = Snapshot::read(&dbs).await?;
    // A duration too large for chrono means "never stuck".
    let stuck_after = TimeDelta::from_std(options.stuck_after).unwrap_or(TimeDelta::MAX);
    Ok(AuditReport {
        audited_at: snapshot.order.read_at,
        orders: count_orders(&snapshot.order, stuck_after),
        dead_letters: DeadLetterCounts {
            order: snapshot.order.dead_letters,
            inventory: snapshot.inventory.dead_letters,
            billing: snapshot.billing.dead_letters,
        },
        violations: checks::run_all_checks(&snapshot, stuck_after),
    })
}

fn count_orders(snapshot: &OrderSnapshot, stuck_after: TimeDelta) -> OrderCounts {
    let mut counts = OrderCounts::default();
    for order in snapshot.orders.values() {
        counts.total += 1;
        match order.status {
            OrderStatus::Pending => {
                counts.pending += 1;
                if !order.is_stuck(snapshot.read_at, stuck_after) {
                    counts.in_flight += 1;
                }
            }
            OrderStatus::Confirmed => counts.confirmed += 1,
            OrderStatus::Cancelled => {
                let reason = order.reason.clone().unwrap_or_default();
                *counts.cancelled_by_reason.entry(reason).or_default() += 1;
            }
        }
    }
    counts
}
