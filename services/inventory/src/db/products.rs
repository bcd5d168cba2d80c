//! Queries on `products`.

use sqlx::PgExecutor;

use crate::domain::{Product, RestockQuantity, Sku};

/// One page of products in sku order, starting after `after`.
#[tracing::instrument(name = "db.list_products", skip(db))]
pub async fn list_products(
    db: impl PgExecutor<'_>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Product>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sku, name, unit_price_minor, available, reserved
           FROM products
          WHERE $1::text IS NULL OR sku > $1
          ORDER BY sku
          LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// The product with `sku`, if it exists.
#[tracing::instrument(name = "db.get_product", skip(db), fields(sku = %sku))]
pub async fn get_product(
    db: impl PgExecutor<'_>,
    sku: &Sku,
) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sku, name, unit_price_minor, available, reserved
           FROM products
          WHERE sku = $1",
    )
    .bind(sku.as_str())
    .fetch_optional(db)
    .await
}

/// Adds `quantity` units to the available stock of `sku`; `None` if no such product.
#[tracing::instrument(name = "db.restock_product", skip(db), fields(sku = %sku, quantity = quantity.units()))]
pub async fn restock_product(
    db: impl PgExecutor<'_>,
    sku: &Sku,
    quantity: RestockQuantity,
) -> Result<Option<Product>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE products
            SET available = available + $2, updated_at = now()
          WHERE sku = $1
      RETURNING sku, name, unit_price_minor, available, reserved",
    )
    .bind(sku.as_str())
    .bind(quantity.units())
    .fetch_optional(db)
    .await
}
