//! The three databases read into memory, one consistent snapshot each.
//!
//! Each database is read inside one `REPEATABLE READ READ ONLY` transaction, so
//! the checks that stay within one database (a product's `reserved` against its
//! reservations, an account's balance against its ledger) compare rows from a
//! single moment even while the services keep writing.
//!
//! Across databases there is no common moment, so the order matters: inventory
//! and billing are read first and the order database last. Every reservation and
//! payment is created after its order, so an order placed while the audit runs
//! can never look like an orphan: its order row is in the later snapshot.
//!
//! Sums over these rows saturate instead of overflowing: the audit exists to
//! read data that may be corrupt, and must report it rather than panic. A
//! saturated sum never equals a sane cached value, so it is still reported.

mod billing;
mod dead_letters;
mod inventory;
mod order;

use sqlx::{PgPool, Postgres, Transaction};

pub(crate) use billing::{BillingSnapshot, Payment};
pub(crate) use inventory::{InventorySnapshot, Reservation};
pub(crate) use order::{Order, OrderSnapshot};

use crate::error::AuditError;
use crate::run::AuditDatabases;

/// What the audit knows about the system: one snapshot per database.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) order: OrderSnapshot,
    pub(crate) inventory: InventorySnapshot,
    pub(crate) billing: BillingSnapshot,
}

impl Snapshot {
    /// Reads inventory, then billing, then orders (see the module docs for why).
    pub(crate) async fn read(dbs: &AuditDatabases<'_>) -> Result<Self, AuditError> {
        let inventory = inventory::read_inventory(dbs.inventory).await?;
        let billing = billing::read_billing(dbs.billing).await?;
        let order = order::read_orders(dbs.order).await?;
        Ok(Self {
            order,
            inventory,
            billing,
        })
    }
}

/// Opens the read-only transaction one database is read in.
async fn begin_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
}
