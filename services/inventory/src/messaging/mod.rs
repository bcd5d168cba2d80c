//! Inventory's saga commands (`inventory.cmd.*`): reserve, commit and release
//! stock for an order, each exactly once.
//!
//! Each command runs in one transaction: inbox row, stock movement, reservation
//! row and the reply in the outbox commit together, and the message is
//! acknowledged after that. A redelivered message is caught by the inbox; a
//! repeated command (re-sent by the orchestrator after a deadline) finds the
//! reservation row and gets the same reply again, with no second effect.

mod commands;

pub use commands::InventoryCommands;
