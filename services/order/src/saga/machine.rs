//! The order saga as a pure state machine: `(state, event) -> (state, commands)`.
//!
//! Nothing here awaits, reads a clock or touches a database; the driver
//! (`saga::driver`) loads the state, calls [`transition`], and stores the new state
//! and the commands (in the outbox) in one transaction. That keeps every rule of
//! the saga in this one `match`, testable transition by transition.
//!
//! ```text
//!  Reserving --StockReserved--> Charging --PaymentCaptured--> Committing --StockCommitted--> Confirmed
//!      |                           |                              |
//!  StockRejected            PaymentDeclined                       |
//!      v                           v                              |
//!  Cancelled <--all undone-- Compensating <--cancel / retries exhausted (any active state)
//! ```
//!
//! Rules that make it safe with at-least-once messaging:
//! - Every command is idempotent at its participant, so a re-sent command (after a
//!   deadline) has no second effect; replies that do not fit the current state
//!   (duplicates, late or out-of-order replies) are ignored.
//! - Compensation is sent for every step that *may* have happened: a ReleaseStock
//!   or RefundPayment for something that never happened is harmless, and leaves a
//!   tombstone so the original command, if it is still in flight, is refused when
//!   it arrives.
//! - Compensations are retried without limit: an order must never stay half done.

use std::fmt;
use std::str::FromStr;

/// Why an order was cancelled: the machine-readable `reason` clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// A product did not have enough stock.
    OutOfStock,
    /// A sku is not in the catalogue.
    UnknownSku,
    /// The customer's balance was lower than the total.
    InsufficientFunds,
    /// The customer has no billing account.
    UnknownCustomer,
    /// Billing declined for another reason (for example an injected fault).
    PaymentDeclined,
    /// The customer cancelled before the order was confirmed.
    CancelledByCustomer,
    /// A participant did not answer within the step deadline and retry budget.
    StepTimeout,
}

impl CancelReason {
    /// Every reason, in declaration order.
    pub const ALL: [CancelReason; 7] = [
        Self::OutOfStock,
        Self::UnknownSku,
        Self::InsufficientFunds,
        Self::UnknownCustomer,
        Self::PaymentDeclined,
        Self::CancelledByCustomer,
        Self::StepTimeout,
    ];

    /// The stored and displayed form, e.g. `out_of_stock`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::UnknownSku => "unknown_sku",
            Self::InsufficientFunds => "insufficient_funds",
            Self::UnknownCustomer => "unknown_customer",
            Self::PaymentDeclined => "payment_declined",
            Self::CancelledByCustomer => "cancelled_by_customer",
            Self::StepTimeout => "step_timeout",
        }
    }
}

impl FromStr for CancelReason {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == raw)
            .ok_or_else(|| format!("unknown cancel reason {raw:?}"))
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a saga stands. `attempt` counts sends of the current step's command(s),
/// starting at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaState {
    /// ReserveStock sent; waiting for StockReserved or StockRejected.
    Reserving {
        /// Sends so far.
        attempt: u32,
    },
    /// Stock held; ChargePayment sent for `amount_minor`.
    Charging {
        /// The order's total, from inventory's prices.
        amount_minor: i64,
        /// Sends so far.
        attempt: u32,
    },
    /// Payment captured; CommitStock sent.
    Committing {
        /// Sends so far.
        attempt: u32,
    },
    /// Undoing what may have happened: ReleaseStock and/or RefundPayment sent.
    Compensating {
        /// Why the order is being cancelled.
        reason: CancelReason,
        /// Waiting for StockReleased.
        release_pending: bool,
        /// Waiting for PaymentRefunded.
        refund_pending: bool,
        /// Sends so far.
        attempt: u32,
    },
    /// Done: stock sold, payment kept.
    Confirmed,
    /// Done: nothing held, no money kept.
    Cancelled {
        /// Why.
        reason: CancelReason,
    },
}

impl SagaState {
    /// The state a new saga starts in (its first ReserveStock is being sent).
    pub const START: SagaState = SagaState::Reserving { attempt: 1 };

    /// Whether the saga has finished.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled { .. })
    }

    /// The state's name as stored and shown in the saga history.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reserving { .. } => "RESERVING",
            Self::Charging { .. } => "CHARGING",
            Self::Committing { .. } => "COMMITTING",
            Self::Compensating { .. } => "COMPENSATING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled { .. } => "CANCELLED",
        }
    }
}

/// What happened to a saga: a participant's reply, the customer, or the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaEvent {
    /// Inventory holds every line; `total_minor` is the sum of its prices.
    StockReserved {
        /// Sum of quantity x unit price over the lines.
        total_minor: i64,
    },
    /// Inventory refused the reservation.
    StockRejected {
        /// Why (OutOfStock or UnknownSku).
        reason: CancelReason,
    },
    /// Inventory sold the reserved units.
    StockCommitted,
    /// Inventory released (or never held) the units.
    StockReleased,
    /// Billing took the money.
    PaymentCaptured,
    /// Billing did not take the money.
    PaymentDeclined {
        /// Why (InsufficientFunds, UnknownCustomer or PaymentDeclined).
        reason: CancelReason,
    },
    /// Billing gave the money back (or never took it).
    PaymentRefunded,
    /// The customer asked to cancel.
    CancelRequested,
    /// The current step's deadline passed with no reply.
    DeadlinePassed,
}

/// A command the saga sends to a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaCommand {
    /// inventory: hold every line of the order.
    ReserveStock,
    /// billing: take `amount_minor` from the customer.
    ChargePayment {
        /// The order's total.
        amount_minor: i64,
    },
    /// inventory: sell the held units.
    CommitStock,
    /// inventory: give the held (or sold) units back.
    ReleaseStock,
    /// billing: give the money back.
    RefundPayment,
}

/// How many times a step's command is sent before the saga gives up on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total sends of a forward step (the first send included) before compensating.
    pub max_attempts: u32,
}

/// What [`transition`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Move to `state` and send `commands`.
    Moved {
        /// The new state.
        state: SagaState,
        /// Commands to send, in the same transaction as the state change.
        commands: Vec<SagaCommand>,
    },
    /// Nothing changes: the event does not fit the state (a duplicate, late or
    /// out-of-order reply, or a cancel of a finished order).
    Ignored {
        /// Why, for the log.
        why: &'static str,
    },
}

/// The saga's rules: what `event` does to a saga in `state`.
pub fn transition(state: SagaState, event: &SagaEvent, policy: RetryPolicy) -> Transition {
    use SagaCommand as C;
    use SagaEvent as E;
    use SagaState as S;

    let moved = |state, commands: &[SagaCommand]| Transition::Moved {
        state,
        commands: commands.to_vec(),
    };
    // Start undoing: release always (a reservation may exist or be in flight),
    // refund only once a charge may have happened.
    let compensate = |reason, refund: bool| {
        let commands: &[SagaCommand] = if refund {
            &[C::ReleaseStock, C::RefundPayment]
        } else {
            &[C::ReleaseStock]
        };
        moved(
            S::Compensating {
                reason,
                release_pending: true,
                refund_pending: refund,
                attempt: 1,
            },
            commands,
        )
    };

    match (state, event) {
        // Reserving stock.
        (S::Reserving { .. }, E::StockReserved { total_minor }) => moved(
            S::Charging {
                amount_minor: *total_minor,
                attempt: 1,
            },
            &[C::ChargePayment {
                amount_minor: *total_minor,
            }],
        ),
        (S::Reserving { .. }, E::StockRejected { reason }) => {
            moved(S::Cancelled { reason: *reason }, &[])
        }
        (S::Reserving { .. }, E::CancelRequested) => {
            compensate(CancelReason::CancelledByCustomer, false)
        }
        (S::Reserving { attempt }, E::DeadlinePassed) if attempt < policy.max_attempts => moved(
            S::Reserving {
                attempt: attempt + 1,
            },
            &[C::ReserveStock],
        ),
        (S::Reserving { .. }, E::DeadlinePassed) => compensate(CancelReason::StepTimeout, false),

        // Charging the customer.
        (S::Charging { .. }, E::PaymentCaptured) => {
            moved(S::Committing { attempt: 1 }, &[C::CommitStock])
        }
        (S::Charging { .. }, E::PaymentDeclined { reason }) => compensate(*reason, false),
        (S::Charging { .. }, E::CancelRequested) => {
            compensate(CancelReason::CancelledByCustomer, true)
        }
        (
            S::Charging {
                amount_minor,
                attempt,
            },
            E::DeadlinePassed,
        ) if attempt < policy.max_attempts => moved(
            S::Charging {
                amount_minor,
                attempt: attempt + 1,
            },
            &[C::ChargePayment { amount_minor }],
        ),
        (S::Charging { .. }, E::DeadlinePassed) => compensate(CancelReason::StepTimeout, true),

        // Committing the sale.
        (S::Committing { .. }, E::StockCommitted) => moved(S::Confirmed, &[]),
        (S::Committing { .. }, E::CancelRequested) => {
            compensate(CancelReason::CancelledByCustomer, true)
        }
        (S::Committing { attempt }, E::DeadlinePassed) if attempt < policy.max_attempts => moved(
            S::Committing {
                attempt: attempt + 1,
            },
            &[C::CommitStock],
        ),
        (S::Committing { .. }, E::DeadlinePassed) => compensate(CancelReason::StepTimeout, true),

        // Compensating: wait for every undo; re-send what is missing, forever.
        (
            S::Compensating {
                reason,
                release_pending: true,
                refund_pending,
                attempt,
            },
            E::StockReleased,
        ) => finish_or_wait(reason, false, refund_pending, attempt),
        (
            S::Compensating {
                reason,
                release_pending,
                refund_pending: true,
                attempt,
            },
            E::PaymentRefunded,
        ) => finish_or_wait(reason, release_pending, false, attempt),
        (
            S::Compensating {
                reason,
                release_pending,
                refund_pending,
                attempt,
            },
            E::DeadlinePassed,
        ) => {
            let mut commands = Vec::new();
            if release_pending {
                commands.push(C::ReleaseStock);
            }
            if refund_pending {
                commands.push(C::RefundPayment);
            }
            Transition::Moved {
                state: S::Compensating {
                    reason,
                    release_pending,
                    refund_pending,
                    attempt: attempt.saturating_add(1),
                },
                commands,
            }
        }
        (S::Compensating { .. }, E::CancelRequested) => Transition::Ignored {
            why: "already cancelling",
        },

        (S::Confirmed, E::CancelRequested) => Transition::Ignored {
            why: "a confirmed order cannot be cancelled",
        },
        (S::Cancelled { .. }, E::CancelRequested) => Transition::Ignored {
            why: "already cancelled",
        },
        (S::Confirmed | S::Cancelled { .. }, _) => Transition::Ignored {
            why: "the saga has finished",
        },
        _ => Transition::Ignored {
            why: "the event does not fit the saga's state (duplicate, late or out of order)",
        },
    }
}

fn finish_or_wait(
    reason: CancelReason,
    release_pending: bool,
    refund_pending: bool,
    attempt: u32,
) -> Transition {
    let state = if release_pending || refund_pending {
        SagaState::Compensating {
            reason,
            release_pending,
            refund_pending,
            attempt,
        }
    } else {
        SagaState::Cancelled { reason }
    };
    Transition::Moved {
        state,
        commands: Vec::new(),
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
