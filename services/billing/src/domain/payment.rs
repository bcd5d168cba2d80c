//! Payments: the rule that decides whether an order's charge is taken.

use std::str::FromStr;

/// Where an order's payment stands (see the `payments` migration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// The amount left the balance.
    Captured,
    /// Nothing was taken.
    Declined,
    /// The captured amount went back.
    Refunded,
    /// A refund came before any charge: a later charge is declined.
    Voided,
}

impl PaymentStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Captured => "CAPTURED",
            Self::Declined => "DECLINED",
            Self::Refunded => "REFUNDED",
            Self::Voided => "VOIDED",
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "CAPTURED" => Ok(Self::Captured),
            "DECLINED" => Ok(Self::Declined),
            "REFUNDED" => Ok(Self::Refunded),
            "VOIDED" => Ok(Self::Voided),
            other => Err(format!("unknown payment status {other:?}")),
        }
    }
}

/// Why a charge was declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    /// The balance is lower than the amount.
    InsufficientFunds,
    /// The customer has no account.
    UnknownCustomer,
    /// Declined on purpose (a fault flag).
    PaymentDeclined,
    /// The payment was refunded before the charge arrived.
    Cancelled,
}

impl DeclineReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientFunds => "insufficient_funds",
            Self::UnknownCustomer => "unknown_customer",
            Self::PaymentDeclined => "payment_declined",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromStr for DeclineReason {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        [
            Self::InsufficientFunds,
            Self::UnknownCustomer,
            Self::PaymentDeclined,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == raw)
        .ok_or_else(|| format!("unknown decline reason {raw:?}"))
    }
}

/// Decides a charge of `amount_minor` against the customer's balance (`None`:
/// no account).
///
/// # Errors
/// The [`DeclineReason`] if the charge cannot be taken.
pub fn decide_charge(balance_minor: Option<i64>, amount_minor: i64) -> Result<(), DeclineReason> {
    match balance_minor {
        None => Err(DeclineReason::UnknownCustomer),
        Some(balance) if balance < amount_minor => Err(DeclineReason::InsufficientFunds),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_needs_an_account_and_enough_money() {
        assert_eq!(decide_charge(None, 1), Err(DeclineReason::UnknownCustomer));
        assert_eq!(
            decide_charge(Some(99), 100),
            Err(DeclineReason::InsufficientFunds)
        );
        assert_eq!(decide_charge(Some(100), 100), Ok(()));
    }

    #[test]
    fn statuses_and_reasons_round_trip_through_their_stored_names() {
        for status in [
            PaymentStatus::Captured,
            PaymentStatus::Declined,
            PaymentStatus::Refunded,
            PaymentStatus::Voided,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        for reason in [
            DeclineReason::InsufficientFunds,
            DeclineReason::UnknownCustomer,
            DeclineReason::PaymentDeclined,
            DeclineReason::Cancelled,
        ] {
            assert_eq!(reason.as_str().parse(), Ok(reason));
        }
    }
}
