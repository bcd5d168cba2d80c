//! Inventory's domain types: parsed, valid values and the rules on them. No I/O.

mod product;
mod reservation;

pub use microcosm_platform::ids::Sku;
pub use product::{MAX_RESTOCK, Product, RestockQuantity};
pub use reservation::{
    PricedLine, Rejection, RejectionReason, RequestedLine, ReservationStatus, StockLevel,
    price_reservation,
};
