//! Every way an order can end, and what each leaves behind.

use microcosm_proto::order::{OrderStatus, WatchOrderRequest};

use crate::support::{
    assert_audit_clean, balance, order_request, orders, path, patient_stack, place,
    place_and_finish, stock,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_reserves_charges_commits_and_confirms() {
    let stack = patient_stack().await;
    let (kb_before, _) = stock(&stack, "KB-01").await;
    let (mouse_before, _) = stock(&stack, "MOUSE-01").await;
    let alice_before = balance(&stack, "alice").await;

    let order = place_and_finish(&stack, "alice", &[("KB-01", 2), ("MOUSE-01", 1)]).await;

    assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
    assert_eq!(order.reason, "");
    assert_eq!(order.total_minor, 2 * 8_900 + 2_900, "priced by inventory");
    assert!(order.lines.iter().all(|line| line.unit_price_minor > 0));
    assert_eq!(
        path(&order),
        [
            "->RESERVING",
            "RESERVING->CHARGING",
            "CHARGING->COMMITTING",
            "COMMITTING->CONFIRMED"
        ]
    );
    assert_eq!(
        stock(&stack, "KB-01").await,
        (kb_before - 2, 0),
        "sold, nothing left reserved"
    );
    assert_eq!(stock(&stack, "MOUSE-01").await, (mouse_before - 1, 0));
    assert_eq!(
        balance(&stack, "alice").await,
        alice_before - order.total_minor
    );
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_cancels_with_its_reason_and_leaves_nothing_behind() {
    let stack = patient_stack().await;
    let (last_before, _) = stock(&stack, "LAST-ONE").await;
    let (monitor_before, _) = stock(&stack, "MON-27").await;
    let carol_before = balance(&stack, "carol").await;

    let cases = [
        (
            "alice",
            vec![("LAST-ONE", 2)],
            "out_of_stock",
            vec!["->RESERVING", "RESERVING->CANCELLED"],
        ),
        (
            "alice",
            vec![("NO-SUCH-SKU", 1)],
            "unknown_sku",
            vec!["->RESERVING", "RESERVING->CANCELLED"],
        ),
        (
            "carol",
            vec![("MON-27", 1)],
            "insufficient_funds",
            vec![
                "->RESERVING",
                "RESERVING->CHARGING",
                "CHARGING->COMPENSATING",
                "COMPENSATING->CANCELLED",
            ],
        ),
        (
            "mallory",
            vec![("MON-27", 1)],
            "unknown_customer",
            vec![
                "->RESERVING",
                "RESERVING->CHARGING",
                "CHARGING->COMPENSATING",
                "COMPENSATING->CANCELLED",
            ],
        ),
    ];
    for (customer, lines, reason, expected_path) in cases {
        let order = place_and_finish(&stack, customer, &lines).await;
        assert_eq!(
            order.status(),
            OrderStatus::Cancelled,
            "{customer} {lines:?}: {order:?}"
        );
        assert_eq!(order.reason, reason);
        assert_eq!(path(&order), expected_path, "{reason}");
    }

    assert_eq!(
        stock(&stack, "LAST-ONE").await,
        (last_before, 0),
        "nothing was held"
    );
    assert_eq!(
        stock(&stack, "MON-27").await,
        (monitor_before, 0),
        "reservations were released"
    );
    assert_eq!(
        balance(&stack, "carol").await,
        carol_before,
        "no money moved"
    );
    assert_audit_clean(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_order_streams_each_move_until_the_order_is_final() {
    let mut stack = patient_stack().await;
    stack.billing.pause().expect("pause billing"); // hold the saga at CHARGING
    let order = place(&stack, "bob", &[("USB-C-1M", 3)]).await;
    let mut client = orders(&stack).await;
    let mut updates = client
        .watch_order(WatchOrderRequest {
            order_id: order.order_id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    stack.billing.resume().expect("resume billing");

    let mut seen = Vec::new();
    while let Some(update) = updates.message().await.expect("stream") {
        let order = update.order.expect("order");
        seen.push((order.saga_state.clone(), order.status()));
    }
    let (last_state, last_status) = seen.last().cloned().expect("at least one update");
    assert_eq!(
        (last_state.as_str(), last_status),
        ("CONFIRMED", OrderStatus::Confirmed)
    );
    assert!(seen.len() >= 2, "saw the moves, not only the end: {seen:?}");
    assert!(
        seen[..seen.len() - 1]
            .iter()
            .all(|(_, status)| *status == OrderStatus::Pending)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn place_order_with_one_key_runs_one_saga_and_charges_once() {
    let stack = patient_stack().await;
    let alice_before = balance(&stack, "alice").await;
    let mut client = orders(&stack).await;
    let first = client
        .place_order(order_request("alice", &[("LAMP-01", 1)], "one-key", 20_000))
        .await
        .expect("place")
        .into_inner();
    let again = client
        .place_order(order_request("alice", &[("LAMP-01", 1)], "one-key", 20_000))
        .await
        .expect("place again")
        .into_inner();
    let (first, again_order) = (first.order.expect("order"), again.order.expect("order"));
    assert!(!again.created);
    assert_eq!(first.order_id, again_order.order_id);
    assert_eq!(again_order.status(), OrderStatus::Confirmed);
    assert_eq!(
        balance(&stack, "alice").await,
        alice_before - 4_500,
        "charged once"
    );
    assert_audit_clean(&stack).await;
}
