//! Step deadlines: a participant that does not answer is asked again, and past
//! the retry budget the saga compensates. Its late replies, once it wakes up,
//! change nothing.

use std::time::Duration;

use microcosm_proto::order::OrderStatus;

use crate::support::{
    assert_audit_clean, balance, path, place, saga_stack, stock, wait_for_saga_state,
    wait_until_finished,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_billing_is_retried_then_compensated_and_its_late_capture_refunded() {
    let mut stack = saga_stack(Duration::from_millis(700), 2).await;
    let (stock_before, money_before) =
        (stock(&stack, "MIC-01").await, balance(&stack, "bob").await);
    stack.billing.pause().expect("SIGSTOP billing");
    let order = place(&stack, "bob", &[("MIC-01", 1)]).await;
    // Two sends of ChargePayment, then compensation (which waits for billing's refund).
    let compensating = wait_for_saga_state(&stack, &order.order_id, "COMPENSATING").await;
    let expected = [
        "->RESERVING",
        "RESERVING->CHARGING",
        "CHARGING->CHARGING",
        "CHARGING->COMPENSATING",
    ];
    assert_eq!(
        &path(&compensating)[..expected.len()],
        expected,
        "retried, then compensating"
    );
    stack.billing.resume().expect("SIGCONT billing");

    let order = wait_until_finished(&stack, &order.order_id).await;
    assert_eq!(
        (order.status(), order.reason.as_str()),
        (OrderStatus::Cancelled, "step_timeout")
    );
    // Billing woke up to two charges and a refund: it captured once and refunded it.
    assert_eq!(balance(&stack, "bob").await, money_before);
    assert_eq!(stock(&stack, "MIC-01").await, stock_before);
    // The late PaymentCaptured replies were recorded and ignored.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        wait_until_finished(&stack, &order.order_id)
            .await
            .history
            .len(),
        order.history.len()
    );
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_inventory_is_retried_then_compensated() {
    let mut stack = saga_stack(Duration::from_millis(700), 2).await;
    let stock_before = stock(&stack, "MIC-01").await;
    stack.inventory.pause().expect("SIGSTOP inventory");
    let order = place(&stack, "bob", &[("MIC-01", 2)]).await;
    let compensating = wait_for_saga_state(&stack, &order.order_id, "COMPENSATING").await;
    let expected = [
        "->RESERVING",
        "RESERVING->RESERVING",
        "RESERVING->COMPENSATING",
    ];
    assert_eq!(
        &path(&compensating)[..expected.len()],
        expected,
        "retried, then compensating"
    );
    stack.inventory.resume().expect("SIGCONT inventory");
    let order = wait_until_finished(&stack, &order.order_id).await;
    assert_eq!(
        (order.status(), order.reason.as_str()),
        (OrderStatus::Cancelled, "step_timeout")
    );
    assert_eq!(
        stock(&stack, "MIC-01").await,
        stock_before,
        "the late reservation was released"
    );
    assert_audit_clean(&stack).await;
}
