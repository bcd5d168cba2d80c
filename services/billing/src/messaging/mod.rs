//! Billing's saga commands (`billing.cmd.*`): charge and refund an order's
//! payment, each exactly once.
//!
//! Each command runs in one transaction: inbox row, balance change, ledger
//! entry, payment row and the reply in the outbox commit together, and the
//! message is acknowledged after that. A redelivered message is caught by the
//! inbox; a repeated command finds the payment row and gets the same reply
//! again. A refund that arrives before its charge leaves a VOIDED tombstone, so
//! the late charge is declined instead of taking money for a cancelled order.

mod commands;

pub use commands::BillingCommands;
