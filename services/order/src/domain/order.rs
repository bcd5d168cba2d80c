//! Orders: what a customer may ask for, and what is stored.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use microcosm_platform::ids::{CustomerId, Sku};
use microcosm_platform::validation::{FieldViolation, positive};
use uuid::Uuid;

/// Most lines one order may have.
pub const MAX_LINES: usize = 50;
/// Most units of one sku one order may have.
pub const MAX_QUANTITY: i32 = 10_000;
/// Longest idempotency key.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// An order's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses the request field `field`.
    ///
    /// # Errors
    /// If the value is not a UUID.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        Uuid::parse_str(value).map(Self).map_err(|_| {
            FieldViolation::new(
                field,
                format!("{value:?} is not an order id (a UUID as returned by PlaceOrder)"),
            )
        })
    }

    /// The UUID.
    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for OrderId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Units of one sku on one line: 1 to [`MAX_QUANTITY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i32);

impl Quantity {
    /// Parses the request field `field`.
    ///
    /// # Errors
    /// If the quantity is below 1 or above [`MAX_QUANTITY`].
    pub fn parse(field: &str, value: i32) -> Result<Self, FieldViolation> {
        let units = positive(field, i64::from(value), i64::from(MAX_QUANTITY))?;
        Ok(Self(i32::try_from(units).unwrap_or(MAX_QUANTITY)))
    }

    /// The number of units.
    pub fn units(self) -> i32 {
        self.0
    }
}

/// One line of a new order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: Quantity,
}

/// The lines of a new order: 1 to [`MAX_LINES`], each sku on one line only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<OrderLine>);

impl OrderLines {
    /// Checks the lines as a whole (each line was parsed on its own already).
    ///
    /// # Errors
    /// If there are no lines, too many, or a sku appears twice.
    pub fn new(lines: Vec<OrderLine>) -> Result<Self, FieldViolation> {
        if lines.is_empty() {
            return Err(FieldViolation::new("lines", "must have at least one line"));
        }
        if lines.len() > MAX_LINES {
            return Err(FieldViolation::new(
                "lines",
                format!("has {} lines; at most {MAX_LINES} are allowed", lines.len()),
            ));
        }
        let mut seen: HashMap<&Sku, usize> = HashMap::new();
        for (index, line) in lines.iter().enumerate() {
            if let Some(first) = seen.insert(&line.sku, index) {
                return Err(FieldViolation::new(
                    format!("lines[{index}].sku"),
                    format!(
                        "{} is already on lines[{first}]; put each sku on one line",
                        line.sku
                    ),
                ));
            }
        }
        Ok(Self(lines))
    }

    /// The lines in the order they were given.
    pub fn as_slice(&self) -> &[OrderLine] {
        &self.0
    }
}

/// A client's idempotency key: 1-128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses the request field `field`.
    ///
    /// # Errors
    /// If the key is empty, too long, or not printable ASCII.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(
                field,
                "is required: send a unique key (a UUID, say) per order, and the same key when you retry",
            ));
        }
        if value.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(FieldViolation::new(
                field,
                format!(
                    "is {} characters long; at most {MAX_IDEMPOTENCY_KEY_LEN} are allowed",
                    value.len()
                ),
            ));
        }
        if !value.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(FieldViolation::new(field, "must be printable ASCII"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid order request, with the id it will be stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The id to store the order under.
    pub order_id: OrderId,
    /// Who pays.
    pub customer_id: CustomerId,
    /// What to buy.
    pub lines: OrderLines,
    /// The client's retry key.
    pub idempotency_key: IdempotencyKey,
}

impl NewOrder {
    /// The order as it was just stored: PENDING, unpriced, its saga RESERVING.
    pub fn placed(&self, created_at: DateTime<Utc>, trace_id: Option<String>) -> Order {
        Order {
            order_id: self.order_id,
            customer_id: self.customer_id.to_string(),
            status: OrderStatus::Pending,
            reason: None,
            lines: self
                .lines
                .as_slice()
                .iter()
                .map(|line| PricedLine {
                    sku: line.sku.to_string(),
                    quantity: line.quantity.units(),
                    unit_price_minor: 0,
                })
                .collect(),
            total_minor: 0,
            idempotency_key: self.idempotency_key.as_str().to_owned(),
            created_at,
            updated_at: created_at,
            saga_state: Some("RESERVING".to_owned()),
            trace_id,
        }
    }

    /// Whether `existing` (found under the same idempotency key) is this same
    /// request, retried: same customer, same skus and quantities.
    pub fn is_retry_of(&self, existing: &Order) -> bool {
        let mut requested: Vec<(&str, i32)> = self
            .lines
            .as_slice()
            .iter()
            .map(|line| (line.sku.as_str(), line.quantity.units()))
            .collect();
        let mut stored: Vec<(&str, i32)> = existing
            .lines
            .iter()
            .map(|line| (line.sku.as_str(), line.quantity))
            .collect();
        requested.sort_unstable();
        stored.sort_unstable();
        existing.customer_id == self.customer_id.as_str() && requested == stored
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Stored; its saga has not finished.
    Pending,
    /// Stock committed and payment captured.
    Confirmed,
    /// Stopped, with a reason.
    Cancelled,
}

impl OrderStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "PENDING" => Ok(Self::Pending),
            "CONFIRMED" => Ok(Self::Confirmed),
            "CANCELLED" => Ok(Self::Cancelled),
            other => Err(format!("unknown order status {other:?}")),
        }
    }
}

/// A stored line, with its price once inventory has quoted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    /// What.
    pub sku: String,
    /// How many.
    pub quantity: i32,
    /// Unit price in minor units; 0 until priced.
    pub unit_price_minor: i64,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub order_id: OrderId,
    /// Who pays.
    pub customer_id: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// What was ordered.
    pub lines: Vec<PricedLine>,
    /// The total in minor units; 0 until priced.
    pub total_minor: i64,
    /// The client's retry key.
    pub idempotency_key: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its saga's state name, if it has a saga.
    pub saga_state: Option<String>,
    /// The trace id of its saga, if it was traced.
    pub trace_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: i32) -> OrderLine {
        OrderLine {
            sku: Sku::parse("sku", sku).expect("sku"),
            quantity: Quantity::parse("quantity", quantity).expect("quantity"),
        }
    }

    #[test]
    fn an_order_needs_at_least_one_line() {
        assert_eq!(OrderLines::new(vec![]).expect_err("empty").field, "lines");
    }

    #[test]
    fn a_sku_may_appear_on_one_line_only() {
        let error =
            OrderLines::new(vec![line("A", 1), line("B", 1), line("A", 2)]).expect_err("duplicate");
        assert_eq!(error.field, "lines[2].sku");
        assert!(error.problem.contains("lines[0]"));
    }

    #[test]
    fn too_many_lines_are_refused() {
        let lines = (0..=MAX_LINES)
            .map(|i| line(&format!("SKU-{i}"), 1))
            .collect();
        assert_eq!(OrderLines::new(lines).expect_err("too many").field, "lines");
    }

    #[test]
    fn quantities_are_between_one_and_the_maximum() {
        assert!(Quantity::parse("q", 0).is_err());
        assert!(Quantity::parse("q", -3).is_err());
        assert!(Quantity::parse("q", MAX_QUANTITY + 1).is_err());
        assert_eq!(
            Quantity::parse("q", MAX_QUANTITY).map(Quantity::units),
            Ok(MAX_QUANTITY)
        );
    }

    #[test]
    fn idempotency_keys_are_required_bounded_and_printable() {
        assert!(IdempotencyKey::parse("idempotency_key", "").is_err());
        assert!(IdempotencyKey::parse("idempotency_key", &"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("idempotency_key", "tab\there").is_err());
        assert!(IdempotencyKey::parse("idempotency_key", "retry 1").is_ok());
    }

    #[test]
    fn a_retry_matches_regardless_of_line_order() {
        let new = NewOrder {
            order_id: OrderId::generate(),
            customer_id: CustomerId::parse("c", "alice").expect("id"),
            lines: OrderLines::new(vec![line("A", 1), line("B", 2)]).expect("lines"),
            idempotency_key: IdempotencyKey::parse("k", "key").expect("key"),
        };
        let mut stored = Order {
            order_id: OrderId::generate(),
            customer_id: "alice".into(),
            status: OrderStatus::Pending,
            reason: None,
            lines: vec![
                PricedLine {
                    sku: "B".into(),
                    quantity: 2,
                    unit_price_minor: 0,
                },
                PricedLine {
                    sku: "A".into(),
                    quantity: 1,
                    unit_price_minor: 0,
                },
            ],
            total_minor: 0,
            idempotency_key: "key".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            saga_state: None,
            trace_id: None,
        };
        assert!(new.is_retry_of(&stored));
        stored.lines[0].quantity = 3;
        assert!(!new.is_retry_of(&stored));
    }

    #[test]
    fn order_ids_must_be_uuids() {
        assert_eq!(
            OrderId::parse("order_id", "42")
                .expect_err("not uuid")
                .field,
            "order_id"
        );
        assert!(OrderId::parse("order_id", &Uuid::now_v7().to_string()).is_ok());
    }
}
