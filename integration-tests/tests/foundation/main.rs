//! The foundation, end to end: each service starts on real PostgreSQL and NATS,
//! reports its health, serves reflection, migrates idempotently, rejects bad input
//! without writing, keeps its data in its own database, and stops cleanly.

mod billing_api;
mod clients;
mod data_isolation;
mod inventory_api;
mod lifecycle;
mod limits;
mod order_api;
