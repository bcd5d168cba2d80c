//! A CANCELLED order: whatever the saga did before it gave up was undone, so
//! the order holds no stock and kept no money.

use super::{
    CANCELLED_ORDER_HAS_NO_CAPTURED_PAYMENT, CANCELLED_ORDER_HOLDS_NO_STOCK,
    CANCELLED_ORDER_LEDGER_NETS_TO_ZERO,
};
use crate::report::Violation;
use crate::snapshot::{Order, Payment, Reservation, Snapshot};
use crate::status::{OrderStatus, PaymentStatus, ReservationStatus};

/// Checks every CANCELLED order against its reservation, payment and ledger.
pub(super) fn check_cancelled_orders(snapshot: &Snapshot) -> Vec<Violation> {
    let cancelled = snapshot
        .order
        .orders
        .values()
        .filter(|order| order.status == OrderStatus::Cancelled);
    let mut violations = Vec::new();
    for order in cancelled {
        let reservation = snapshot.inventory.reservations.get(&order.order_id);
        let payment = snapshot.billing.payments.get(&order.order_id);
        let net_money = snapshot.billing.net_money_for(&order.order_id);
        violations.extend(
            [
                holds_no_stock(order, reservation),
                has_no_captured_payment(order, payment),
                ledger_nets_to_zero(order, net_money),
            ]
            .into_iter()
            .flatten(),
        );
    }
    violations
}

fn holds_no_stock(order: &Order, reservation: Option<&Reservation>) -> Option<Violation> {
    let status = reservation?.status;
    match status {
        ReservationStatus::Released | ReservationStatus::Rejected => None,
        ReservationStatus::Reserved | ReservationStatus::Committed => Some(Violation::for_order(
            CANCELLED_ORDER_HOLDS_NO_STOCK,
            order.order_id,
            format!("reservation is {status}, expected none, REJECTED or RELEASED"),
        )),
    }
}

fn has_no_captured_payment(order: &Order, payment: Option<&Payment>) -> Option<Violation> {
    let payment = payment?;
    match payment.status {
        PaymentStatus::Declined | PaymentStatus::Voided | PaymentStatus::Refunded => None,
        PaymentStatus::Captured => Some(Violation::for_order(
            CANCELLED_ORDER_HAS_NO_CAPTURED_PAYMENT,
            order.order_id,
            format!(
                "payment of {} is CAPTURED, expected none, DECLINED, VOIDED or REFUNDED",
                payment.amount_minor
            ),
        )),
    }
}

fn ledger_nets_to_zero(order: &Order, net_money: i64) -> Option<Violation> {
    (net_money != 0).then(|| {
        Violation::for_order(
            CANCELLED_ORDER_LEDGER_NETS_TO_ZERO,
            order.order_id,
            format!("ledger charges minus refunds are {net_money}, expected 0"),
        )
    })
}
