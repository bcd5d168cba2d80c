//! Placing orders in bulk, and waiting for the system to settle.

use std::time::Duration;

use futures::StreamExt;
use integration_tests::{audit, wait_until_no_order_pending};
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{OrderLineRequest, PlaceOrderRequest};
use microcosm_testkit::{ServiceKind, ServingStatus, Stack, StackOptions};
use tonic::Code;

/// Products with plenty of demo stock, so that orders confirm.
const SKUS: [&str; 5] = ["USB-C-1M", "MOUSE-01", "LAMP-01", "STAND-01", "CAM-HD"];

/// Options for a seeded stack whose faults are healed long before a step deadline.
/// A message in hand when its consumer dies comes back after the ack wait, kept
/// short here so that the test does not idle.
pub(crate) fn patient_options() -> StackOptions {
    StackOptions {
        seed_demo_data: true,
        extra_env: ServiceKind::all()
            .into_iter()
            .map(|kind| (kind, "CONSUMER_ACK_WAIT_MS".to_owned(), "2000".to_owned()))
            .chain([(
                ServiceKind::Order,
                "SAGA_STEP_TIMEOUT_MS".to_owned(),
                "30000".to_owned(),
            )])
            .collect(),
        ..StackOptions::default()
    }
}

/// A seeded stack with [`patient_options`].
pub(crate) async fn patient_stack() -> Stack {
    patient_options().start().await.expect("stack")
}

/// The request for order `number` of a batch: alternating customers, one unit of
/// one of the well-stocked products.
pub(crate) fn order_request(prefix: &str, number: usize) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: if number.is_multiple_of(2) {
            "alice"
        } else {
            "bob"
        }
        .into(),
        lines: vec![OrderLineRequest {
            sku: SKUS[number % SKUS.len()].into(),
            quantity: 1,
        }],
        idempotency_key: format!("{prefix}-{number}"),
        wait_ms: 0,
    }
}

/// Places `count` orders (without waiting for them to finish); every call must succeed.
pub(crate) async fn place_orders(stack: &Stack, prefix: &str, count: usize) {
    let client = OrderServiceClient::new(stack.order.channel().await.expect("channel"));
    let placed: Vec<_> = futures::stream::iter(0..count)
        .map(|number| {
            let mut client = client.clone();
            async move { client.place_order(order_request(prefix, number)).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for result in placed {
        result.expect("PlaceOrder keeps succeeding");
    }
}

/// Places `count` orders the way a careful client does when the service may fail
/// under it: an UNAVAILABLE answer is retried with the same idempotency key, which
/// can never create a second order. Returns how many calls had to be retried.
pub(crate) async fn place_orders_retrying(stack: &Stack, prefix: &str, count: usize) -> usize {
    let client = OrderServiceClient::new(stack.order.channel().await.expect("channel"));
    let retries: Vec<usize> = futures::stream::iter(0..count)
        .map(|number| {
            let mut client = client.clone();
            async move {
                let mut retries = 0;
                loop {
                    match client.place_order(order_request(prefix, number)).await {
                        Ok(_) => return retries,
                        Err(status) if status.code() == Code::Unavailable && retries < 50 => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => panic!("PlaceOrder {prefix}-{number}: {status:?}"),
                    }
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    retries.into_iter().sum()
}

/// Waits until no order is PENDING, then asserts the audit is clean and `expected`
/// orders exist (no order lost, none created twice).
pub(crate) async fn assert_all_finished_and_audit_clean(stack: &Stack, expected: u64) {
    wait_until_no_order_pending(stack, Duration::from_secs(120)).await;
    let report = audit(stack).await;
    assert_eq!(report.orders.total, expected, "{report}");
    assert!(report.is_clean(), "{report}");
}

/// Waits until `kind`'s health (whole server) is `status`.
pub(crate) async fn wait_for_health(stack: &Stack, kind: ServiceKind, status: ServingStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stack.service(kind).health("").await.ok() != Some(status) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never reported {status:?}",
            kind.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
