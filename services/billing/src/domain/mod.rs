//! Billing's domain types: parsed, valid values and the rules on them. No I/O.

mod account;
mod payment;

pub use account::{Account, DepositAmount, MAX_DEPOSIT_MINOR};
pub use microcosm_platform::ids::CustomerId;
pub use payment::{DeclineReason, PaymentStatus, decide_charge};
