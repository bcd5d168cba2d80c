//! Every transition of the saga, and every way messaging can misbehave:
//! duplicates, late and out-of-order replies, cancels in every state, deadlines.

use super::*;

const POLICY: RetryPolicy = RetryPolicy { max_attempts: 3 };
const TOTAL: i64 = 12_345;

fn moved(state: SagaState, event: SagaEvent) -> (SagaState, Vec<SagaCommand>) {
    match transition(state, &event, POLICY) {
        Transition::Moved { state, commands } => (state, commands),
        Transition::Ignored { why } => panic!("{event:?} in {state:?} was ignored: {why}"),
    }
}

fn ignored(state: SagaState, event: SagaEvent) {
    assert!(
        matches!(
            transition(state, &event, POLICY),
            Transition::Ignored { .. }
        ),
        "{event:?} in {state:?} must change nothing"
    );
}

fn compensating(reason: CancelReason, release: bool, refund: bool) -> SagaState {
    SagaState::Compensating {
        reason,
        release_pending: release,
        refund_pending: refund,
        attempt: 1,
    }
}

const CHARGING: SagaState = SagaState::Charging {
    amount_minor: TOTAL,
    attempt: 1,
};
const COMMITTING: SagaState = SagaState::Committing { attempt: 1 };

fn every_reply() -> Vec<SagaEvent> {
    vec![
        SagaEvent::StockReserved { total_minor: TOTAL },
        SagaEvent::StockRejected {
            reason: CancelReason::OutOfStock,
        },
        SagaEvent::StockCommitted,
        SagaEvent::StockReleased,
        SagaEvent::PaymentCaptured,
        SagaEvent::PaymentDeclined {
            reason: CancelReason::InsufficientFunds,
        },
        SagaEvent::PaymentRefunded,
    ]
}

#[test]
fn happy_path_reserves_charges_commits_and_confirms() {
    let (state, commands) = moved(
        SagaState::START,
        SagaEvent::StockReserved { total_minor: TOTAL },
    );
    assert_eq!(state, CHARGING);
    assert_eq!(
        commands,
        [SagaCommand::ChargePayment {
            amount_minor: TOTAL
        }]
    );
    let (state, commands) = moved(state, SagaEvent::PaymentCaptured);
    assert_eq!(
        (state, commands),
        (COMMITTING, vec![SagaCommand::CommitStock])
    );
    let (state, commands) = moved(state, SagaEvent::StockCommitted);
    assert_eq!((state, commands), (SagaState::Confirmed, vec![]));
    assert!(state.is_terminal());
}

#[test]
fn stock_rejected_cancels_with_nothing_to_undo() {
    for reason in [CancelReason::OutOfStock, CancelReason::UnknownSku] {
        let (state, commands) = moved(SagaState::START, SagaEvent::StockRejected { reason });
        assert_eq!(state, SagaState::Cancelled { reason });
        assert!(commands.is_empty());
    }
}

#[test]
fn payment_declined_releases_stock_then_cancels_with_the_decline_reason() {
    for reason in [
        CancelReason::InsufficientFunds,
        CancelReason::UnknownCustomer,
        CancelReason::PaymentDeclined,
    ] {
        let (state, commands) = moved(CHARGING, SagaEvent::PaymentDeclined { reason });
        assert_eq!(state, compensating(reason, true, false));
        assert_eq!(commands, [SagaCommand::ReleaseStock]);
        let (state, commands) = moved(state, SagaEvent::StockReleased);
        assert_eq!((state, commands), (SagaState::Cancelled { reason }, vec![]));
    }
}

#[test]
fn cancel_while_reserving_releases_whatever_may_be_held() {
    let (state, commands) = moved(SagaState::START, SagaEvent::CancelRequested);
    assert_eq!(
        state,
        compensating(CancelReason::CancelledByCustomer, true, false)
    );
    assert_eq!(commands, [SagaCommand::ReleaseStock]);
}

#[test]
fn cancel_while_charging_or_committing_releases_and_refunds() {
    for active in [CHARGING, COMMITTING] {
        let (state, commands) = moved(active, SagaEvent::CancelRequested);
        assert_eq!(
            state,
            compensating(CancelReason::CancelledByCustomer, true, true)
        );
        assert_eq!(
            commands,
            [SagaCommand::ReleaseStock, SagaCommand::RefundPayment]
        );
    }
}

#[test]
fn compensation_finishes_only_when_every_undo_is_confirmed_in_any_order() {
    let start = compensating(CancelReason::CancelledByCustomer, true, true);
    let (half, _) = moved(start, SagaEvent::PaymentRefunded);
    assert!(matches!(
        half,
        SagaState::Compensating {
            release_pending: true,
            refund_pending: false,
            ..
        }
    ));
    let (done, _) = moved(half, SagaEvent::StockReleased);
    assert_eq!(
        done,
        SagaState::Cancelled {
            reason: CancelReason::CancelledByCustomer
        }
    );

    let (half, _) = moved(start, SagaEvent::StockReleased);
    let (done, _) = moved(half, SagaEvent::PaymentRefunded);
    assert_eq!(
        done,
        SagaState::Cancelled {
            reason: CancelReason::CancelledByCustomer
        }
    );
}

#[test]
fn cancel_in_every_state() {
    // Active states start compensating (tested above); the rest ignore it.
    ignored(
        compensating(CancelReason::StepTimeout, true, false),
        SagaEvent::CancelRequested,
    );
    ignored(SagaState::Confirmed, SagaEvent::CancelRequested);
    ignored(
        SagaState::Cancelled {
            reason: CancelReason::OutOfStock,
        },
        SagaEvent::CancelRequested,
    );
}

#[test]
fn a_missed_deadline_resends_the_step_until_the_budget_is_spent() {
    let (state, commands) = moved(SagaState::START, SagaEvent::DeadlinePassed);
    assert_eq!(
        (state, commands),
        (
            SagaState::Reserving { attempt: 2 },
            vec![SagaCommand::ReserveStock]
        )
    );
    let (state, commands) = moved(CHARGING, SagaEvent::DeadlinePassed);
    assert_eq!(
        commands,
        [SagaCommand::ChargePayment {
            amount_minor: TOTAL
        }]
    );
    assert_eq!(
        state,
        SagaState::Charging {
            amount_minor: TOTAL,
            attempt: 2
        }
    );
    let (state, commands) = moved(COMMITTING, SagaEvent::DeadlinePassed);
    assert_eq!(
        (state, commands),
        (
            SagaState::Committing { attempt: 2 },
            vec![SagaCommand::CommitStock]
        )
    );
}

#[test]
fn past_the_retry_budget_the_saga_compensates_with_step_timeout() {
    let (state, commands) = moved(
        SagaState::Reserving { attempt: 3 },
        SagaEvent::DeadlinePassed,
    );
    assert_eq!(state, compensating(CancelReason::StepTimeout, true, false));
    assert_eq!(commands, [SagaCommand::ReleaseStock]);

    for exhausted in [
        SagaState::Charging {
            amount_minor: TOTAL,
            attempt: 3,
        },
        SagaState::Committing { attempt: 3 },
    ] {
        let (state, commands) = moved(exhausted, SagaEvent::DeadlinePassed);
        assert_eq!(state, compensating(CancelReason::StepTimeout, true, true));
        assert_eq!(
            commands,
            [SagaCommand::ReleaseStock, SagaCommand::RefundPayment]
        );
    }
}

#[test]
fn compensations_are_resent_forever_and_only_the_missing_ones() {
    let mut state = compensating(CancelReason::StepTimeout, true, true);
    for _ in 0..10 {
        let (next, commands) = moved(state, SagaEvent::DeadlinePassed);
        assert_eq!(
            commands,
            [SagaCommand::ReleaseStock, SagaCommand::RefundPayment]
        );
        state = next;
    }
    let (state, _) = moved(state, SagaEvent::StockReleased);
    let (_, commands) = moved(state, SagaEvent::DeadlinePassed);
    assert_eq!(commands, [SagaCommand::RefundPayment]);
}

#[test]
fn duplicate_replies_change_nothing() {
    let (charging, _) = moved(
        SagaState::START,
        SagaEvent::StockReserved { total_minor: TOTAL },
    );
    ignored(charging, SagaEvent::StockReserved { total_minor: TOTAL });
    let (committing, _) = moved(charging, SagaEvent::PaymentCaptured);
    ignored(committing, SagaEvent::PaymentCaptured);
    let (confirmed, _) = moved(committing, SagaEvent::StockCommitted);
    ignored(confirmed, SagaEvent::StockCommitted);

    let (half, _) = moved(
        compensating(CancelReason::StepTimeout, true, true),
        SagaEvent::StockReleased,
    );
    ignored(half, SagaEvent::StockReleased);
}

#[test]
fn out_of_order_and_late_replies_change_nothing() {
    // Replies for steps not yet taken.
    ignored(SagaState::START, SagaEvent::PaymentCaptured);
    ignored(SagaState::START, SagaEvent::StockCommitted);
    ignored(CHARGING, SagaEvent::StockCommitted);
    // Replies for steps already past, or undone.
    ignored(COMMITTING, SagaEvent::StockReserved { total_minor: TOTAL });
    ignored(
        compensating(CancelReason::CancelledByCustomer, true, false),
        SagaEvent::StockReserved { total_minor: TOTAL },
    );
    ignored(
        compensating(CancelReason::CancelledByCustomer, true, true),
        SagaEvent::PaymentCaptured,
    );
    ignored(
        compensating(CancelReason::StepTimeout, true, false),
        SagaEvent::StockCommitted,
    );
}

#[test]
fn finished_sagas_ignore_every_reply_and_deadline() {
    for finished in [
        SagaState::Confirmed,
        SagaState::Cancelled {
            reason: CancelReason::OutOfStock,
        },
    ] {
        for event in every_reply().into_iter().chain([SagaEvent::DeadlinePassed]) {
            ignored(finished, event);
        }
    }
}

#[test]
fn reasons_round_trip_through_their_stored_names() {
    for reason in CancelReason::ALL {
        assert_eq!(reason.as_str().parse(), Ok(reason));
    }
    assert!("nope".parse::<CancelReason>().is_err());
}
