//! The ledger per order: one charge at most, one refund at most, and a refund
//! only ever gives back what the charge took.
//!
//! The billing schema enforces "once per order and kind" with a unique index;
//! the audit checks it anyway, because it is what an at-least-once message
//! delivery would break first if the index were ever dropped or bypassed.
//! These checks hold for every order, in flight or not.

use super::{
    AT_MOST_ONE_CHARGE_PER_ORDER, AT_MOST_ONE_REFUND_PER_ORDER, REFUND_EQUALS_CHARGE,
    REFUND_HAS_CHARGE,
};
use crate::report::Violation;
use crate::snapshot::BillingSnapshot;

/// Checks the charges and refunds of every order in the ledger.
pub(super) fn check_ledger_per_order(billing: &BillingSnapshot) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (order_id, money) in &billing.money_by_order {
        if money.charges.len() > 1 {
            violations.push(Violation::for_order(
                AT_MOST_ONE_CHARGE_PER_ORDER,
                *order_id,
                format!("{} charges: {:?}", money.charges.len(), money.charges),
            ));
        }
        if money.refunds.len() > 1 {
            violations.push(Violation::for_order(
                AT_MOST_ONE_REFUND_PER_ORDER,
                *order_id,
                format!("{} refunds: {:?}", money.refunds.len(), money.refunds),
            ));
        }
        match money.charges.as_slice() {
            [] if !money.refunds.is_empty() => violations.push(Violation::for_order(
                REFUND_HAS_CHARGE,
                *order_id,
                format!("refunded {:?} but never charged", money.refunds),
            )),
            [charge] => {
                let mismatched = money.refunds.iter().filter(|refund| *refund != charge);
                for refund in mismatched {
                    violations.push(Violation::for_order(
                        REFUND_EQUALS_CHARGE,
                        *order_id,
                        format!("refunded {refund} but charged {charge}"),
                    ));
                }
            }
            // No money moved, or several charges (reported above, and then
            // no single charge to compare a refund with).
            _ => {}
        }
    }
    violations
}
