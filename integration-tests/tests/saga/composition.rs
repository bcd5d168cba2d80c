//! GetOrder with details: API composition that degrades, never fails, when a
//! participant is down.

use microcosm_proto::order::GetOrderRequest;

use crate::support::{orders, patient_stack, place_and_finish};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_compose_inventory_and_billing_and_degrade_to_a_note_when_billing_is_down() {
    let mut stack = patient_stack().await;
    let order = place_and_finish(&stack, "alice", &[("KB-01", 1), ("STAND-01", 2)]).await;
    let request = || GetOrderRequest {
        order_id: order.order_id.clone(),
        include_details: true,
    };

    let full = orders(&stack)
        .await
        .get_order(request())
        .await
        .expect("get")
        .into_inner();
    let details = full.details.expect("details");
    assert!(details.notes.is_empty(), "{:?}", details.notes);
    let mut skus: Vec<_> = details
        .products
        .iter()
        .map(|product| product.sku.as_str())
        .collect();
    skus.sort();
    assert_eq!(skus, ["KB-01", "STAND-01"]);
    assert!(
        details
            .products
            .iter()
            .all(|product| !product.name.is_empty())
    );
    assert_eq!(details.account.expect("account").customer_id, "alice");

    stack.billing.kill().expect("kill billing");
    let partial = orders(&stack)
        .await
        .get_order(request())
        .await
        .expect("still answers")
        .into_inner();
    let order_after = partial.order.expect("the order itself");
    assert_eq!(order_after.order_id, order.order_id);
    let details = partial.details.expect("details");
    assert_eq!(details.products.len(), 2, "inventory's part is still there");
    assert!(details.account.is_none());
    assert!(
        details
            .notes
            .iter()
            .any(|note| note.starts_with("billing unavailable")),
        "{:?}",
        details.notes
    );
}
