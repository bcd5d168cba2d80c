//! Faults on the wire, through the test kit's TCP fault proxy: every service
//! reaches its PostgreSQL and NATS through a proxy of its own, which adds latency,
//! resets connections in the middle of whatever they carry (a transaction, a
//! publish awaiting its ack, a pull request), or refuses new ones (a partition).

use std::time::Duration;

use microcosm_testkit::{ServiceKind, ServingStatus, Stack, StackOptions};

use crate::support::{
    assert_all_finished_and_audit_clean, patient_options, place_orders, place_orders_retrying,
    wait_for_health,
};

async fn proxied_stack() -> Stack {
    StackOptions {
        fault_proxies: true,
        ..patient_options()
    }
    .start()
    .await
    .expect("stack")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_a_partition_from_nats_slow_the_saga_but_lose_nothing() {
    let stack = proxied_stack().await;
    for kind in ServiceKind::all() {
        let proxies = stack.proxies(kind);
        proxies.database.set_latency(Duration::from_millis(20));
        proxies.nats.set_latency(Duration::from_millis(20));
    }
    place_orders(&stack, "slow", 20).await;

    // Billing is cut off from NATS: its connection is reset and reconnecting is refused.
    let billing_nats = &stack.proxies(ServiceKind::Billing).nats;
    assert!(
        billing_nats.partition() > 0,
        "billing was connected to NATS"
    );
    wait_for_health(&stack, ServiceKind::Billing, ServingStatus::NotServing).await;
    // Orders are still accepted; their charges wait in the stream.
    place_orders(&stack, "partitioned", 10).await;
    billing_nats.heal();
    wait_for_health(&stack, ServiceKind::Billing, ServingStatus::Serving).await;

    assert_all_finished_and_audit_clean(&stack, 30).await;
    assert!(
        billing_nats.stats().refused > 0,
        "billing tried to reconnect during the partition: {:?}",
        billing_nats.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_transaction_and_mid_publish_lose_nothing_and_double_nothing() {
    let stack = proxied_stack().await;
    // A little latency keeps transactions open long enough for cuts to land inside them.
    for kind in ServiceKind::all() {
        stack
            .proxies(kind)
            .database
            .set_latency(Duration::from_millis(3));
    }
    let (mut database_cuts, mut nats_cuts) = (0, 0);
    let cutting = async {
        for round in 0..30_u32 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            for kind in ServiceKind::all() {
                let proxies = stack.proxies(kind);
                database_cuts += proxies.database.cut_connections();
                if round.is_multiple_of(6) {
                    nats_cuts += proxies.nats.cut_connections();
                }
            }
        }
    };
    // The client retries an UNAVAILABLE PlaceOrder with the same idempotency key: the
    // audit's order count proves no retry created a second order.
    let ((), retried) = tokio::join!(cutting, place_orders_retrying(&stack, "cut", 80));
    eprintln!(
        "cut {database_cuts} database and {nats_cuts} NATS connections; \
         {retried} PlaceOrder calls were retried"
    );
    assert!(
        database_cuts > 0 && nats_cuts > 0,
        "connections were open when cut"
    );
    assert_all_finished_and_audit_clean(&stack, 80).await;
}
