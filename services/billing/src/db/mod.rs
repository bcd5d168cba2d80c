//! Billing's queries, one module per table.

pub mod accounts;
pub mod ledger;
pub mod payments;
