//! The order API over a real service and database.

use microcosm_proto::order::{
    GetOrderRequest, ListOrdersRequest, OrderLineRequest, OrderStatus, PlaceOrderRequest,
};
use microcosm_testkit::{ServiceKind, Stack};

use crate::clients::{assert_invalid, count_rows, order};

fn request(customer: &str, lines: &[(&str, i32)], key: &str) -> PlaceOrderRequest {
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
        wait_ms: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_order_stores_a_pending_order_with_its_lines() {
    let stack = Stack::start().await.expect("stack");
    let mut client = order(&stack).await;
    let placed = client
        .place_order(request("alice", &[("KB-01", 1), ("MOUSE-01", 2)], "key-1"))
        .await
        .expect("place")
        .into_inner();
    assert!(placed.created);
    let placed = placed.order.expect("order");
    // Stored as PENDING with its saga started; the saga may already have moved on.
    let start = placed.history.first().expect("the saga's first transition");
    assert_eq!(
        (start.event.as_str(), start.to_state.as_str()),
        ("order_placed", "RESERVING")
    );
    assert_ne!(placed.status(), OrderStatus::Unspecified);
    assert_eq!(placed.lines.len(), 2);

    let fetched = client
        .get_order(GetOrderRequest {
            order_id: placed.order_id.clone(),
            include_details: false,
        })
        .await
        .expect("get")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        (&fetched.order_id, &fetched.customer_id),
        (&placed.order_id, &placed.customer_id)
    );
    assert_eq!(fetched.lines[1].sku, "MOUSE-01");
    assert_eq!(fetched.lines[1].quantity, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_returns_the_first_order_never_a_second() {
    let stack = Stack::start().await.expect("stack");
    let mut client = order(&stack).await;
    let first = client
        .place_order(request("bob", &[("KB-01", 1)], "retry-me"))
        .await
        .expect("first");
    let first = first.into_inner().order.expect("order");

    let again = client
        .place_order(request("bob", &[("KB-01", 1)], "retry-me"))
        .await
        .expect("retry")
        .into_inner();
    assert!(!again.created, "a retry does not create");
    assert_eq!(again.order.expect("order").order_id, first.order_id);

    // Ten concurrent retries of a new key: one order.
    let attempts = (0..10).map(|_| {
        let mut client = client.clone();
        async move {
            client
                .place_order(request("bob", &[("MON-27", 1)], "burst"))
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let ids: std::collections::HashSet<String> = results
        .into_iter()
        .map(|result| {
            result
                .expect("place")
                .into_inner()
                .order
                .expect("order")
                .order_id
        })
        .collect();
    assert_eq!(ids.len(), 1, "every concurrent retry saw the same order");
    assert_eq!(count_rows(&stack, ServiceKind::Order, "orders").await, 2);

    let reused = client
        .place_order(request("bob", &[("KB-01", 5)], "retry-me"))
        .await;
    let status = reused.expect_err("a key reused for a different order");
    assert_eq!(status.code(), tonic::Code::AlreadyExists);
    assert!(status.message().contains("idempotency_key"));
    assert_eq!(count_rows(&stack, ServiceKind::Order, "orders").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_orders_pages_newest_first_and_filters_by_customer() {
    let stack = Stack::start().await.expect("stack");
    let mut client = order(&stack).await;
    let mut placed = Vec::new();
    for i in 0..7 {
        let customer = if i % 2 == 0 { "alice" } else { "bob" };
        let response = client
            .place_order(request(customer, &[("KB-01", 1)], &format!("list-{i}")))
            .await
            .expect("place");
        placed.push(response.into_inner().order.expect("order").order_id);
    }

    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_orders(ListOrdersRequest {
                customer_id: String::new(),
                page_size: 3,
                page_token: token,
            })
            .await
            .expect("list")
            .into_inner();
        listed.extend(page.orders.into_iter().map(|order| order.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    placed.reverse();
    assert_eq!(listed, placed, "every order once, newest first");

    let alices = client
        .list_orders(ListOrdersRequest {
            customer_id: "alice".into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(alices.orders.len(), 4);
    assert!(
        alices
            .orders
            .iter()
            .all(|order| order.customer_id == "alice")
    );
    assert!(alices.next_page_token.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_naming_the_field_and_writes_nothing() {
    let stack = Stack::start().await.expect("stack");
    let mut client = order(&stack).await;
    let long_sku = "S".repeat(33);
    let long_customer = "c".repeat(65);
    let long_key = "k".repeat(129);
    let too_many: Vec<(String, i32)> = (0..51).map(|i| (format!("SKU-{i}"), 1)).collect();
    let too_many: Vec<(&str, i32)> = too_many.iter().map(|(sku, q)| (sku.as_str(), *q)).collect();
    let cases: Vec<(PlaceOrderRequest, &str)> = vec![
        (request("alice", &[], "k1"), "lines"),
        (request("alice", &too_many, "k2"), "lines"),
        (request("alice", &[("KB-01", 0)], "k3"), "lines[0].quantity"),
        (
            request("alice", &[("KB-01", 1), ("MOUSE-01", -2)], "k4"),
            "lines[1].quantity",
        ),
        (
            request("alice", &[("KB-01", 1), ("KB-01", 2)], "k5"),
            "lines[1].sku",
        ),
        (request("alice", &[(&long_sku, 1)], "k6"), "lines[0].sku"),
        (request("alice", &[("", 1)], "k7"), "lines[0].sku"),
        (request("", &[("KB-01", 1)], "k8"), "customer_id"),
        (
            request(&long_customer, &[("KB-01", 1)], "k9"),
            "customer_id",
        ),
        (request("alice", &[("KB-01", 1)], ""), "idempotency_key"),
        (
            request("alice", &[("KB-01", 1)], &long_key),
            "idempotency_key",
        ),
    ];
    for (bad, field) in cases {
        assert_invalid(client.place_order(bad).await, field);
    }
    assert_invalid(
        client
            .get_order(GetOrderRequest {
                order_id: "not-a-uuid".into(),
                include_details: false,
            })
            .await,
        "order_id",
    );
    assert_invalid(
        client
            .list_orders(ListOrdersRequest {
                customer_id: String::new(),
                page_size: 0,
                page_token: "%%%".into(),
            })
            .await,
        "page_token",
    );
    assert_invalid(
        client
            .list_orders(ListOrdersRequest {
                customer_id: String::new(),
                page_size: 9999,
                page_token: String::new(),
            })
            .await,
        "page_size",
    );
    assert_invalid(
        client
            .list_orders(ListOrdersRequest {
                customer_id: "a b".into(),
                page_size: 0,
                page_token: String::new(),
            })
            .await,
        "customer_id",
    );

    assert_eq!(
        count_rows(&stack, ServiceKind::Order, "orders").await,
        0,
        "no order written"
    );
    assert_eq!(
        count_rows(&stack, ServiceKind::Order, "order_lines").await,
        0,
        "no line written"
    );

    let missing = client
        .get_order(GetOrderRequest {
            order_id: uuid::Uuid::now_v7().to_string(),
            include_details: false,
        })
        .await;
    assert_eq!(
        missing.expect_err("unknown order").code(),
        tonic::Code::NotFound
    );
}
