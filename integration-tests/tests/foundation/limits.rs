//! Limits: a message too large, a call running too long, too many PlaceOrders at
//! once, too many lines — each refused with a clear status, and nothing written.

use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{OrderLineRequest, PlaceOrderRequest};
use microcosm_testkit::{ServiceKind, Stack, StackOptions};
use tonic::Code;
use tonic::transport::Channel;

use crate::clients::{assert_invalid, count_rows, order};

fn request(key: &str, lines: usize, wait_ms: u32) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: "alice".into(),
        lines: (0..lines)
            .map(|line| OrderLineRequest {
                sku: format!("SKU-{line}"),
                quantity: 1,
            })
            .collect(),
        idempotency_key: key.into(),
        wait_ms,
    }
}

/// A client that sends messages larger than any server should take, so that the
/// server's limit, not the client's, is what refuses them.
async fn unlimited_order_client(stack: &Stack) -> OrderServiceClient<Channel> {
    order(stack).await.max_encoding_message_size(usize::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_too_many_lines_are_refused_and_nothing_is_written() {
    let stack = Stack::start().await.expect("stack");
    let mut client = unlimited_order_client(&stack).await;

    // 2 MiB in one field: over GRPC_MAX_MESSAGE_BYTES (1 MiB), refused before parsing.
    let huge = "k".repeat(2 * 1024 * 1024);
    let refused = client
        .place_order(request(&huge, 1, 0))
        .await
        .expect_err("too large");
    assert!(
        matches!(refused.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{refused:?}"
    );
    // 51 lines: over the 50 an order may have.
    assert_invalid(
        client.place_order(request("many-lines", 51, 0)).await,
        "lines",
    );
    assert_eq!(count_rows(&stack, ServiceKind::Order, "orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_order_beyond_its_in_flight_limit_is_refused_and_a_long_call_is_cut() {
    let mut stack = StackOptions {
        seed_demo_data: true,
        extra_env: vec![
            (
                ServiceKind::Order,
                "PLACE_ORDER_MAX_IN_FLIGHT".into(),
                "2".into(),
            ),
            (
                ServiceKind::Order,
                "GRPC_REQUEST_TIMEOUT_MS".into(),
                "3000".into(),
            ),
        ],
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("stack");
    // Billing frozen: sagas stop at CHARGING, so PlaceOrder with wait_ms keeps waiting.
    stack.billing.pause().expect("SIGSTOP billing");
    let client = order(&stack).await;
    let waiting = |key: &'static str| {
        let mut client = client.clone();
        async move {
            let mut request = request(key, 0, 20_000);
            request.lines = vec![OrderLineRequest {
                sku: "KB-01".into(),
                quantity: 1,
            }];
            client.place_order(request).await
        }
    };
    let first = tokio::spawn(waiting("waits-1"));
    let second = tokio::spawn(waiting("waits-2"));
    // Both permits are taken once both orders exist.
    crate::clients::eventually(
        "both waiting orders are stored",
        std::time::Duration::from_secs(10),
        || async { count_rows(&stack, ServiceKind::Order, "orders").await == 2 },
    )
    .await;
    let refused = waiting("one-too-many").await.expect_err("over the limit");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("limit of 2"), "{refused:?}");
    assert_eq!(
        count_rows(&stack, ServiceKind::Order, "orders").await,
        2,
        "nothing written"
    );

    // The waiting calls end at GRPC_REQUEST_TIMEOUT_MS (3 s), not at their 20 s wait.
    for call in [first, second] {
        let status = call
            .await
            .expect("join")
            .expect_err("cut by the server's timeout");
        assert!(
            matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
            "{status:?}"
        );
    }
    stack.billing.resume().expect("SIGCONT billing");
}
