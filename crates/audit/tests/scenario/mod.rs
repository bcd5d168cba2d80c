//! Builds audit scenarios by writing the services' rows directly.
//!
//! The services own these tables; the tests write them as the superuser, one
//! row at a time, so each scenario shows exactly which rows exist. The record_*
//! helpers also apply the side effect the owning service applies in the same
//! transaction (stock moved for a reservation, balance moved for a ledger
//! entry), so a scenario is consistent unless it breaks something on purpose.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use microcosm_audit::{AuditDatabases, AuditOptions, AuditReport, audit};
use microcosm_testkit::{ServiceKind, Stack};
use sqlx::PgPool;
use uuid::Uuid;

/// Superuser pools on the three service databases of one stack.
pub(crate) struct Databases {
    pub(crate) order: PgPool,
    pub(crate) inventory: PgPool,
    pub(crate) billing: PgPool,
}

/// One order line: SKU, quantity and unit price in cents.
#[derive(Clone, Copy)]
pub(crate) struct Line {
    pub(crate) sku: &'static str,
    pub(crate) quantity: i32,
    pub(crate) unit_price_minor: i64,
}

/// `quantity` units of a demo product at its demo price.
pub(crate) fn line(sku: &'static str, quantity: i32) -> Line {
    let unit_price_minor = match sku {
        "KB-01" => 8900,
        "MOUSE-01" => 2900,
        "MON-27" => 24900,
        other => panic!("no demo price for {other}: add it to scenario::line"),
    };
    Line {
        sku,
        quantity,
        unit_price_minor,
    }
}

/// Sum of quantity × unit price: what a correct order's total is.
pub(crate) fn total_of(lines: &[Line]) -> i64 {
    lines
        .iter()
        .map(|line| i64::from(line.quantity) * line.unit_price_minor)
        .sum()
}

/// Where an order's saga is.
pub(crate) enum OrderState {
    /// PENDING, placed just now.
    InFlight,
    /// PENDING, placed this long ago.
    PendingFor(Duration),
    Confirmed,
    /// CANCELLED with this reason.
    Cancelled(&'static str),
}

impl Databases {
    /// Opens superuser pools on the stack's three databases.
    pub(crate) async fn of(stack: &Stack) -> anyhow::Result<Self> {
        Ok(Self {
            order: stack.superuser_pool(ServiceKind::Order).await?,
            inventory: stack.superuser_pool(ServiceKind::Inventory).await?,
            billing: stack.superuser_pool(ServiceKind::Billing).await?,
        })
    }

    /// Runs the audit over the three databases.
    pub(crate) async fn audit(&self, options: &AuditOptions) -> anyhow::Result<AuditReport> {
        let databases = AuditDatabases {
            order: &self.order,
            inventory: &self.inventory,
            billing: &self.billing,
        };
        Ok(audit(databases, options).await?)
    }

    /// Writes an order and its lines; returns its new id.
    pub(crate) async fn insert_order(
        &self,
        customer_id: &str,
        state: OrderState,
        lines: &[Line],
        total_minor: i64,
    ) -> anyhow::Result<Uuid> {
        let order_id = Uuid::now_v7();
        let (status, reason, age) = match state {
            OrderState::InFlight => ("PENDING", None, Duration::ZERO),
            OrderState::PendingFor(age) => ("PENDING", None, age),
            OrderState::Confirmed => ("CONFIRMED", None, Duration::ZERO),
            OrderState::Cancelled(reason) => ("CANCELLED", Some(reason), Duration::ZERO),
        };
        sqlx::query(
            "INSERT INTO orders (order_id, customer_id, status, reason, idempotency_key, total_minor, created_at)
             VALUES ($1, $2, $3, $4, $1::text, $5, now() - make_interval(secs => $6))",
        )
        .bind(order_id)
        .bind(customer_id)
        .bind(status)
        .bind(reason)
        .bind(total_minor)
        .bind(age.as_secs_f64())
        .execute(&self.order)
        .await
        .context("insert order")?;
        for (line_no, line) in (0_i32..).zip(lines) {
            sqlx::query(
                "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(order_id)
            .bind(line_no)
            .bind(line.sku)
            .bind(line.quantity)
            .bind(line.unit_price_minor)
            .execute(&self.order)
            .await
            .context("insert order line")?;
        }
        Ok(order_id)
    }

    /// Writes a reservation with its lines, and moves the stock the way the
    /// inventory service does: RESERVED holds units, COMMITTED sells them,
    /// RELEASED and REJECTED hold nothing. A REJECTED one names its first SKU.
    pub(crate) async fn record_reservation(
        &self,
        order_id: Uuid,
        status: &str,
        lines: &[Line],
    ) -> anyhow::Result<()> {
        let rejected = status == "REJECTED";
        sqlx::query(
            "INSERT INTO reservations (order_id, status, reason, rejected_sku) VALUES ($1, $2, $3, $4)",
        )
        .bind(order_id)
        .bind(status)
        .bind(rejected.then_some("out_of_stock"))
        .bind(lines.first().filter(|_| rejected).map(|line| line.sku))
        .execute(&self.inventory)
        .await
        .context("insert reservation")?;
        if rejected {
            return Ok(());
        }
        for line in lines {
            sqlx::query(
                "INSERT INTO reservation_lines (order_id, sku, quantity, unit_price_minor)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(order_id)
            .bind(line.sku)
            .bind(line.quantity)
            .bind(line.unit_price_minor)
            .execute(&self.inventory)
            .await
            .context("insert reservation line")?;
            let (held, sold) = match status {
                "RESERVED" => (line.quantity, 0),
                "COMMITTED" => (0, line.quantity),
                _ => (0, 0),
            };
            sqlx::query(
                "UPDATE products SET available = available - $2 - $3, reserved = reserved + $2
                  WHERE sku = $1",
            )
            .bind(line.sku)
            .bind(i64::from(held))
            .bind(i64::from(sold))
            .execute(&self.inventory)
            .await
            .context("move stock")?;
        }
        Ok(())
    }

    /// Writes a payment row (a DECLINED one for insufficient funds). The money
    /// itself moves only with [`Databases::record_ledger`].
    pub(crate) async fn record_payment(
        &self,
        order_id: Uuid,
        customer_id: &str,
        status: &str,
        amount_minor: i64,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO payments (order_id, customer_id, status, amount_minor, decline_reason)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(order_id)
        .bind(customer_id)
        .bind(status)
        .bind(amount_minor)
        .bind((status == "DECLINED").then_some("insufficient_funds"))
        .execute(&self.billing)
        .await
        .context("insert payment")?;
        Ok(())
    }

    /// An order still in flight for `customer_id` (so its total is not judged
    /// yet) with these ledger entries against it, `(kind, amount)` in order;
    /// returns its id.
    pub(crate) async fn in_flight_order_with_ledger(
        &self,
        customer_id: &str,
        lines: &[Line],
        entries: &[(&str, i64)],
    ) -> anyhow::Result<Uuid> {
        let total = total_of(lines);
        let order_id = self
            .insert_order(customer_id, OrderState::InFlight, lines, total)
            .await?;
        for (kind, amount) in entries {
            self.record_ledger(customer_id, kind, *amount, Some(order_id))
                .await?;
        }
        Ok(order_id)
    }

    /// Writes a ledger entry and moves the account's balance by it, the way the
    /// billing service does: deposits and refunds add, charges subtract.
    pub(crate) async fn record_ledger(
        &self,
        customer_id: &str,
        kind: &str,
        amount_minor: i64,
        order_id: Option<Uuid>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor, order_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(customer_id)
        .bind(kind)
        .bind(amount_minor)
        .bind(order_id)
        .execute(&self.billing)
        .await
        .context("insert ledger entry")?;
        let signed_amount = if kind == "charge" {
            -amount_minor
        } else {
            amount_minor
        };
        sqlx::query(
            "UPDATE accounts SET balance_minor = balance_minor + $2 WHERE customer_id = $1",
        )
        .bind(customer_id)
        .bind(signed_amount)
        .execute(&self.billing)
        .await
        .context("move balance")?;
        Ok(())
    }

    /// Opens an account with an opening deposit, consistent with its ledger.
    pub(crate) async fn open_account(
        &self,
        customer_id: &str,
        deposit_minor: i64,
    ) -> anyhow::Result<()> {
        sqlx::query("INSERT INTO accounts (customer_id) VALUES ($1)")
            .bind(customer_id)
            .execute(&self.billing)
            .await
            .context("insert account")?;
        self.record_ledger(customer_id, "deposit", deposit_minor, None)
            .await
    }
}

/// Runs one statement: the deliberate damage a scenario does (dropping a guard,
/// drifting a cached sum), spelled out in SQL.
pub(crate) async fn run_sql(pool: &PgPool, sql: &'static str) -> anyhow::Result<()> {
    sqlx::query(sql)
        .execute(pool)
        .await
        .with_context(|| format!("could not run: {sql}"))?;
    Ok(())
}

/// What a report found, as (check, subject) pairs: the order id, or for
/// product and account checks the `product SKU` / `account ID` their detail
/// starts with.
pub(crate) fn findings(report: &AuditReport) -> BTreeSet<(&'static str, String)> {
    report
        .violations
        .iter()
        .map(|violation| {
            let subject = match violation.order_id {
                Some(order_id) => order_id.to_string(),
                None => violation
                    .detail
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            (violation.check, subject)
        })
        .collect()
}

/// Asserts that the report found exactly `expected`, printing the report if not.
pub(crate) fn assert_findings(report: &AuditReport, expected: &[(&'static str, String)]) {
    let expected: BTreeSet<(&'static str, String)> = expected.iter().cloned().collect();
    let found = findings(report);
    assert_eq!(
        found, expected,
        "\nthe audit found something else than expected; its report:\n{report}\n"
    );
    assert_eq!(
        report.violations.len(),
        expected.len(),
        "\none subject was reported twice by a check; the report:\n{report}\n"
    );
}
