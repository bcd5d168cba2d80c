//! Microcosm's inventory service: the product catalogue, prices and stock.
//!
//! It is a saga participant: the order service asks it (over NATS, from the saga
//! issue on) to reserve, commit or release stock. Its own database is the only
//! place stock is kept.

pub mod api;
pub mod config;
pub mod db;
pub mod domain;
pub mod messaging;
mod startup;

pub use startup::Service;
