//! Accounts, customer ids and deposit amounts.

use chrono::{DateTime, Utc};
use microcosm_platform::validation::{FieldViolation, positive};

/// Largest single deposit: one million in major units.
pub const MAX_DEPOSIT_MINOR: i64 = 100_000_000;

/// Money to deposit, in minor units: 1 to [`MAX_DEPOSIT_MINOR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepositAmount(i64);

impl DepositAmount {
    /// Parses the request field `field`.
    ///
    /// # Errors
    /// If the amount is zero, negative or above [`MAX_DEPOSIT_MINOR`].
    pub fn parse(field: &str, value: i64) -> Result<Self, FieldViolation> {
        positive(field, value, MAX_DEPOSIT_MINOR).map(Self)
    }

    /// The amount in minor units.
    pub fn minor_units(self) -> i64 {
        self.0
    }
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Account {
    /// The customer.
    pub customer_id: String,
    /// Money available, in minor units.
    pub balance_minor: i64,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposits_must_be_positive_and_bounded() {
        assert_eq!(
            DepositAmount::parse("amount_minor", 1).map(DepositAmount::minor_units),
            Ok(1)
        );
        assert_eq!(
            DepositAmount::parse("amount_minor", 0)
                .expect_err("zero")
                .field,
            "amount_minor"
        );
        assert!(DepositAmount::parse("amount_minor", -100).is_err());
        assert!(DepositAmount::parse("amount_minor", MAX_DEPOSIT_MINOR + 1).is_err());
    }
}

#[cfg(test)]
mod properties {
    //! Deposit's amount, for any i64: accepted exactly within 1..=MAX_DEPOSIT_MINOR,
    //! else refused naming the field.

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_deposit_amount_is_within_the_limit_or_refused_naming_the_field(
            amount in prop_oneof![1..=MAX_DEPOSIT_MINOR, any::<i64>()],
        ) {
            match DepositAmount::parse("amount_minor", amount) {
                Ok(parsed) => {
                    prop_assert!((1..=MAX_DEPOSIT_MINOR).contains(&amount));
                    prop_assert_eq!(parsed.minor_units(), amount);
                }
                Err(violation) => {
                    prop_assert!(!(1..=MAX_DEPOSIT_MINOR).contains(&amount));
                    prop_assert_eq!(violation.field, "amount_minor");
                }
            }
        }
    }
}
