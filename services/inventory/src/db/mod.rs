//! Inventory's queries, one module per table.

pub mod products;
pub mod reservations;
