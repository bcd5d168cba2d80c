//! Orphans: inventory or billing rows for an order the order database has
//! never heard of. Stock held or money taken for no order is lost to everyone.

use super::{LEDGER_ENTRY_HAS_ORDER, PAYMENT_HAS_ORDER, RESERVATION_HAS_ORDER};
use crate::report::Violation;
use crate::snapshot::Snapshot;

/// Finds reservations, payments and ledger charges or refunds without an order.
pub(super) fn check_orphans(snapshot: &Snapshot) -> Vec<Violation> {
    let orders = &snapshot.order.orders;
    let mut violations = Vec::new();

    for (order_id, reservation) in &snapshot.inventory.reservations {
        if !orders.contains_key(order_id) {
            violations.push(Violation::for_order(
                RESERVATION_HAS_ORDER,
                *order_id,
                format!(
                    "{} reservation for an order the order database does not have",
                    reservation.status
                ),
            ));
        }
    }

    for (order_id, payment) in &snapshot.billing.payments {
        if !orders.contains_key(order_id) {
            violations.push(Violation::for_order(
                PAYMENT_HAS_ORDER,
                *order_id,
                format!(
                    "{} payment of {} for an order the order database does not have",
                    payment.status, payment.amount_minor
                ),
            ));
        }
    }

    for entry in &snapshot.billing.ledger {
        let Some(order_id) = entry.order_id else {
            continue;
        };
        if !orders.contains_key(&order_id) {
            violations.push(Violation::for_order(
                LEDGER_ENTRY_HAS_ORDER,
                order_id,
                format!(
                    "ledger {} {} of {} to {} is for an order the order database does not have",
                    entry.kind, entry.entry_id, entry.amount_minor, entry.customer_id
                ),
            ));
        }
    }
    violations
}
