//! Reservations: the rule that decides whether an order's lines can be held,
//! and at what prices. All or nothing: one short line rejects the whole order.

use std::collections::HashMap;
use std::str::FromStr;

use microcosm_platform::ids::Sku;

/// Where an order's reservation stands (see the `reservations` migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Units moved from available to reserved.
    Reserved,
    /// Units sold.
    Committed,
    /// Units given back, or a tombstone for a release that came first.
    Released,
    /// Nothing held.
    Rejected,
}

impl ReservationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Committed => "COMMITTED",
            Self::Released => "RELEASED",
            Self::Rejected => "REJECTED",
        }
    }
}

impl FromStr for ReservationStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "RESERVED" => Ok(Self::Reserved),
            "COMMITTED" => Ok(Self::Committed),
            "RELEASED" => Ok(Self::Released),
            "REJECTED" => Ok(Self::Rejected),
            other => Err(format!("unknown reservation status {other:?}")),
        }
    }
}

/// One line an order asks to reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    /// What.
    pub sku: Sku,
    /// How many (>= 1).
    pub quantity: i32,
}

/// A reserved line with the price it was reserved at.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PricedLine {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: i32,
    /// Price of one unit, in minor units, when reserved.
    pub unit_price_minor: i64,
}

/// A product's price and what is left of it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StockLevel {
    /// What.
    pub sku: String,
    /// Price of one unit, in minor units.
    pub unit_price_minor: i64,
    /// Units that can still be reserved.
    pub available: i64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionReason {
    /// Fewer units available than ordered.
    OutOfStock,
    /// Not in the catalogue.
    UnknownSku,
}

impl RejectionReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::UnknownSku => "unknown_sku",
        }
    }
}

impl FromStr for RejectionReason {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "out_of_stock" => Ok(Self::OutOfStock),
            "unknown_sku" => Ok(Self::UnknownSku),
            other => Err(format!("unknown rejection reason {other:?}")),
        }
    }
}

/// A refused reservation: why, and the first line that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Why.
    pub reason: RejectionReason,
    /// The first sku (in request order) that could not be held.
    pub sku: String,
}

/// Decides a reservation against the current stock: every line priced, or the
/// first line that cannot be held.
///
/// # Errors
/// A [`Rejection`] if a sku is unknown or short of stock.
pub fn price_reservation(
    requested: &[RequestedLine],
    stock: &[StockLevel],
) -> Result<Vec<PricedLine>, Rejection> {
    let by_sku: HashMap<&str, &StockLevel> = stock
        .iter()
        .map(|level| (level.sku.as_str(), level))
        .collect();
    requested
        .iter()
        .map(|line| {
            let reject = |reason| Rejection {
                reason,
                sku: line.sku.to_string(),
            };
            let level = by_sku
                .get(line.sku.as_str())
                .ok_or_else(|| reject(RejectionReason::UnknownSku))?;
            if level.available < i64::from(line.quantity) {
                return Err(reject(RejectionReason::OutOfStock));
            }
            Ok(PricedLine {
                sku: level.sku.clone(),
                quantity: line.quantity,
                unit_price_minor: level.unit_price_minor,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(sku: &str, quantity: i32) -> RequestedLine {
        RequestedLine {
            sku: Sku::parse("sku", sku).expect("sku"),
            quantity,
        }
    }

    fn level(sku: &str, price: i64, available: i64) -> StockLevel {
        StockLevel {
            sku: sku.into(),
            unit_price_minor: price,
            available,
        }
    }

    #[test]
    fn every_line_is_priced_when_all_are_in_stock() {
        let priced = price_reservation(
            &[want("A", 2), want("B", 1)],
            &[level("B", 50, 1), level("A", 10, 2)],
        );
        assert_eq!(
            priced.expect("reserved"),
            [
                PricedLine {
                    sku: "A".into(),
                    quantity: 2,
                    unit_price_minor: 10
                },
                PricedLine {
                    sku: "B".into(),
                    quantity: 1,
                    unit_price_minor: 50
                },
            ]
        );
    }

    #[test]
    fn one_short_line_rejects_the_whole_order() {
        let rejection = price_reservation(
            &[want("A", 1), want("B", 2)],
            &[level("A", 10, 5), level("B", 50, 1)],
        );
        assert_eq!(
            rejection,
            Err(Rejection {
                reason: RejectionReason::OutOfStock,
                sku: "B".into()
            })
        );
    }

    #[test]
    fn an_unknown_sku_is_named() {
        let rejection = price_reservation(&[want("GHOST", 1)], &[level("A", 10, 5)]);
        assert_eq!(
            rejection,
            Err(Rejection {
                reason: RejectionReason::UnknownSku,
                sku: "GHOST".into()
            })
        );
    }
}
