//! Stuck sagas: an order PENDING for longer than any saga should take.
//!
//! Every saga step has a deadline after which it is retried or compensated, so
//! a PENDING order that outlives `stuck_after` means the machinery that should
//! finish it (orchestrator, sweeper, relay) is not running or lost the saga.

use chrono::TimeDelta;

use super::PENDING_ORDER_IS_NOT_STUCK;
use crate::report::Violation;
use crate::snapshot::OrderSnapshot;

/// Reports every PENDING order older than `stuck_after`.
pub(super) fn check_stuck_orders(orders: &OrderSnapshot, stuck_after: TimeDelta) -> Vec<Violation> {
    orders
        .orders
        .values()
        .filter(|order| order.is_stuck(orders.read_at, stuck_after))
        .map(|order| {
            let age = orders.read_at - order.created_at;
            Violation::for_order(
                PENDING_ORDER_IS_NOT_STUCK,
                order.order_id,
                format!(
                    "PENDING for {} s, longer than the {} s allowed; its saga is stuck",
                    age.num_seconds(),
                    stuck_after.num_seconds()
                ),
            )
        })
        .collect()
}
