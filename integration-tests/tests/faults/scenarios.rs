//! Each flag's scenario, with the outcome docs/scenarios.md promises.

use std::time::{Duration, Instant};

use microcosm_proto::billing::GetAccountRequest;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::GetProductRequest;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{
    GetOrderRequest, Order, OrderLineRequest, OrderStatus, PlaceOrderRequest,
};
use microcosm_testkit::{ServiceKind, ServingStatus, Stack, StackOptions};

use integration_tests::assert_audit_clean;

use crate::support::{set_fault, wait_for_health};

async fn seeded(extra_env: Vec<(ServiceKind, String, String)>) -> Stack {
    StackOptions {
        seed_demo_data: true,
        extra_env,
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("stack")
}

async fn place(stack: &Stack, customer: &str, sku: &str, wait_ms: u32) -> Order {
    let mut client = OrderServiceClient::new(stack.order.channel().await.expect("channel"));
    client
        .place_order(PlaceOrderRequest {
            customer_id: customer.into(),
            lines: vec![OrderLineRequest {
                sku: sku.into(),
                quantity: 1,
            }],
            idempotency_key: uuid::Uuid::now_v7().to_string(),
            wait_ms,
        })
        .await
        .expect("place")
        .into_inner()
        .order
        .expect("order")
}

async fn get(stack: &Stack, order_id: &str) -> Order {
    let mut client = OrderServiceClient::new(stack.order.channel().await.expect("channel"));
    client
        .get_order(GetOrderRequest {
            order_id: order_id.into(),
            include_details: false,
        })
        .await
        .expect("get")
        .into_inner()
        .order
        .expect("order")
}

async fn wait_until_finished(stack: &Stack, order_id: &str) -> Order {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order = get(stack, order_id).await;
        if order.status() != OrderStatus::Pending {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{order_id} still PENDING: {:?}",
            order.history
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_rate_cancels_orders_as_payment_declined_until_it_is_lowered() {
    let stack = seeded(Vec::new()).await;
    set_fault(&stack, ServiceKind::Billing, "decline_rate_percent", 100).await;
    let declined = place(&stack, "alice", "KB-01", 15_000).await;
    assert_eq!(
        (declined.status(), declined.reason.as_str()),
        (OrderStatus::Cancelled, "payment_declined")
    );
    set_fault(&stack, ServiceKind::Billing, "decline_rate_percent", 0).await;
    let accepted = place(&stack, "alice", "KB-01", 15_000).await;
    assert_eq!(accepted.status(), OrderStatus::Confirmed);
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_latency_slows_that_service_s_calls_and_saga_step() {
    let stack = seeded(Vec::new()).await;
    set_fault(&stack, ServiceKind::Inventory, "added_latency_ms", 400).await;
    let mut inventory =
        InventoryServiceClient::new(stack.inventory.channel().await.expect("channel"));
    let started = Instant::now();
    inventory
        .get_product(GetProductRequest {
            sku: "KB-01".into(),
        })
        .await
        .expect("get product");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the call waited the injected latency"
    );

    let order = place(&stack, "bob", "KB-01", 15_000).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    let at = |to: &str| {
        let step = order
            .history
            .iter()
            .find(|step| step.to_state == to)
            .expect("transition");
        let at = step.at.as_ref().expect("time");
        Duration::new(at.seconds as u64, at.nanos as u32)
    };
    assert!(
        at("CHARGING") - at("RESERVING") >= Duration::from_millis(400),
        "the reservation waited too"
    );
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_participant_reports_not_serving_refuses_work_and_catches_up_after() {
    let stack = seeded(vec![(
        ServiceKind::Order,
        "SAGA_STEP_TIMEOUT_MS".into(),
        "30000".into(),
    )])
    .await;
    set_fault(&stack, ServiceKind::Billing, "unavailable", 1).await;
    wait_for_health(&stack, ServiceKind::Billing, ServingStatus::NotServing).await;
    let mut billing = BillingServiceClient::new(stack.billing.channel().await.expect("channel"));
    let refused = billing
        .get_account(GetAccountRequest {
            customer_id: "alice".into(),
        })
        .await;
    assert_eq!(
        refused.expect_err("refused").code(),
        tonic::Code::Unavailable
    );

    let order = place(&stack, "alice", "LAMP-01", 0).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let waiting = get(&stack, &order.order_id).await;
    assert_eq!(
        (waiting.status(), waiting.saga_state.as_str()),
        (OrderStatus::Pending, "CHARGING"),
        "billing holds the charge"
    );

    set_fault(&stack, ServiceKind::Billing, "unavailable", 0).await;
    wait_for_health(&stack, ServiceKind::Billing, ServingStatus::Serving).await;
    assert_eq!(
        wait_until_finished(&stack, &order.order_id).await.status(),
        OrderStatus::Confirmed
    );
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_acks_force_redeliveries_that_change_nothing() {
    let short_ack_wait = ServiceKind::all()
        .into_iter()
        .map(|kind| (kind, "CONSUMER_ACK_WAIT_MS".to_owned(), "1000".to_owned()))
        .collect();
    let stack = seeded(short_ack_wait).await;
    for kind in ServiceKind::all() {
        set_fault(&stack, kind, "drop_ack_percent", 100).await;
    }
    let mut placed = Vec::new();
    for sku in ["KB-01", "MOUSE-01", "USB-C-1M", "LAMP-01", "STAND-01"] {
        placed.push(place(&stack, "alice", sku, 0).await);
    }
    for order in &placed {
        assert_eq!(
            wait_until_finished(&stack, &order.order_id).await.status(),
            OrderStatus::Confirmed
        );
    }
    for kind in ServiceKind::all() {
        let pool = stack.superuser_pool(kind).await.expect("pool");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let duplicates: i64 = sqlx::query_scalar(
                "SELECT coalesce(sum(duplicate_deliveries), 0)::bigint FROM inbox",
            )
            .fetch_one(&pool)
            .await
            .expect("count");
            if duplicates > 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: no redelivery reached the inbox",
                kind.name()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_on_next_messages_kills_the_service_and_after_a_restart_nothing_is_lost() {
    let mut stack = seeded(vec![(
        ServiceKind::Billing,
        "CONSUMER_ACK_WAIT_MS".into(),
        "1000".into(),
    )])
    .await;
    set_fault(&stack, ServiceKind::Billing, "crash_on_next_messages", 1).await;
    let order = place(&stack, "bob", "CAM-HD", 0).await;
    let status = stack
        .billing
        .wait_for_exit(Duration::from_secs(15))
        .await
        .expect("billing crashed");
    assert_eq!(
        status.code(),
        Some(microcosm_platform::faults::INJECTED_CRASH_EXIT_CODE)
    );

    stack.billing.restart().await.expect("restart billing");
    assert_eq!(
        wait_until_finished(&stack, &order.order_id).await.status(),
        OrderStatus::Confirmed
    );
    let mut client =
        microcosm_proto::admin::fault_injection_service_client::FaultInjectionServiceClient::new(
            stack.billing.channel().await.expect("channel"),
        );
    let flags = client
        .list_faults(microcosm_proto::admin::ListFaultsRequest {})
        .await
        .expect("list")
        .into_inner()
        .flags;
    let crash = flags
        .iter()
        .find(|flag| flag.name == "crash_on_next_messages")
        .expect("flag");
    assert_eq!(crash.value, 0, "the owed crash was spent");
    assert_audit_clean(&stack).await;
}

/// A reply that JetStream acknowledged and then lost (a broker crash before its
/// disk sync can do that) still reaches the saga: the command, left
/// unacknowledged too, is redelivered; billing's inbox knows it was applied and
/// publishes the reply it stored with it again. The saga never waits out its
/// step deadline (two minutes here) and never compensates a payment that
/// succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_redelivered_after_its_reply_was_lost_gets_its_reply_again() {
    let stack = seeded(vec![
        (
            ServiceKind::Billing,
            "CONSUMER_ACK_WAIT_MS".into(),
            "1000".into(),
        ),
        (
            ServiceKind::Order,
            "SAGA_STEP_TIMEOUT_MS".into(),
            "120000".into(),
        ),
    ])
    .await;
    set_fault(&stack, ServiceKind::Billing, "lose_next_replies", 1).await;
    let order = place(&stack, "bob", "CAM-HD", 0).await;

    let finished = wait_until_finished(&stack, &order.order_id).await;
    assert_eq!(
        finished.status(),
        OrderStatus::Confirmed,
        "{:?}",
        finished.history
    );
    let events: Vec<&str> = finished
        .history
        .iter()
        .map(|transition| transition.event.as_str())
        .collect();
    assert!(
        !events.contains(&"deadline_passed")
            && finished
                .history
                .iter()
                .all(|transition| transition.to_state != "COMPENSATING"),
        "the saga went on without re-sending or compensating: {events:?}"
    );

    let billing = stack
        .superuser_pool(ServiceKind::Billing)
        .await
        .expect("pool");
    let (deliveries, payments): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(1 + duplicate_deliveries), 0)::bigint FROM inbox
                  WHERE subject = 'billing.cmd.charge_payment'),
                (SELECT count(*) FROM payments WHERE order_id = $1::uuid AND status = 'CAPTURED')",
    )
    .bind(&order.order_id)
    .fetch_one(&billing)
    .await
    .expect("billing's inbox and payments");
    assert_eq!(
        (deliveries, payments),
        (2, 1),
        "the charge was delivered twice (the first reply lost) and applied once"
    );
    let lost: i64 =
        sqlx::query_scalar("SELECT value FROM fault_flags WHERE name = 'lose_next_replies'")
            .fetch_one(&billing)
            .await
            .expect("flag");
    assert_eq!(lost, 0, "the lost reply was spent");
    assert_audit_clean(&stack).await;
}
