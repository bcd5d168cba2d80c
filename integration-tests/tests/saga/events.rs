//! What leaves a service besides saga replies: domain events through the same
//! outbox, the outbox's own housekeeping, and the audit as a command.

use std::time::Duration;

use microcosm_messaging::envelope::decode;
use microcosm_proto::billing::DepositRequest;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::RestockProductRequest;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::messaging::envelope::Body;
use microcosm_testkit::{ServiceKind, Stack, StackOptions};

use crate::support::{patient_stack, place_and_finish};

/// The body of the newest message on `subject`, waiting for it to arrive.
async fn last_event(stack: &Stack, stream: &str, subject: &str) -> Body {
    let client = stack.nats.client().await.expect("connect");
    let stream = async_nats::jetstream::new(client)
        .get_stream(stream)
        .await
        .expect("stream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(message) = stream.get_last_raw_message_by_subject(subject).await {
            return decode(&message.payload).expect("an envelope").body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event on {subject}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_events_go_out_through_the_outbox() {
    let stack = patient_stack().await;
    let confirmed = place_and_finish(&stack, "alice", &[("KB-01", 1)]).await;
    let Body::OrderConfirmed(event) = last_event(&stack, "ORDER", "order.evt.confirmed").await
    else {
        panic!("not an OrderConfirmed");
    };
    assert_eq!(
        (event.order_id, event.total_minor),
        (confirmed.order_id.clone(), confirmed.total_minor)
    );
    let Body::OrderPlaced(placed) = last_event(&stack, "ORDER", "order.evt.placed").await else {
        panic!("not an OrderPlaced");
    };
    assert_eq!(placed.order_id, confirmed.order_id);

    let cancelled = place_and_finish(&stack, "carol", &[("CHAIR-01", 1)]).await;
    let Body::OrderCancelled(event) = last_event(&stack, "ORDER", "order.evt.cancelled").await
    else {
        panic!("not an OrderCancelled");
    };
    assert_eq!(
        (event.order_id, event.reason.as_str()),
        (cancelled.order_id, "insufficient_funds")
    );

    InventoryServiceClient::new(stack.inventory.channel().await.expect("channel"))
        .restock_product(RestockProductRequest {
            sku: "LAMP-01".into(),
            quantity: 5,
        })
        .await
        .expect("restock");
    let Body::ProductRestocked(event) =
        last_event(&stack, "INVENTORY", "inventory.evt.product_restocked").await
    else {
        panic!("not a ProductRestocked");
    };
    assert_eq!((event.sku.as_str(), event.quantity_added), ("LAMP-01", 5));

    BillingServiceClient::new(stack.billing.channel().await.expect("channel"))
        .deposit(DepositRequest {
            customer_id: "bob".into(),
            amount_minor: 700,
        })
        .await
        .expect("deposit");
    let Body::FundsDeposited(event) =
        last_event(&stack, "BILLING", "billing.evt.funds_deposited").await
    else {
        panic!("not a FundsDeposited");
    };
    assert_eq!(
        (event.customer_id.as_str(), event.amount_minor),
        ("bob", 700)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_outbox_rows_are_cleaned_up_after_their_retention() {
    let stack = StackOptions {
        seed_demo_data: true,
        extra_env: ServiceKind::all()
            .into_iter()
            .map(|kind| (kind, "OUTBOX_RETENTION_MS".to_owned(), "200".to_owned()))
            .collect(),
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("stack");
    place_and_finish(&stack, "alice", &[("KB-01", 1)]).await;
    for kind in ServiceKind::all() {
        let pool = stack.superuser_pool(kind).await.expect("pool");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&pool)
                .await
                .expect("count");
            if left == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {left} outbox rows never cleaned up",
                kind.name()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microcosm_audit_exits_zero_when_clean_and_one_on_a_violation() {
    let stack = patient_stack().await;
    place_and_finish(&stack, "alice", &[("KB-01", 1)]).await;
    let cli = microcosm_testkit::service_binary(ServiceKind::Order)
        .expect("binaries built")
        .with_file_name("microcosm");
    let url = |kind: ServiceKind| {
        stack
            .postgres(kind)
            .superuser_url(&kind.database().database)
    };
    let run = || {
        tokio::process::Command::new(&cli)
            .arg("audit")
            .env("MICROCOSM_ORDER_DATABASE_URL", url(ServiceKind::Order))
            .env(
                "MICROCOSM_INVENTORY_DATABASE_URL",
                url(ServiceKind::Inventory),
            )
            .env("MICROCOSM_BILLING_DATABASE_URL", url(ServiceKind::Billing))
            .output()
    };
    let clean = run().await.expect("run microcosm audit");
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert!(String::from_utf8_lossy(&clean.stdout).contains("audit clean"));

    // Money appears from nowhere: the balance no longer matches the ledger.
    let billing = stack
        .superuser_pool(ServiceKind::Billing)
        .await
        .expect("pool");
    sqlx::query("UPDATE accounts SET balance_minor = balance_minor + 1 WHERE customer_id = 'bob'")
        .execute(&billing)
        .await
        .expect("tamper");
    let dirty = run().await.expect("run microcosm audit");
    assert_eq!(dirty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dirty.stdout).contains("account_balance_matches_ledger"));
}
