//! The order service's domain types: parsed, valid values and the rules on them.
//! No I/O.

mod order;

pub use microcosm_platform::ids::{CustomerId, Sku};
pub use order::{
    IdempotencyKey, MAX_LINES, MAX_QUANTITY, NewOrder, Order, OrderId, OrderLine, OrderLines,
    OrderStatus, PricedLine, Quantity,
};
