//! What can stop an audit: a database that cannot be read.
//!
//! An audit that cannot read one of the three databases proves nothing, so it
//! fails as a whole rather than reporting on two of them. The error says which
//! database and which table, because the fix differs: an unreachable server, a
//! URL pointing at the wrong service's database, or a schema the audit predates.

use std::fmt;

/// One of the three service databases the audit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Database {
    /// The order service's database: orders, their lines and the saga state.
    Order,
    /// The inventory service's database: products and reservations.
    Inventory,
    /// The billing service's database: accounts, the ledger and payments.
    Billing,
}

impl Database {
    /// The database's name as people say it: `order`, `inventory` or `billing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Inventory => "inventory",
            Self::Billing => "billing",
        }
    }

    /// Wraps a query error on this database, naming what was being read.
    pub(crate) fn read_failed(self, what: &'static str) -> impl FnOnce(sqlx::Error) -> AuditError {
        move |source| AuditError::Read {
            database: self,
            what,
            source,
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an audit could not be completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A query on one database failed: it is unreachable, or is not the
    /// database of the service it was given as.
    #[error("could not read {what} from the {database} database")]
    Read {
        /// The database that failed.
        database: Database,
        /// What the audit was reading, e.g. `reservations`.
        what: &'static str,
        /// The error from sqlx.
        #[source]
        source: sqlx::Error,
    },
}

impl AuditError {
    /// The database the error happened on, so a caller can say which one to check.
    pub fn database(&self) -> Database {
        match self {
            Self::Read { database, .. } => *database,
        }
    }
}
