//! Balances: never negative, and always what the ledger adds up to.
//!
//! `accounts.balance_minor` is a cached sum kept for a cheap, lockable read;
//! the ledger is the history that explains it. Re-adding the ledger catches a
//! balance update without its entry, or an entry without its update.

use std::collections::BTreeMap;

use super::{ACCOUNT_BALANCE_MATCHES_LEDGER, BALANCE_IS_NOT_NEGATIVE};
use crate::report::Violation;
use crate::snapshot::BillingSnapshot;
use crate::status::LedgerKind;

/// Checks every account's balance.
pub(super) fn check_balances(billing: &BillingSnapshot) -> Vec<Violation> {
    let ledger_balances = balances_from_ledger(billing);
    let mut violations = Vec::new();
    for account in &billing.accounts {
        if account.balance_minor < 0 {
            violations.push(Violation::without_order(
                BALANCE_IS_NOT_NEGATIVE,
                format!(
                    "account {}: balance is {}",
                    account.customer_id, account.balance_minor
                ),
            ));
        }
        let from_ledger = ledger_balances
            .get(account.customer_id.as_str())
            .copied()
            .unwrap_or(0);
        if account.balance_minor != from_ledger {
            violations.push(Violation::without_order(
                ACCOUNT_BALANCE_MATCHES_LEDGER,
                format!(
                    "account {}: balance is {} but the ledger adds up to {from_ledger}",
                    account.customer_id, account.balance_minor
                ),
            ));
        }
    }
    violations
}

/// Deposits − charges + refunds per customer.
fn balances_from_ledger(billing: &BillingSnapshot) -> BTreeMap<&str, i64> {
    let mut balances: BTreeMap<&str, i64> = BTreeMap::new();
    for entry in &billing.ledger {
        let signed_amount = match entry.kind {
            LedgerKind::Deposit | LedgerKind::Refund => entry.amount_minor,
            LedgerKind::Charge => -entry.amount_minor,
        };
        let balance = balances.entry(entry.customer_id.as_str()).or_default();
        *balance = balance.saturating_add(signed_amount);
    }
    balances
}
