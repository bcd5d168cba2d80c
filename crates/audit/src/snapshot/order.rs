//! The order service's side: every order with its lines, and the database's
//! clock, which decides what "stuck" means.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::begin_snapshot;
use super::dead_letters::count_dead_letters;
use crate::error::{AuditError, Database};
use crate::status::OrderStatus;

/// One line of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OrderLine {
    pub(crate) quantity: i64,
    /// Set from inventory's quote when the stock is reserved; 0 until then.
    pub(crate) unit_price_minor: i64,
}

/// An order and its lines.
#[derive(Debug)]
pub(crate) struct Order {
    pub(crate) order_id: Uuid,
    pub(crate) status: OrderStatus,
    /// Why a CANCELLED order was cancelled; `None` otherwise.
    pub(crate) reason: Option<String>,
    pub(crate) total_minor: i64,
    pub(crate) created_at: DateTime<Utc>,
    /// Keyed by SKU (unique within an order).
    pub(crate) lines: BTreeMap<String, OrderLine>,
}

impl Order {
    /// The quantity ordered per SKU, the shape a reservation's lines have.
    pub(crate) fn quantities(&self) -> BTreeMap<String, i64> {
        self.lines
            .iter()
            .map(|(sku, line)| (sku.clone(), line.quantity))
            .collect()
    }

    /// The sum of quantity × unit price over the lines.
    pub(crate) fn lines_total_minor(&self) -> i64 {
        self.lines
            .values()
            .map(|line| line.quantity.saturating_mul(line.unit_price_minor))
            .fold(0, i64::saturating_add)
    }

    /// Whether the order has been PENDING for longer than `stuck_after` at `now`.
    pub(crate) fn is_stuck(&self, now: DateTime<Utc>, stuck_after: TimeDelta) -> bool {
        self.status == OrderStatus::Pending && now - self.created_at > stuck_after
    }
}

/// Everything the audit reads from the order database.
#[derive(Debug)]
pub(crate) struct OrderSnapshot {
    /// The order database's `now()` when the snapshot was taken: ages are
    /// measured on the clock that wrote `created_at`, not the auditor's.
    pub(crate) read_at: DateTime<Utc>,
    /// Keyed by order id, in creation order (order ids are UUIDv7).
    pub(crate) orders: BTreeMap<Uuid, Order>,
    pub(crate) dead_letters: Option<u64>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: Uuid,
    #[sqlx(try_from = "String")]
    status: OrderStatus,
    reason: Option<String>,
    total_minor: i64,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct OrderLineRow {
    order_id: Uuid,
    sku: String,
    quantity: i32,
    unit_price_minor: i64,
}

/// Reads every order and its lines in one snapshot.
pub(super) async fn read_orders(pool: &PgPool) -> Result<OrderSnapshot, AuditError> {
    let failed = |what| Database::Order.read_failed(what);
    let mut tx = begin_snapshot(pool).await.map_err(failed("a snapshot"))?;

    // Inside the transaction now() is the snapshot's start time.
    let read_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("the clock"))?;

    let order_rows: Vec<OrderRow> =
        sqlx::query_as("SELECT order_id, status, reason, total_minor, created_at FROM orders")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("orders"))?;
    let mut orders: BTreeMap<Uuid, Order> = order_rows
        .into_iter()
        .map(|row| {
            let order = Order {
                order_id: row.order_id,
                status: row.status,
                reason: row.reason,
                total_minor: row.total_minor,
                created_at: row.created_at,
                lines: BTreeMap::new(),
            };
            (row.order_id, order)
        })
        .collect();

    let lines: Vec<OrderLineRow> =
        sqlx::query_as("SELECT order_id, sku, quantity, unit_price_minor FROM order_lines")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("order_lines"))?;
    for line in lines {
        // The foreign key guarantees the order exists.
        if let Some(order) = orders.get_mut(&line.order_id) {
            let order_line = OrderLine {
                quantity: i64::from(line.quantity),
                unit_price_minor: line.unit_price_minor,
            };
            order.lines.insert(line.sku, order_line);
        }
    }

    let dead_letters = count_dead_letters(&mut tx)
        .await
        .map_err(failed("dead_letters"))?;
    Ok(OrderSnapshot {
        read_at,
        orders,
        dead_letters,
    })
}
