//! Stock: never negative, and `reserved` is exactly what running sagas hold.
//!
//! `products.reserved` is a cached sum; the RESERVED reservations are the
//! truth it must match. A mismatch means a reserve, commit or release moved
//! units on one side and not the other: stock leaked or was sold twice.

use std::collections::BTreeMap;

use super::{PRODUCT_RESERVED_MATCHES_RESERVATIONS, STOCK_IS_NOT_NEGATIVE};
use crate::report::Violation;
use crate::snapshot::InventorySnapshot;
use crate::status::ReservationStatus;

/// Checks every product's `available` and `reserved`.
pub(super) fn check_stock(inventory: &InventorySnapshot) -> Vec<Violation> {
    let held = units_held_by_reservations(inventory);
    let mut violations = Vec::new();
    for product in &inventory.products {
        if product.available < 0 || product.reserved < 0 {
            violations.push(Violation::without_order(
                STOCK_IS_NOT_NEGATIVE,
                format!(
                    "product {}: available {}, reserved {}",
                    product.sku, product.available, product.reserved
                ),
            ));
        }
        let held_units = held.get(product.sku.as_str()).copied().unwrap_or(0);
        if product.reserved != held_units {
            violations.push(Violation::without_order(
                PRODUCT_RESERVED_MATCHES_RESERVATIONS,
                format!(
                    "product {}: reserved is {} but RESERVED reservations hold {held_units}",
                    product.sku, product.reserved
                ),
            ));
        }
    }
    violations
}

/// Units per SKU held by reservations whose status is RESERVED.
fn units_held_by_reservations(inventory: &InventorySnapshot) -> BTreeMap<&str, i64> {
    let mut held: BTreeMap<&str, i64> = BTreeMap::new();
    let holding = inventory
        .reservations
        .values()
        .filter(|reservation| reservation.status == ReservationStatus::Reserved);
    for reservation in holding {
        for (sku, quantity) in &reservation.lines {
            let units = held.entry(sku.as_str()).or_default();
            *units = units.saturating_add(*quantity);
        }
    }
    held
}
