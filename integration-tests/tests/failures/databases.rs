//! One service's own PostgreSQL stopped while the rest of the system runs on.
//!
//! The stack runs a PostgreSQL server per service, as compose and Kubernetes deploy
//! them. The service whose database is down reports NOT_SERVING; the other two keep
//! serving their own reads, and orders are still accepted unless it is the order
//! service's own database that is down. Once the server is back, every waiting saga
//! completes.

use microcosm_proto::billing::GetAccountRequest;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::ListProductsRequest;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::order::ListOrdersRequest;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_testkit::{ServiceKind, ServingStatus, Stack, StackOptions};

use crate::support::{
    assert_all_finished_and_audit_clean, order_request, patient_options, place_orders,
    place_orders_retrying, wait_for_health,
};

/// Reads `kind`'s own data through its public API.
async fn read_own_data(stack: &Stack, kind: ServiceKind) -> Result<(), tonic::Status> {
    let channel = stack.service(kind).channel().await.expect("channel");
    match kind {
        ServiceKind::Order => OrderServiceClient::new(channel)
            .list_orders(ListOrdersRequest::default())
            .await
            .map(drop),
        ServiceKind::Inventory => InventoryServiceClient::new(channel)
            .list_products(ListProductsRequest::default())
            .await
            .map(drop),
        ServiceKind::Billing => BillingServiceClient::new(channel)
            .get_account(GetAccountRequest {
                customer_id: "alice".into(),
            })
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_service_s_database_down_leaves_the_others_serving_and_everything_completes_after() {
    let mut stack = StackOptions {
        postgres_per_service: true,
        ..patient_options()
    }
    .start()
    .await
    .expect("stack");
    assert_ne!(
        stack.postgres(ServiceKind::Inventory).port(),
        stack.postgres(ServiceKind::Billing).port(),
        "a server per service"
    );
    place_orders(&stack, "warm-up", 6).await;
    let mut placed = 6;

    for down in ServiceKind::all() {
        stack
            .postgres_mut(down)
            .stop()
            .await
            .unwrap_or_else(|error| panic!("stop {down}'s database: {error:#}"));
        wait_for_health(&stack, down, ServingStatus::NotServing).await;
        let status = read_own_data(&stack, down)
            .await
            .expect_err("no reads without a database");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

        for up in ServiceKind::all().into_iter().filter(|kind| *kind != down) {
            assert_eq!(
                stack.service(up).health("").await.expect("health"),
                ServingStatus::Serving,
                "{up} keeps serving while {down}'s database is down"
            );
            read_own_data(&stack, up)
                .await
                .unwrap_or_else(|status| panic!("{up} serves its reads: {status:?}"));
        }
        if down == ServiceKind::Order {
            // The order service cannot accept an order it cannot store: it says so
            // with UNAVAILABLE and writes nothing; the client's retry with the same
            // idempotency key succeeds once the database is back.
            let refused = OrderServiceClient::new(stack.order.channel().await.expect("channel"))
                .place_order(order_request("order-db-down", 0))
                .await
                .expect_err("no order without a database");
            assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
            stack
                .postgres_mut(down)
                .restart()
                .await
                .expect("restart order's database");
            place_orders_retrying(&stack, "order-db-down", 6).await;
        } else {
            // Orders are accepted and wait for the participant.
            place_orders(&stack, &format!("{down}-db-down"), 6).await;
            stack
                .postgres_mut(down)
                .restart()
                .await
                .unwrap_or_else(|error| panic!("restart {down}'s database: {error:#}"));
        }
        placed += 6;
        wait_for_health(&stack, down, ServingStatus::Serving).await;
    }
    assert_all_finished_and_audit_clean(&stack, placed).await;
}
