//! Processes killed or stopped while orders flow.

use microcosm_testkit::{ServiceKind, ServingStatus};

use crate::support::{
    assert_all_finished_and_audit_clean, patient_stack, place_orders, wait_for_health,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_sigkilled_while_orders_flow_loses_nothing_after_its_restart() {
    for participant in [ServiceKind::Billing, ServiceKind::Inventory] {
        let mut stack = patient_stack().await;
        place_orders(&stack, "before", 15).await;
        stack.service_mut(participant).kill().expect("SIGKILL");
        place_orders(&stack, "while-down", 15).await;
        stack
            .service_mut(participant)
            .restart()
            .await
            .expect("restart");
        assert_all_finished_and_audit_clean(&stack, 30).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrator_sigkilled_mid_saga_resumes_every_saga_once() {
    let mut stack = patient_stack().await;
    place_orders(&stack, "in-flight", 40).await;
    stack.order.kill().expect("SIGKILL order");
    stack.order.restart().await.expect("restart order");
    place_orders(&stack, "after", 10).await;
    // The audit's ledger checks prove no saga charged or refunded twice.
    assert_all_finished_and_audit_clean(&stack, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_under_load_loses_no_message_and_health_follows_it() {
    let mut stack = patient_stack().await;
    place_orders(&stack, "before", 10).await;
    stack.nats.stop().await.expect("stop NATS");
    for kind in ServiceKind::all() {
        wait_for_health(&stack, kind, ServingStatus::NotServing).await;
    }
    // Orders are still accepted: they wait in the order service's outbox.
    place_orders(&stack, "while-down", 10).await;
    stack
        .nats
        .restart()
        .await
        .expect("restart NATS with its store");
    for kind in ServiceKind::all() {
        wait_for_health(&stack, kind, ServingStatus::Serving).await;
    }
    assert_all_finished_and_audit_clean(&stack, 20).await;
}
