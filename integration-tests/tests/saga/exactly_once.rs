//! Exactly-once effects over at-least-once delivery: duplicates are absorbed by
//! the inbox and by idempotent commands, and poison messages are parked as dead
//! letters without stopping the stream behind them.

use std::time::Duration;

use async_nats::HeaderMap;
use microcosm_messaging::envelope::new_envelope;
use microcosm_proto::messaging as msg;
use microcosm_proto::messaging::envelope::Body;
use microcosm_proto::order::OrderStatus;
use microcosm_testkit::{ServiceKind, ServingStatus, Stack};
use prost::Message;
use uuid::Uuid;

use crate::support::{assert_audit_clean, balance, patient_stack, place_and_finish};

/// Publishes raw bytes to a subject with a fresh `Nats-Msg-Id` (so JetStream
/// keeps every copy: the duplicates reach the consumer).
async fn publish(stack: &Stack, subject: &str, payload: Vec<u8>) {
    let client = stack.nats.client().await.expect("connect to NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        Uuid::now_v7().to_string().as_str(),
    );
    jetstream
        .publish_with_headers(subject.to_owned(), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("stored by JetStream");
}

/// Waits until `durable` on `stream` has nothing left to deliver or to be acked.
async fn wait_until_drained(stack: &Stack, stream: &str, durable: &str) {
    let client = stack.nats.client().await.expect("connect to NATS");
    let jetstream = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stream = jetstream.get_stream(stream).await.expect("stream");
        let info = stream.consumer_info(durable).await.expect("consumer info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{durable} never drained: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scalar(stack: &Stack, kind: ServiceKind, sql: &'static str, order_id: Uuid) -> i64 {
    let pool = stack.superuser_pool(kind).await.expect("pool");
    sqlx::query_scalar(sql)
        .bind(order_id)
        .fetch_one(&pool)
        .await
        .expect("query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_delivered_twice_or_sent_twice_charges_once() {
    let stack = patient_stack().await;
    let before = balance(&stack, "bob").await;
    let order_id = Uuid::now_v7();
    let charge = || {
        Body::ChargePayment(msg::ChargePayment {
            order_id: order_id.to_string(),
            customer_id: "bob".into(),
            amount_minor: 1_234,
        })
    };
    let first = new_envelope(charge(), order_id, None, "order");
    let resent = new_envelope(charge(), order_id, None, "order");
    // The same message twice (a redelivery the inbox must catch) ...
    publish(&stack, "billing.cmd.charge_payment", first.encode_to_vec()).await;
    publish(&stack, "billing.cmd.charge_payment", first.encode_to_vec()).await;
    // ... and the same command as a new message (a re-send after a deadline).
    publish(&stack, "billing.cmd.charge_payment", resent.encode_to_vec()).await;
    wait_until_drained(&stack, "BILLING", "billing-commands").await;

    assert_eq!(
        balance(&stack, "bob").await,
        before - 1_234,
        "charged exactly once"
    );
    let charges = scalar(
        &stack,
        ServiceKind::Billing,
        "SELECT count(*) FROM ledger_entries WHERE order_id = $1 AND kind = 'charge'",
        order_id,
    )
    .await;
    assert_eq!(charges, 1);
    let pool = stack
        .superuser_pool(ServiceKind::Billing)
        .await
        .expect("pool");
    let handled: Vec<Uuid> = sqlx::query_scalar(
        "SELECT message_id FROM inbox WHERE subject = 'billing.cmd.charge_payment'",
    )
    .fetch_all(&pool)
    .await
    .expect("inbox");
    let mut expected: Vec<Uuid> = [&first, &resent]
        .iter()
        .map(|envelope| envelope.message_id.parse().expect("uuid"))
        .collect();
    expected.sort();
    let mut handled = handled;
    handled.sort();
    assert_eq!(
        handled, expected,
        "each distinct message recorded once; the redelivered copy was not applied again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_streams_keep_flowing() {
    let stack = patient_stack().await;
    let no_body = {
        let mut envelope = new_envelope(
            Body::CommitStock(msg::CommitStock::default()),
            Uuid::now_v7(),
            None,
            "test",
        );
        envelope.body = None;
        envelope.encode_to_vec()
    };
    let misrouted = new_envelope(
        Body::StockReserved(msg::StockReserved::default()),
        Uuid::now_v7(),
        None,
        "test",
    )
    .encode_to_vec();
    let bad_command = new_envelope(
        Body::ReserveStock(msg::ReserveStock {
            order_id: "not-a-uuid".into(),
            lines: vec![],
        }),
        Uuid::now_v7(),
        None,
        "test",
    )
    .encode_to_vec();
    // Every command subject the participants consume gets the three kinds of poison.
    for subject in [
        "inventory.cmd.reserve_stock",
        "inventory.cmd.commit_stock",
        "inventory.cmd.release_stock",
        "billing.cmd.charge_payment",
        "billing.cmd.refund_payment",
    ] {
        publish(&stack, subject, b"\x00\xffnot protobuf at all".to_vec()).await;
        publish(&stack, subject, no_body.clone()).await;
        publish(&stack, subject, misrouted.clone()).await;
    }
    publish(&stack, "inventory.cmd.reserve_stock", bad_command).await;
    // And garbage on every subject the order service consumes (the participants'
    // replies and events).
    let consumed_by_order = [
        "inventory.evt.stock_reserved",
        "inventory.evt.stock_rejected",
        "inventory.evt.stock_committed",
        "inventory.evt.stock_released",
        "inventory.evt.product_restocked",
        "billing.evt.payment_captured",
        "billing.evt.payment_declined",
        "billing.evt.payment_refunded",
        "billing.evt.funds_deposited",
    ];
    for subject in consumed_by_order {
        publish(&stack, subject, b"garbage reply".to_vec()).await;
    }

    // The streams behind the poison keep flowing: a whole saga completes.
    let order = place_and_finish(&stack, "alice", &[("HEAD-01", 1)]).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    wait_until_drained(&stack, "INVENTORY", "inventory-commands").await;
    wait_until_drained(&stack, "BILLING", "billing-commands").await;
    wait_until_drained(&stack, "INVENTORY", "order-inventory-replies").await;

    for (kind, parked) in [
        (ServiceKind::Inventory, 3 * 3 + 1),
        (ServiceKind::Billing, 2 * 3),
        (ServiceKind::Order, consumed_by_order.len() as i64),
    ] {
        let pool = stack.superuser_pool(kind).await.expect("pool");
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(count, parked, "dead letters of {}", kind.name());
        assert_eq!(
            stack.service(kind).health("").await.expect("health"),
            ServingStatus::Serving
        );
    }
    assert_audit_clean(&stack).await;
}
