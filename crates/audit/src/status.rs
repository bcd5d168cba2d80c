//! The states the three services record, parsed from their text columns.
//!
//! The migrations restrict each column with a CHECK, so a value outside these
//! enums means the schema is newer than the audit. Reading then fails with the
//! value named, instead of a check silently treating it as "something else";
//! and the checks `match` on enums, so the compiler shows every state each
//! check has to consider.

use std::fmt;

/// A text column held a value the audit does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown {column} {value:?}: the schema is newer than this audit, update microcosm-audit")]
pub(crate) struct UnknownValue {
    column: &'static str,
    value: String,
}

/// Declares an enum over a text column, with its parse (`TryFrom<String>`, used by
/// `#[sqlx(try_from = "String")]`) and its spelling in the database.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $column:literal { $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// The value as the database spells it.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownValue;

            fn try_from(value: String) -> Result<Self, UnknownValue> {
                match value.as_str() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownValue { column: $column, value }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// `orders.status`: where an order's saga has got to.
    OrderStatus, "orders.status" {
        /// The saga is still running (or is stuck).
        Pending = "PENDING",
        /// Stock committed and payment captured.
        Confirmed = "CONFIRMED",
        /// The saga gave up; `orders.reason` says why.
        Cancelled = "CANCELLED",
    }
}

text_enum! {
    /// `reservations.status`: inventory's side of an order.
    ReservationStatus, "reservations.status" {
        /// Units held in `products.reserved`.
        Reserved = "RESERVED",
        /// Units sold: they left `products.reserved`.
        Committed = "COMMITTED",
        /// Units returned to `products.available` (or a tombstone with no lines).
        Released = "RELEASED",
        /// Nothing was held.
        Rejected = "REJECTED",
    }
}

text_enum! {
    /// `payments.status`: billing's side of an order.
    PaymentStatus, "payments.status" {
        /// The amount left the customer's balance.
        Captured = "CAPTURED",
        /// Nothing was taken.
        Declined = "DECLINED",
        /// The captured amount went back.
        Refunded = "REFUNDED",
        /// A tombstone: the refund arrived before the charge.
        Voided = "VOIDED",
    }
}

text_enum! {
    /// `ledger_entries.kind`: which way money moved.
    LedgerKind, "ledger_entries.kind" {
        /// Money paid in by the customer (no order).
        Deposit = "deposit",
        /// Money taken for an order.
        Charge = "charge",
        /// Money given back for an order.
        Refund = "refund",
    }
}
