//! Two processes of every service on the same databases and NATS: competing
//! consumers, two outbox relays, two orchestrators and two deadline sweepers.
//! Every order still has exactly one effect of each kind, by audit.

use std::time::Duration;

use futures::StreamExt;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_testkit::ServiceKind;

use crate::support::{assert_audit_clean, audit, order_request, orders, saga_stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_every_service_keep_effects_exactly_once() {
    let stack = saga_stack(Duration::from_secs(5), 3).await;
    let mut replicas = Vec::new();
    for kind in ServiceKind::all() {
        replicas.push(stack.start_replica(kind).await.expect("replica"));
    }
    let second_order = replicas
        .iter()
        .find(|replica| replica.kind() == ServiceKind::Order)
        .expect("order replica");
    let clients = [
        orders(&stack).await,
        OrderServiceClient::new(second_order.channel().await.expect("channel")),
    ];
    let skus = ["KB-01", "MOUSE-01", "USB-C-1M", "LAMP-01", "STAND-01"];
    let customers = ["alice", "bob", "carol"];
    let placed: Vec<_> = futures::stream::iter(0..200_usize)
        .map(|number| {
            let mut client = clients[number % 2].clone();
            let lines = [(skus[number % skus.len()], 1 + (number % 2) as i32)];
            let customer = customers[number % customers.len()];
            async move {
                // Two processes of every service on one 2-core machine: a replica
                // short of connections answers UNAVAILABLE, and the client retries
                // with the same key, which can never create a second order.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let request =
                        order_request(customer, &lines, &format!("replicas-{number}"), 15_000);
                    match client.place_order(request).await {
                        Err(status)
                            if status.code() == tonic::Code::Unavailable && attempts < 20 =>
                        {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        result => break result,
                    }
                }
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let refused: Vec<_> = placed
        .iter()
        .filter_map(|result| result.as_ref().err())
        .collect();
    assert!(refused.is_empty(), "every order accepted: {refused:?}");

    let report = audit(&stack).await;
    assert_eq!(report.orders.total, 200);
    assert_eq!(report.orders.pending, 0, "{report}");
    assert!(report.orders.confirmed > 0, "{report}");
    assert_audit_clean(&stack).await;
}
