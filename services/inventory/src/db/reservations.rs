//! Queries on `reservations` and `reservation_lines`, and the stock movements
//! that go with them. Each runs inside the transaction of the command that
//! caused it, together with the inbox row and the reply in the outbox.

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::domain::{PricedLine, Rejection, ReservationStatus, StockLevel};

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReservation {
    /// Where it stands.
    pub status: ReservationStatus,
    /// Why it was rejected, for REJECTED.
    pub rejection: Option<Rejection>,
    /// The held (or sold, or released) lines; empty for a tombstone or rejection.
    pub lines: Vec<PricedLine>,
}

/// The order's reservation with its lines, locked until the transaction ends,
/// in one statement.
#[tracing::instrument(name = "db.lock_reservation", skip(tx))]
pub async fn lock_reservation(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<Option<StoredReservation>, sqlx::Error> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        Vec<String>,
        Vec<i32>,
        Vec<i64>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT r.status, r.reason, r.rejected_sku,
                array(SELECT l.sku FROM reservation_lines l WHERE l.order_id = r.order_id ORDER BY l.sku),
                array(SELECT l.quantity FROM reservation_lines l WHERE l.order_id = r.order_id ORDER BY l.sku),
                array(SELECT l.unit_price_minor FROM reservation_lines l WHERE l.order_id = r.order_id ORDER BY l.sku)
           FROM reservations r WHERE r.order_id = $1 FOR UPDATE OF r",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((status, reason, rejected_sku, skus, quantities, prices)) = row else {
        return Ok(None);
    };
    let decode = |error: String| sqlx::Error::Decode(error.into());
    let status: ReservationStatus = status.parse().map_err(decode)?;
    let rejection = match reason {
        Some(reason) => Some(Rejection {
            reason: reason.parse().map_err(decode)?,
            sku: rejected_sku.unwrap_or_default(),
        }),
        None => None,
    };
    let lines = skus
        .into_iter()
        .zip(quantities)
        .zip(prices)
        .map(|((sku, quantity), unit_price_minor)| PricedLine {
            sku,
            quantity,
            unit_price_minor,
        })
        .collect();
    Ok(Some(StoredReservation {
        status,
        rejection,
        lines,
    }))
}

/// Prices and stock of `skus`, locked in sku order (a fixed order, so two
/// reservations of overlapping products cannot deadlock).
#[tracing::instrument(name = "db.lock_stock", skip(tx))]
pub async fn lock_stock(
    tx: &mut Transaction<'_, Postgres>,
    skus: &[&str],
) -> Result<Vec<StockLevel>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sku, unit_price_minor, available FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
    )
    .bind(skus)
    .fetch_all(&mut **tx)
    .await
}

/// Moves the lines' units from available to reserved and records the
/// reservation with its lines, in one statement (the products are locked
/// already, by [`lock_stock`]).
#[tracing::instrument(name = "db.insert_reserved", skip(tx, lines))]
pub async fn insert_reserved(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    lines: &[PricedLine],
) -> Result<(), sqlx::Error> {
    let (skus, quantities, prices) = columns(lines);
    sqlx::query(
        "WITH held AS (
            UPDATE products p
               SET available = p.available - l.quantity, reserved = p.reserved + l.quantity, updated_at = now()
              FROM UNNEST($2::text[], $3::int[]) AS l (sku, quantity)
             WHERE p.sku = l.sku
         ), reservation AS (
            INSERT INTO reservations (order_id, status) VALUES ($1, 'RESERVED')
            RETURNING order_id
         )
         INSERT INTO reservation_lines (order_id, sku, quantity, unit_price_minor)
         SELECT reservation.order_id, line.* FROM reservation, UNNEST($2::text[], $3::int[], $4::bigint[]) AS line",
    )
    .bind(order_id)
    .bind(&skus)
    .bind(&quantities)
    .bind(&prices)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records a refused reservation (nothing is held).
#[tracing::instrument(name = "db.insert_rejected", skip(tx))]
pub async fn insert_rejected(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    rejection: &Rejection,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO reservations (order_id, status, reason, rejected_sku) VALUES ($1, 'REJECTED', $2, $3)")
        .bind(order_id)
        .bind(rejection.reason.as_str())
        .bind(&rejection.sku)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sells a RESERVED reservation: its units leave `reserved` for good.
#[tracing::instrument(name = "db.commit_reserved", skip(tx, lines))]
pub async fn commit_reserved(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    lines: &[PricedLine],
) -> Result<(), sqlx::Error> {
    let (skus, quantities, _) = columns(lines);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH {LOCKED_IN_SKU_ORDER},
         sold AS (
            UPDATE products p
               SET reserved = p.reserved - l.quantity, updated_at = now()
              FROM {LINES_OF_LOCKED} AS l
             WHERE p.sku = l.sku
         )
         UPDATE reservations SET status = $4, updated_at = now() WHERE order_id = $3"
    )))
    .bind(&skus)
    .bind(&quantities)
    .bind(order_id)
    .bind(ReservationStatus::Committed.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Gives a RESERVED or COMMITTED reservation's units back to `available`.
#[tracing::instrument(name = "db.release_held", skip(tx, reservation))]
pub async fn release_held(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
    reservation: &StoredReservation,
) -> Result<(), sqlx::Error> {
    let (skus, quantities, _) = columns(&reservation.lines);
    // A reserved unit leaves `reserved`; a sold (committed) unit comes back from the customer.
    let from_reserved = reservation.status == ReservationStatus::Reserved;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH {LOCKED_IN_SKU_ORDER},
         returned AS (
            UPDATE products p
               SET available = p.available + l.quantity,
                   reserved = p.reserved - CASE WHEN $5 THEN l.quantity ELSE 0 END,
                   updated_at = now()
              FROM {LINES_OF_LOCKED} AS l
             WHERE p.sku = l.sku
         )
         UPDATE reservations SET status = $4, updated_at = now() WHERE order_id = $3"
    )))
    .bind(&skus)
    .bind(&quantities)
    .bind(order_id)
    .bind(ReservationStatus::Released.as_str())
    .bind(from_reserved)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A CTE that locks the products `$1` in sku order. Every statement that moves
/// stock for several products takes their locks this way, so reservations,
/// commits and releases of overlapping orders cannot deadlock (an
/// `UPDATE ... FROM UNNEST` alone locks in whatever order its plan visits).
const LOCKED_IN_SKU_ORDER: &str =
    "locked AS MATERIALIZED (SELECT sku FROM products WHERE sku = ANY($1) ORDER BY sku FOR UPDATE)";

/// The lines `$1`/`$2` (sku, quantity), joined to the locked products so that
/// the update reading them runs after the locks are taken.
const LINES_OF_LOCKED: &str = "(SELECT l.sku, l.quantity FROM UNNEST($1::text[], $2::int[]) AS l (sku, quantity) JOIN locked USING (sku))";

/// Records that the order's stock was released before any reservation arrived,
/// so a late ReserveStock is refused instead of holding stock for a dead order.
#[tracing::instrument(name = "db.insert_release_tombstone", skip(tx))]
pub async fn insert_release_tombstone(
    tx: &mut Transaction<'_, Postgres>,
    order_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO reservations (order_id, status) VALUES ($1, 'RELEASED')")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn columns(lines: &[PricedLine]) -> (Vec<&str>, Vec<i32>, Vec<i64>) {
    (
        lines.iter().map(|line| line.sku.as_str()).collect(),
        lines.iter().map(|line| line.quantity).collect(),
        lines.iter().map(|line| line.unit_price_minor).collect(),
    )
}
