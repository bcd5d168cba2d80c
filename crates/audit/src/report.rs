//! The audit's result: what the system holds, and every inconsistency found.
//!
//! The report is data first (tests assert on its fields, `microcosm audit
//! --json` serialises them) and prose second: its `Display` is what a person
//! reads after a chaos run, counts first, then one line per violation.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The outcome of one audit.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// The order database's clock when it was read; "stuck" is measured from here.
    pub audited_at: DateTime<Utc>,
    /// How many orders there are, by outcome.
    pub orders: OrderCounts,
    /// Parked messages per database: information, not violations.
    pub dead_letters: DeadLetterCounts,
    /// Every inconsistency found, one rule after another; empty when the system
    /// is consistent.
    pub violations: Vec<Violation>,
}

impl AuditReport {
    /// Whether no check found anything wrong. Dead letters do not count.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Orders by status, and cancelled orders by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderCounts {
    /// Every order in the order database.
    pub total: u64,
    /// Orders whose saga has not finished, stuck ones included.
    pub pending: u64,
    /// The pending orders younger than `stuck_after`: still in flight, so the
    /// confirmed/cancelled checks skip them.
    pub in_flight: u64,
    /// Orders whose stock was committed and payment captured.
    pub confirmed: u64,
    /// Cancelled orders per `orders.reason` (e.g. `insufficient_funds`).
    pub cancelled_by_reason: BTreeMap<String, u64>,
}

impl OrderCounts {
    /// All cancelled orders, whatever the reason.
    pub fn cancelled(&self) -> u64 {
        self.cancelled_by_reason.values().sum()
    }
}

/// How many rows each database's `dead_letters` table holds; `None` where the
/// database has no such table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadLetterCounts {
    /// In the order database.
    pub order: Option<u64>,
    /// In the inventory database.
    pub inventory: Option<u64>,
    /// In the billing database.
    pub billing: Option<u64>,
}

/// One inconsistency: which check found it, about which order, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check's name, one of the constants in [`crate::checks`].
    pub check: &'static str,
    /// The order concerned; `None` for product and account checks, whose
    /// `detail` names the SKU or customer instead.
    pub order_id: Option<Uuid>,
    /// What is wrong, in words, with the values found.
    pub detail: String,
}

impl Violation {
    /// A violation about one order.
    pub(crate) fn for_order(check: &'static str, order_id: Uuid, detail: String) -> Self {
        Self {
            check,
            order_id: Some(order_id),
            detail,
        }
    }

    /// A violation about a product or an account, named in `detail`.
    pub(crate) fn without_order(check: &'static str, detail: String) -> Self {
        Self {
            check,
            order_id: None,
            detail,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.order_id {
            Some(order_id) => write!(f, "{}: order {order_id}: {}", self.check, self.detail),
            None => write!(f, "{}: {}", self.check, self.detail),
        }
    }
}

impl fmt::Display for OrderCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "orders: {} total, {} pending ({} in flight), {} confirmed, {} cancelled",
            self.total,
            self.pending,
            self.in_flight,
            self.confirmed,
            self.cancelled()
        )?;
        if !self.cancelled_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .cancelled_by_reason
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect();
            write!(f, " ({})", reasons.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for DeadLetterCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show =
            |count: Option<u64>| count.map_or_else(|| "no table".to_owned(), |n| n.to_string());
        write!(
            f,
            "dead letters (information only): order {}, inventory {}, billing {}",
            show(self.order),
            show(self.inventory),
            show(self.billing)
        )
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit at {} (order database clock)",
            self.audited_at.format("%Y-%m-%d %H:%M:%S UTC")
        )?;
        writeln!(f, "{}", self.orders)?;
        writeln!(f, "{}", self.dead_letters)?;
        if self.is_clean() {
            return write!(f, "audit clean");
        }
        let noun = if self.violations.len() == 1 {
            "violation"
        } else {
            "violations"
        };
        write!(f, "{} {noun}:", self.violations.len())?;
        for violation in &self.violations {
            write!(f, "\n  {violation}")?;
        }
        Ok(())
    }
}
