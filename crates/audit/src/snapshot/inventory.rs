//! Inventory's side: stock levels, and one reservation per order with its lines.

use std::collections::BTreeMap;

use sqlx::PgPool;
use uuid::Uuid;

use super::begin_snapshot;
use super::dead_letters::count_dead_letters;
use crate::error::{AuditError, Database};
use crate::status::ReservationStatus;

/// A product's stock: `available` to sell, `reserved` for running sagas.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Product {
    pub(crate) sku: String,
    pub(crate) available: i64,
    pub(crate) reserved: i64,
}

/// An order's reservation: its status and the units it holds per SKU.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub(crate) status: ReservationStatus,
    /// Quantity per SKU; empty for a RELEASED tombstone.
    pub(crate) lines: BTreeMap<String, i64>,
}

/// Everything the audit reads from the inventory database.
#[derive(Debug)]
pub(crate) struct InventorySnapshot {
    pub(crate) products: Vec<Product>,
    /// Keyed by order id; ordered so that reports list them in creation order
    /// (order ids are UUIDv7).
    pub(crate) reservations: BTreeMap<Uuid, Reservation>,
    pub(crate) dead_letters: Option<u64>,
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    order_id: Uuid,
    #[sqlx(try_from = "String")]
    status: ReservationStatus,
}

#[derive(sqlx::FromRow)]
struct ReservationLineRow {
    order_id: Uuid,
    sku: String,
    quantity: i32,
}

/// Reads products, reservations and their lines in one snapshot.
pub(super) async fn read_inventory(pool: &PgPool) -> Result<InventorySnapshot, AuditError> {
    let failed = |what| Database::Inventory.read_failed(what);
    let mut tx = begin_snapshot(pool).await.map_err(failed("a snapshot"))?;

    let products: Vec<Product> =
        sqlx::query_as("SELECT sku, available, reserved FROM products ORDER BY sku")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("products"))?;

    let reservation_rows: Vec<ReservationRow> =
        sqlx::query_as("SELECT order_id, status FROM reservations")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("reservations"))?;
    let mut reservations: BTreeMap<Uuid, Reservation> = reservation_rows
        .into_iter()
        .map(|row| {
            let reservation = Reservation {
                status: row.status,
                lines: BTreeMap::new(),
            };
            (row.order_id, reservation)
        })
        .collect();

    let lines: Vec<ReservationLineRow> =
        sqlx::query_as("SELECT order_id, sku, quantity FROM reservation_lines")
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("reservation_lines"))?;
    for line in lines {
        // The foreign key guarantees the reservation exists.
        if let Some(reservation) = reservations.get_mut(&line.order_id) {
            reservation.lines.insert(line.sku, i64::from(line.quantity));
        }
    }

    let dead_letters = count_dead_letters(&mut tx)
        .await
        .map_err(failed("dead_letters"))?;
    Ok(InventorySnapshot {
        products,
        reservations,
        dead_letters,
    })
}
