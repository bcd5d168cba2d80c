//! CancelOrder at every stage of the saga: whatever was done is undone, and
//! the audit proves it. Participants are paused (SIGSTOP) to hold the saga at
//! the stage under test; their queued commands run when they resume.

use microcosm_proto::order::{CancelOrderRequest, OrderStatus};
use microcosm_testkit::Stack;

use crate::support::{
    assert_audit_clean, balance, orders, patient_stack, place, place_and_finish, stock,
    wait_for_saga_state, wait_until_finished,
};

async fn cancel(
    stack: &Stack,
    order_id: &str,
) -> Result<microcosm_proto::order::Order, tonic::Status> {
    orders(stack)
        .await
        .cancel_order(CancelOrderRequest {
            order_id: order_id.into(),
        })
        .await
        .map(|response| response.into_inner().order.expect("order"))
}

/// Bob's dock stock and money before an order that will be cancelled.
struct Before {
    stock: (i64, i64),
    money: i64,
}

impl Before {
    async fn read(stack: &Stack) -> Self {
        Self {
            stock: stock(stack, "DOCK-01").await,
            money: balance(stack, "bob").await,
        }
    }

    /// The order ends cancelled by the customer, and the stock and the money
    /// are back where they were; the audit agrees.
    async fn assert_cancelled_leaving_nothing(&self, stack: &Stack, order_id: &str) {
        let order = wait_until_finished(stack, order_id).await;
        assert_eq!(
            order.status(),
            OrderStatus::Cancelled,
            "{:?}",
            order.history
        );
        assert_eq!(order.reason, "cancelled_by_customer");
        assert_eq!(stock(stack, "DOCK-01").await, self.stock, "stock is back");
        assert_eq!(balance(stack, "bob").await, self.money, "money is back");
        assert_audit_clean(stack).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_reserving_releases_the_reservation_that_arrives() {
    let mut stack = patient_stack().await;
    let before = Before::read(&stack).await;
    stack.inventory.pause().expect("pause inventory");
    let order = place(&stack, "bob", &[("DOCK-01", 2)]).await;
    let cancelling = cancel(&stack, &order.order_id).await.expect("cancel");
    assert_eq!(
        (cancelling.status(), cancelling.saga_state.as_str()),
        (OrderStatus::Pending, "COMPENSATING")
    );
    stack.inventory.resume().expect("resume inventory");
    before
        .assert_cancelled_leaving_nothing(&stack, &order.order_id)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_charging_releases_stock_and_refunds_a_late_capture() {
    let mut stack = patient_stack().await;
    let before = Before::read(&stack).await;
    stack.billing.pause().expect("pause billing");
    let order = place(&stack, "bob", &[("DOCK-01", 1)]).await;
    wait_for_saga_state(&stack, &order.order_id, "CHARGING").await;
    cancel(&stack, &order.order_id).await.expect("cancel");
    stack.billing.resume().expect("resume billing");
    before
        .assert_cancelled_leaving_nothing(&stack, &order.order_id)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_committing_returns_the_sold_stock_and_refunds() {
    let mut stack = patient_stack().await;
    let before = Before::read(&stack).await;
    stack.billing.pause().expect("pause billing");
    let order = place(&stack, "bob", &[("DOCK-01", 1)]).await;
    wait_for_saga_state(&stack, &order.order_id, "CHARGING").await;
    stack.inventory.pause().expect("pause inventory");
    stack.billing.resume().expect("resume billing");
    wait_for_saga_state(&stack, &order.order_id, "COMMITTING").await;
    cancel(&stack, &order.order_id).await.expect("cancel");
    stack.inventory.resume().expect("resume inventory");
    before
        .assert_cancelled_leaving_nothing(&stack, &order.order_id)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_unknown_and_malformed_orders_are_answered_plainly() {
    let stack = patient_stack().await;
    let confirmed = place_and_finish(&stack, "alice", &[("CAM-HD", 1)]).await;
    let refused = cancel(&stack, &confirmed.order_id)
        .await
        .expect_err("too late");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        wait_until_finished(&stack, &confirmed.order_id)
            .await
            .status(),
        OrderStatus::Confirmed
    );

    let cancelled = place_and_finish(&stack, "alice", &[("LAST-ONE", 5)]).await;
    let again = cancel(&stack, &cancelled.order_id)
        .await
        .expect("cancelling a cancelled order is fine");
    assert_eq!(
        (again.status(), again.reason.as_str()),
        (OrderStatus::Cancelled, "out_of_stock")
    );

    let unknown = cancel(&stack, &uuid::Uuid::now_v7().to_string())
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let malformed = cancel(&stack, "order-42").await.expect_err("malformed");
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
    assert!(malformed.message().contains("order_id"));
    assert_audit_clean(&stack).await;
}
