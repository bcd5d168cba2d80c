//! The plumbing the saga tests share: a stack with chosen saga timings, placing
//! and following orders, reading stock and balances, and the audit.

use std::time::Duration;

use microcosm_proto::billing::GetAccountRequest;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::GetProductRequest;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{
    GetOrderRequest, Order, OrderLineRequest, OrderStatus, PlaceOrderRequest,
};
use microcosm_testkit::{ServiceKind, Stack, StackOptions};
use tonic::transport::Channel;

/// A seeded stack whose saga steps time out after `step_timeout` and are sent
/// at most `attempts` times.
pub(crate) async fn saga_stack(step_timeout: Duration, attempts: u32) -> Stack {
    StackOptions {
        seed_demo_data: true,
        extra_env: vec![
            (
                ServiceKind::Order,
                "SAGA_STEP_TIMEOUT_MS".into(),
                step_timeout.as_millis().to_string(),
            ),
            (
                ServiceKind::Order,
                "SAGA_STEP_MAX_ATTEMPTS".into(),
                attempts.to_string(),
            ),
            (
                ServiceKind::Order,
                "SAGA_SWEEP_INTERVAL_MS".into(),
                "100".into(),
            ),
            (
                ServiceKind::Order,
                "COMPOSITION_TIMEOUT_MS".into(),
                "500".into(),
            ),
        ],
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("stack")
}

/// A stack whose deadlines never interfere with the test (30 s steps).
pub(crate) async fn patient_stack() -> Stack {
    saga_stack(Duration::from_secs(30), 3).await
}

pub(crate) async fn orders(stack: &Stack) -> OrderServiceClient<Channel> {
    OrderServiceClient::new(stack.order.channel().await.expect("order channel"))
}

pub(crate) fn order_request(
    customer: &str,
    lines: &[(&str, i32)],
    key: &str,
    wait_ms: u32,
) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: customer.into(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| OrderLineRequest {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect(),
        idempotency_key: key.into(),
        wait_ms,
    }
}

/// Places an order and waits (up to 20 s) for it to finish.
pub(crate) async fn place_and_finish(
    stack: &Stack,
    customer: &str,
    lines: &[(&str, i32)],
) -> Order {
    let key = uuid::Uuid::now_v7().to_string();
    let placed = orders(stack)
        .await
        .place_order(order_request(customer, lines, &key, 20_000))
        .await
        .expect("place order")
        .into_inner()
        .order
        .expect("order");
    assert_ne!(
        placed.status(),
        OrderStatus::Pending,
        "order did not finish within 20 s: {placed:?}"
    );
    placed
}

/// Places an order without waiting.
pub(crate) async fn place(stack: &Stack, customer: &str, lines: &[(&str, i32)]) -> Order {
    let key = uuid::Uuid::now_v7().to_string();
    orders(stack)
        .await
        .place_order(order_request(customer, lines, &key, 0))
        .await
        .expect("place order")
        .into_inner()
        .order
        .expect("order")
}

pub(crate) async fn get_order(stack: &Stack, order_id: &str) -> Order {
    orders(stack)
        .await
        .get_order(GetOrderRequest {
            order_id: order_id.into(),
            include_details: false,
        })
        .await
        .expect("get order")
        .into_inner()
        .order
        .expect("order")
}

/// Waits until the order's saga is in `state`.
pub(crate) async fn wait_for_saga_state(stack: &Stack, order_id: &str, state: &str) -> Order {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let order = get_order(stack, order_id).await;
        if order.saga_state == state {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} never reached {state}; it is {} ({:?})",
            order.saga_state,
            order.history
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the order is CONFIRMED or CANCELLED.
pub(crate) async fn wait_until_finished(stack: &Stack, order_id: &str) -> Order {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let order = get_order(stack, order_id).await;
        if order.status() != OrderStatus::Pending {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} still PENDING in {}: {:?}",
            order.saga_state,
            order.history
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// (available, reserved) of a product.
pub(crate) async fn stock(stack: &Stack, sku: &str) -> (i64, i64) {
    let mut client = InventoryServiceClient::new(stack.inventory.channel().await.expect("channel"));
    let product = client
        .get_product(GetProductRequest { sku: sku.into() })
        .await
        .expect("get product")
        .into_inner()
        .product
        .expect("product");
    (product.available, product.reserved)
}

pub(crate) async fn balance(stack: &Stack, customer: &str) -> i64 {
    let mut client = BillingServiceClient::new(stack.billing.channel().await.expect("channel"));
    client
        .get_account(GetAccountRequest {
            customer_id: customer.into(),
        })
        .await
        .expect("get account")
        .into_inner()
        .account
        .expect("account")
        .balance_minor
}

pub(crate) use integration_tests::{assert_audit_clean, audit};

/// The transitions of an order as `from->to (event)` strings.
pub(crate) fn path(order: &Order) -> Vec<String> {
    order
        .history
        .iter()
        .map(|step| format!("{}->{}", step.from_state, step.to_state))
        .collect()
}
