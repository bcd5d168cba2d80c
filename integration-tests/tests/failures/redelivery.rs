//! Forced redelivery at volume: a share of every service's acks is dropped, so
//! JetStream redelivers those messages after the ack wait. The inbox and the
//! idempotent commands must absorb every copy: the audit's ledger and stock checks
//! prove each effect happened exactly once.

use microcosm_proto::admin::SetFaultRequest;
use microcosm_proto::admin::fault_injection_service_client::FaultInjectionServiceClient;
use microcosm_testkit::{ServiceKind, StackOptions};

use crate::support::{assert_all_finished_and_audit_clean, place_orders_retrying};

/// Orders placed: enough that every consumer sees many dropped acks.
const ORDERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_of_all_acks_dropped_at_volume_still_has_exactly_once_effects() {
    let stack = StackOptions {
        seed_demo_data: true,
        extra_env: ServiceKind::all()
            .into_iter()
            .map(|kind| (kind, "CONSUMER_ACK_WAIT_MS".to_owned(), "1000".to_owned()))
            .collect(),
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("stack");
    for kind in ServiceKind::all() {
        FaultInjectionServiceClient::new(stack.service(kind).channel().await.expect("channel"))
            .set_fault(SetFaultRequest {
                name: "drop_ack_percent".into(),
                value: 33,
            })
            .await
            .expect("set drop_ack_percent");
    }
    // Under this load a busy order service may answer UNAVAILABLE (its pool is
    // saturated by redeliveries); the client retries with the same key, as it should.
    place_orders_retrying(&stack, "redelivered", ORDERS).await;
    assert_all_finished_and_audit_clean(&stack, ORDERS as u64).await;

    for kind in ServiceKind::all() {
        let pool = stack.superuser_pool(kind).await.expect("pool");
        let duplicates: i64 =
            sqlx::query_scalar("SELECT coalesce(sum(duplicate_deliveries), 0)::bigint FROM inbox")
                .fetch_one(&pool)
                .await
                .expect("count duplicates");
        assert!(
            duplicates >= 10,
            "{kind}: only {duplicates} redeliveries reached the inbox"
        );
    }
}
