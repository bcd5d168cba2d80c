//! Queries on `orders` and `order_lines`: an order is always read and written
//! together with its lines.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use microcosm_platform::telemetry::propagation::current_trace_id;

use crate::domain::{CustomerId, NewOrder, Order, OrderId, OrderStatus, PricedLine};

#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: Uuid,
    customer_id: String,
    status: String,
    reason: Option<String>,
    total_minor: i64,
    idempotency_key: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    saga_state: Option<String>,
    trace_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    order_id: Uuid,
    sku: String,
    quantity: i32,
    unit_price_minor: i64,
}

/// The columns of an order, read with its saga's state.
const ORDER_SELECT: &str =
    "SELECT o.order_id, o.customer_id, o.status, o.reason, o.total_minor, o.idempotency_key,
            o.created_at, o.updated_at, s.state AS saga_state, o.trace_id
       FROM orders o LEFT JOIN sagas s USING (order_id)";

/// Stores a new PENDING order with its lines, in one statement, and returns
/// when it was created. `None`, and nothing stored, if an order with the same
/// idempotency key exists already.
#[tracing::instrument(name = "db.insert_order", skip_all, fields(order_id = %order.order_id))]
pub async fn insert_order(
    tx: &mut Transaction<'_, Postgres>,
    order: &NewOrder,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let lines = order.lines.as_slice();
    let line_numbers: Vec<i32> = (0..).take(lines.len()).collect();
    let skus: Vec<&str> = lines.iter().map(|line| line.sku.as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|line| line.quantity.units()).collect();
    sqlx::query_scalar(
        "WITH placed AS (
            INSERT INTO orders (order_id, customer_id, status, idempotency_key, trace_id)
            VALUES ($1, $2, 'PENDING', $3, $4)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING order_id, created_at
         ), lines AS (
            INSERT INTO order_lines (order_id, line_no, sku, quantity)
            SELECT placed.order_id, line.* FROM placed, UNNEST($5::int[], $6::text[], $7::int[]) AS line
         )
         SELECT created_at FROM placed",
    )
    .bind(order.order_id.as_uuid())
    .bind(order.customer_id.as_str())
    .bind(order.idempotency_key.as_str())
    .bind(current_trace_id())
    .bind(&line_numbers)
    .bind(&skus)
    .bind(&quantities)
    .fetch_optional(&mut **tx)
    .await
}

/// The order with `order_id`, if any.
#[tracing::instrument(name = "db.get_order", skip(db))]
pub async fn get_order(db: &PgPool, order_id: OrderId) -> Result<Option<Order>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_SELECT} WHERE o.order_id = $1"
    )))
    .bind(order_id.as_uuid())
    .fetch_optional(db)
    .await?;
    Ok(with_lines(db, row.into_iter().collect()).await?.pop())
}

/// The order placed with `idempotency_key`, if any.
#[tracing::instrument(name = "db.get_order_by_idempotency_key", skip_all)]
pub async fn get_order_by_idempotency_key(
    db: &PgPool,
    idempotency_key: &str,
) -> Result<Option<Order>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_SELECT} WHERE o.idempotency_key = $1"
    )))
    .bind(idempotency_key)
    .fetch_optional(db)
    .await?;
    Ok(with_lines(db, row.into_iter().collect()).await?.pop())
}

/// One page of orders, newest first, starting after (older than) `before`.
#[tracing::instrument(name = "db.list_orders", skip(db))]
pub async fn list_orders(
    db: &PgPool,
    customer_id: Option<&CustomerId>,
    before: Option<OrderId>,
    limit: u32,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_SELECT}
          WHERE ($1::text IS NULL OR o.customer_id = $1)
            AND ($2::uuid IS NULL OR o.order_id < $2)
          ORDER BY o.order_id DESC
          LIMIT $3"
    )))
    .bind(customer_id.map(CustomerId::as_str))
    .bind(before.map(OrderId::as_uuid))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    with_lines(db, rows).await
}

/// Attaches the lines to each order row, with one query for all of them.
async fn with_lines(
    db: impl PgExecutor<'_>,
    rows: Vec<OrderRow>,
) -> Result<Vec<Order>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|row| row.order_id).collect();
    let lines: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, sku, quantity, unit_price_minor
           FROM order_lines
          WHERE order_id = ANY($1)
          ORDER BY order_id, line_no",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|row| {
            let status: OrderStatus = row
                .status
                .parse()
                .map_err(|error: String| sqlx::Error::Decode(error.into()))?;
            let lines = lines
                .iter()
                .filter(|line| line.order_id == row.order_id)
                .map(|line| PricedLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price_minor: line.unit_price_minor,
                })
                .collect();
            Ok(Order {
                order_id: OrderId::from(row.order_id),
                customer_id: row.customer_id,
                status,
                reason: row.reason,
                lines,
                total_minor: row.total_minor,
                idempotency_key: row.idempotency_key,
                created_at: row.created_at,
                updated_at: row.updated_at,
                saga_state: row.saga_state,
                trace_id: row.trace_id,
            })
        })
        .collect()
}

/// Records inventory's prices on the order's lines and the resulting total, in
/// one statement.
#[tracing::instrument(name = "db.set_order_prices", skip(tx, prices))]
pub async fn set_order_prices(
    tx: &mut Transaction<'_, Postgres>,
    order_id: OrderId,
    prices: &[(String, i64)],
    total_minor: i64,
) -> Result<(), sqlx::Error> {
    let skus: Vec<&str> = prices.iter().map(|(sku, _)| sku.as_str()).collect();
    let unit_prices: Vec<i64> = prices.iter().map(|(_, price)| *price).collect();
    sqlx::query(
        "WITH priced AS (
            UPDATE order_lines l SET unit_price_minor = p.price
              FROM UNNEST($2::text[], $3::bigint[]) AS p (sku, price)
             WHERE l.order_id = $1 AND l.sku = p.sku
         )
         UPDATE orders SET total_minor = $4, updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id.as_uuid())
    .bind(&skus)
    .bind(&unit_prices)
    .bind(total_minor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the order to its final status (with a reason when cancelled).
#[tracing::instrument(name = "db.finish_order", skip(tx))]
pub async fn finish_order(
    tx: &mut Transaction<'_, Postgres>,
    order_id: OrderId,
    status: OrderStatus,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $2, reason = $3, updated_at = now() WHERE order_id = $1",
    )
    .bind(order_id.as_uuid())
    .bind(status.as_str())
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
