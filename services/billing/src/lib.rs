//! Microcosm's billing service: customer accounts and every movement of money.
//!
//! It is a saga participant: the order service asks it (over NATS, from the saga
//! issue on) to charge or refund a payment. Its own database is the only place
//! balances are kept.

pub mod api;
pub mod config;
pub mod db;
pub mod domain;
pub mod messaging;
mod startup;

pub use startup::Service;
