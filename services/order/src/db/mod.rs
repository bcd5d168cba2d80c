//! The order service's queries, one module per aggregate.

pub mod orders;
pub mod sagas;
