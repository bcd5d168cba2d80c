//! A CONFIRMED order: its stock is sold and its money taken, exactly once and
//! for exactly the order.

use super::{
    CONFIRMED_ORDER_HAS_CAPTURED_PAYMENT, CONFIRMED_ORDER_HAS_COMMITTED_STOCK,
    CONFIRMED_ORDER_LEDGER_NETS_TO_TOTAL, CONFIRMED_ORDER_TOTAL_MATCHES_LINES, describe_quantities,
};
use crate::report::Violation;
use crate::snapshot::{Order, Payment, Reservation, Snapshot};
use crate::status::{OrderStatus, PaymentStatus, ReservationStatus};

/// Checks every CONFIRMED order against its reservation, payment and ledger.
pub(super) fn check_confirmed_orders(snapshot: &Snapshot) -> Vec<Violation> {
    let confirmed = snapshot
        .order
        .orders
        .values()
        .filter(|order| order.status == OrderStatus::Confirmed);
    let mut violations = Vec::new();
    for order in confirmed {
        let reservation = snapshot.inventory.reservations.get(&order.order_id);
        let payment = snapshot.billing.payments.get(&order.order_id);
        let net_money = snapshot.billing.net_money_for(&order.order_id);
        violations.extend(
            [
                committed_stock(order, reservation),
                captured_payment(order, payment),
                total_matches_lines(order),
                ledger_nets_to_total(order, net_money),
            ]
            .into_iter()
            .flatten(),
        );
    }
    violations
}

fn committed_stock(order: &Order, reservation: Option<&Reservation>) -> Option<Violation> {
    let problem = match reservation {
        None => "no reservation in the inventory database".to_owned(),
        Some(reservation) if reservation.status != ReservationStatus::Committed => {
            format!("reservation is {}, expected COMMITTED", reservation.status)
        }
        Some(reservation) if reservation.lines != order.quantities() => format!(
            "reservation holds {} but the order is for {}",
            describe_quantities(&reservation.lines),
            describe_quantities(&order.quantities())
        ),
        Some(_) => return None,
    };
    Some(Violation::for_order(
        CONFIRMED_ORDER_HAS_COMMITTED_STOCK,
        order.order_id,
        problem,
    ))
}

fn captured_payment(order: &Order, payment: Option<&Payment>) -> Option<Violation> {
    let problem = match payment {
        None => "no payment in the billing database".to_owned(),
        Some(payment) if payment.status != PaymentStatus::Captured => {
            format!("payment is {}, expected CAPTURED", payment.status)
        }
        Some(payment) if payment.amount_minor != order.total_minor => format!(
            "payment captured {} but the order's total is {}",
            payment.amount_minor, order.total_minor
        ),
        Some(_) => return None,
    };
    Some(Violation::for_order(
        CONFIRMED_ORDER_HAS_CAPTURED_PAYMENT,
        order.order_id,
        problem,
    ))
}

fn total_matches_lines(order: &Order) -> Option<Violation> {
    let lines_total = order.lines_total_minor();
    (lines_total != order.total_minor).then(|| {
        Violation::for_order(
            CONFIRMED_ORDER_TOTAL_MATCHES_LINES,
            order.order_id,
            format!(
                "total is {} but its lines add up to {lines_total}",
                order.total_minor
            ),
        )
    })
}

fn ledger_nets_to_total(order: &Order, net_money: i64) -> Option<Violation> {
    (net_money != order.total_minor).then(|| {
        Violation::for_order(
            CONFIRMED_ORDER_LEDGER_NETS_TO_TOTAL,
            order.order_id,
            format!(
                "ledger charges minus refunds are {net_money}, expected the order's total {}",
                order.total_minor
            ),
        )
    })
}
