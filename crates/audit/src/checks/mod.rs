//! The audit's checks, and the names they report violations under.
//!
//! Each constant below is the `check` of the [`Violation`]s one rule produces;
//! together they are the invariants the saga promises to keep whatever fails.
//! The rules live one concern per module: a confirmed order, a cancelled order,
//! orphans, stock, balances, the ledger, stuck sagas. Each takes the snapshots
//! and returns what it found; none does I/O.

mod balances;
mod cancelled;
mod confirmed;
mod ledger;
mod orphans;
mod stock;
mod stuck;

use std::collections::BTreeMap;

use chrono::TimeDelta;

use crate::report::Violation;
use crate::snapshot::Snapshot;

/// A CONFIRMED order has a COMMITTED reservation whose lines (SKUs and
/// quantities) are the order's lines.
pub const CONFIRMED_ORDER_HAS_COMMITTED_STOCK: &str = "confirmed_order_has_committed_stock";
/// A CONFIRMED order has a CAPTURED payment of exactly its total.
pub const CONFIRMED_ORDER_HAS_CAPTURED_PAYMENT: &str = "confirmed_order_has_captured_payment";
/// A CONFIRMED order's total is the sum of quantity × unit price over its lines.
pub const CONFIRMED_ORDER_TOTAL_MATCHES_LINES: &str = "confirmed_order_total_matches_lines";
/// The ledger's charges minus refunds for a CONFIRMED order equal its total.
pub const CONFIRMED_ORDER_LEDGER_NETS_TO_TOTAL: &str = "confirmed_order_ledger_nets_to_total";

/// A CANCELLED order's reservation is absent, REJECTED or RELEASED: it holds
/// no stock, neither RESERVED nor COMMITTED.
pub const CANCELLED_ORDER_HOLDS_NO_STOCK: &str = "cancelled_order_holds_no_stock";
/// A CANCELLED order's payment is absent, DECLINED, VOIDED or REFUNDED, never CAPTURED.
pub const CANCELLED_ORDER_HAS_NO_CAPTURED_PAYMENT: &str = "cancelled_order_has_no_captured_payment";
/// The ledger's charges minus refunds for a CANCELLED order are zero.
pub const CANCELLED_ORDER_LEDGER_NETS_TO_ZERO: &str = "cancelled_order_ledger_nets_to_zero";

/// Every reservation belongs to an order in the order database.
pub const RESERVATION_HAS_ORDER: &str = "reservation_has_order";
/// Every payment belongs to an order in the order database.
pub const PAYMENT_HAS_ORDER: &str = "payment_has_order";
/// Every charge and refund in the ledger belongs to an order in the order database.
pub const LEDGER_ENTRY_HAS_ORDER: &str = "ledger_entry_has_order";

/// No product has negative `available` or `reserved` stock.
pub const STOCK_IS_NOT_NEGATIVE: &str = "stock_is_not_negative";
/// A product's `reserved` is the sum of its lines in RESERVED reservations.
pub const PRODUCT_RESERVED_MATCHES_RESERVATIONS: &str = "product_reserved_matches_reservations";

/// No account has a negative balance.
pub const BALANCE_IS_NOT_NEGATIVE: &str = "balance_is_not_negative";
/// An account's balance is its deposits − charges + refunds in the ledger.
pub const ACCOUNT_BALANCE_MATCHES_LEDGER: &str = "account_balance_matches_ledger";

/// The ledger holds at most one charge per order.
pub const AT_MOST_ONE_CHARGE_PER_ORDER: &str = "at_most_one_charge_per_order";
/// The ledger holds at most one refund per order.
pub const AT_MOST_ONE_REFUND_PER_ORDER: &str = "at_most_one_refund_per_order";
/// An order's refund has a charge before it to give back.
pub const REFUND_HAS_CHARGE: &str = "refund_has_charge";
/// An order's refund gives back exactly what its charge took.
pub const REFUND_EQUALS_CHARGE: &str = "refund_equals_charge";

/// No order is PENDING for longer than `stuck_after`: its saga would be stuck.
pub const PENDING_ORDER_IS_NOT_STUCK: &str = "pending_order_is_not_stuck";

/// Runs every rule module, in the order the constants above are listed.
pub(crate) fn run_all_checks(snapshot: &Snapshot, stuck_after: TimeDelta) -> Vec<Violation> {
    let mut violations = Vec::new();
    violations.extend(confirmed::check_confirmed_orders(snapshot));
    violations.extend(cancelled::check_cancelled_orders(snapshot));
    violations.extend(orphans::check_orphans(snapshot));
    violations.extend(stock::check_stock(&snapshot.inventory));
    violations.extend(balances::check_balances(&snapshot.billing));
    violations.extend(ledger::check_ledger_per_order(&snapshot.billing));
    violations.extend(stuck::check_stuck_orders(&snapshot.order, stuck_after));
    violations
}

/// Lines as people read them: `KB-01 × 2, MOUSE-01 × 1`, or `none`.
fn describe_quantities(quantities: &BTreeMap<String, i64>) -> String {
    if quantities.is_empty() {
        return "none".to_owned();
    }
    quantities
        .iter()
        .map(|(sku, quantity)| format!("{sku} × {quantity}"))
        .collect::<Vec<_>>()
        .join(", ")
}
