//! gRPC clients for a test stack, and small assertion helpers.

use std::time::Duration;

use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_testkit::{ServiceKind, Stack};
use tonic::transport::Channel;

pub(crate) async fn order(stack: &Stack) -> OrderServiceClient<Channel> {
    OrderServiceClient::new(stack.order.channel().await.expect("order channel"))
}

pub(crate) async fn inventory(stack: &Stack) -> InventoryServiceClient<Channel> {
    InventoryServiceClient::new(stack.inventory.channel().await.expect("inventory channel"))
}

pub(crate) async fn billing(stack: &Stack) -> BillingServiceClient<Channel> {
    BillingServiceClient::new(stack.billing.channel().await.expect("billing channel"))
}

/// Asserts INVALID_ARGUMENT whose message names `field`.
pub(crate) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err(&format!("a request with a bad {field} must fail"));
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "{field}: {status:?}"
    );
    assert!(
        status.message().contains(field),
        "the message should name {field}, got {:?}",
        status.message()
    );
}

/// Rows in `table` of `kind`'s database, read as the superuser.
pub(crate) async fn count_rows(stack: &Stack, kind: ServiceKind, table: &str) -> i64 {
    let pool = stack.superuser_pool(kind).await.expect("superuser pool");
    let count: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .expect("count rows");
    pool.close().await;
    count
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
