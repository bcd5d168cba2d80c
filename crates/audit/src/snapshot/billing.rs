//! Billing's side: account balances, the ledger that explains them, and one
//! payment per order.

use std::collections::BTreeMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::begin_snapshot;
use super::dead_letters::count_dead_letters;
use crate::error::{AuditError, Database};
use crate::status::{LedgerKind, PaymentStatus};

/// A customer's account and its cached balance.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Account {
    pub(crate) customer_id: String,
    pub(crate) balance_minor: i64,
}

/// One movement of money. `amount_minor` is always positive; `kind` gives the sign.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LedgerEntry {
    pub(crate) entry_id: Uuid,
    pub(crate) customer_id: String,
    #[sqlx(try_from = "String")]
    pub(crate) kind: LedgerKind,
    pub(crate) amount_minor: i64,
    /// `None` exactly for deposits.
    pub(crate) order_id: Option<Uuid>,
}

/// An order's payment.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Payment {
    pub(crate) order_id: Uuid,
    #[sqlx(try_from = "String")]
    pub(crate) status: PaymentStatus,
    pub(crate) amount_minor: i64,
}

/// The ledger's charges and refunds for one order, amounts in minor units.
#[derive(Debug, Default)]
pub(crate) struct OrderMoney {
    pub(crate) charges: Vec<i64>,
    pub(crate) refunds: Vec<i64>,
}

impl OrderMoney {
    /// What the customer paid for the order in the end: charges minus refunds.
    pub(crate) fn net(&self) -> i64 {
        let total = |amounts: &[i64]| amounts.iter().fold(0_i64, |sum, n| sum.saturating_add(*n));
        total(&self.charges).saturating_sub(total(&self.refunds))
    }
}

/// Everything the audit reads from the billing database.
#[derive(Debug)]
pub(crate) struct BillingSnapshot {
    pub(crate) accounts: Vec<Account>,
    pub(crate) ledger: Vec<LedgerEntry>,
    /// Keyed by order id, in creation order (order ids are UUIDv7).
    pub(crate) payments: BTreeMap<Uuid, Payment>,
    /// The ledger's order entries grouped by order id.
    pub(crate) money_by_order: BTreeMap<Uuid, OrderMoney>,
    pub(crate) dead_letters: Option<u64>,
}

impl BillingSnapshot {
    /// Charges minus refunds in the ledger for `order_id` (0 if it has none).
    pub(crate) fn net_money_for(&self, order_id: &Uuid) -> i64 {
        self.money_by_order.get(order_id).map_or(0, OrderMoney::net)
    }
}

/// Reads accounts, the ledger and payments in one snapshot.
pub(super) async fn read_billing(pool: &PgPool) -> Result<BillingSnapshot, AuditError> {
    let failed = |what| Database::Billing.read_failed(what);
    let mut tx = begin_snapshot(pool).await.map_err(failed("a snapshot"))?;

    let accounts: Vec<Account> =
        sqlx::query_as("SELECT customer_id, balance_minor FROM accounts ORDER BY customer_id")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("accounts"))?;

    let ledger: Vec<LedgerEntry> = sqlx::query_as(
        "SELECT entry_id, customer_id, kind, amount_minor, order_id
           FROM ledger_entries
          ORDER BY created_at, entry_id",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(failed("ledger_entries"))?;

    let payments: Vec<Payment> =
        sqlx::query_as("SELECT order_id, status, amount_minor FROM payments")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("payments"))?;

    let dead_letters = count_dead_letters(&mut tx)
        .await
        .map_err(failed("dead_letters"))?;
    Ok(BillingSnapshot {
        accounts,
        money_by_order: group_money_by_order(&ledger),
        ledger,
        payments: payments
            .into_iter()
            .map(|payment| (payment.order_id, payment))
            .collect(),
        dead_letters,
    })
}

fn group_money_by_order(ledger: &[LedgerEntry]) -> BTreeMap<Uuid, OrderMoney> {
    let mut money_by_order: BTreeMap<Uuid, OrderMoney> = BTreeMap::new();
    for entry in ledger {
        let Some(order_id) = entry.order_id else {
            continue;
        };
        let money = money_by_order.entry(order_id).or_default();
        match entry.kind {
            LedgerKind::Charge => money.charges.push(entry.amount_minor),
            LedgerKind::Refund => money.refunds.push(entry.amount_minor),
            // The schema gives deposits no order id; counted per account only.
            LedgerKind::Deposit => {}
        }
    }
    money_by_order
}
