//! The consistency audit: reads the order, inventory and billing databases and
//! proves (or disproves) that they agree after whatever faults the system went
//! through.
//!
//! Each service owns its own PostgreSQL database, and the saga keeps them
//! consistent only eventually, through messages. No single query can see all
//! three, so the audit reads each database into memory, keyed by order id, and
//! compares them in Rust, one named check at a time (see [`checks`] for the
//! list). The result is an [`AuditReport`]: counts
//! of orders by outcome, and every [`Violation`] with the check that found it.
//!
//! Chaos tests call [`audit`] after the faults have healed; `microcosm audit`
//! runs the same function from the command line.

pub mod checks;

mod error;
mod report;
mod run;
mod snapshot;
mod status;

pub use error::{AuditError, Database};
pub use report::{AuditReport, DeadLetterCounts, OrderCounts, Violation};
pub use run::{AuditDatabases, AuditOptions, DEFAULT_STUCK_AFTER, audit};
