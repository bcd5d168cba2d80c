//! Products, skus and restock quantities.

use microcosm_platform::validation::{FieldViolation, positive};

/// Most units one restock may add.
pub const MAX_RESTOCK: i64 = 1_000_000;

/// How many units a restock adds: 1 to [`MAX_RESTOCK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestockQuantity(i64);

impl RestockQuantity {
    /// Parses the request field `field`.
    ///
    /// # Errors
    /// If the value is below 1 or above [`MAX_RESTOCK`].
    pub fn parse(field: &str, value: i64) -> Result<Self, FieldViolation> {
        positive(field, value, MAX_RESTOCK).map(Self)
    }

    /// The number of units.
    pub fn units(self) -> i64 {
        self.0
    }
}

/// A product as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Product {
    /// Product code.
    pub sku: String,
    /// Human-readable name.
    pub name: String,
    /// Price of one unit in minor units.
    pub unit_price_minor: i64,
    /// Units a new order can reserve.
    pub available: i64,
    /// Units held for orders in flight.
    pub reserved: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restock_quantity_must_be_positive_and_bounded() {
        assert_eq!(
            RestockQuantity::parse("quantity", 5).map(RestockQuantity::units),
            Ok(5)
        );
        assert_eq!(
            RestockQuantity::parse("quantity", 0)
                .expect_err("zero")
                .field,
            "quantity"
        );
        assert!(RestockQuantity::parse("quantity", MAX_RESTOCK + 1).is_err());
    }
}
