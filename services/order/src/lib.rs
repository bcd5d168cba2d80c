//! Microcosm's order service: where customers place orders, and (from the saga
//! issue on) the orchestrator that drives each order through inventory and billing
//! until it is CONFIRMED or CANCELLED.

pub mod api;
pub mod config;
pub mod db;
pub mod domain;
pub mod messaging;
pub mod saga;
mod startup;

pub use startup::Service;
