//! Least privilege on NATS, against the real server with the deployment's
//! users and permissions (k8s/base/nats/auth.conf, which the test kit loads):
//! a service's credentials reach only its own subjects and consumers.
//!
//! `mtls` runs the saga over mutual TLS. (The PostgreSQL roles are proven in
//! `foundation::data_isolation`, the request limits in `foundation::limits`.)

mod mtls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use microcosm_testkit::{ServiceKind, Stack};

/// A client logged in with `kind`'s own credentials (as the service does), and the
/// errors the server sends it.
async fn connect_as(
    stack: &Stack,
    kind: ServiceKind,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    let url = stack.nats.service_url(kind);
    let options =
        microcosm_messaging::with_url_credentials(async_nats::ConnectOptions::new(), &url);
    let client = options
        .custom_inbox_prefix(format!("_INBOX_{}", kind.name()))
        .event_callback(move |event| {
            let seen = Arc::clone(&seen);
            async move {
                if let async_nats::Event::ServerError(error) = event {
                    seen.lock()
                        .expect("errors")
                        .push(error.to_string().to_lowercase());
                }
            }
        })
        .connect(url)
        .await
        .expect("the service's credentials log in");
    (client, errors)
}

/// Waits until the server reported a permissions violation mentioning `subject`.
async fn violation_reported(errors: &Mutex<Vec<String>>, subject: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = errors
            .lock()
            .expect("errors")
            .iter()
            .any(|error| error.contains("permissions violation") && error.contains(subject));
        if found {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no permissions violation for {subject}: {:?}",
            errors.lock().expect("errors")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stream_messages(stack: &Stack, stream: &str) -> u64 {
    let admin = jetstream::new(stack.nats.client().await.expect("admin"));
    let mut stream = admin.get_stream(stream).await.expect("stream");
    stream.info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_cannot_publish_billing_s_subjects_nor_read_order_s_commands_to_billing() {
    let stack = Stack::with_demo_data().await.expect("stack");
    let (inventory, errors) = connect_as(&stack, ServiceKind::Inventory).await;
    let js = jetstream::new(inventory.clone());

    // Publishing on billing's subjects is refused, and nothing reaches its stream.
    let billing_before = stream_messages(&stack, "BILLING").await;
    inventory
        .publish("billing.evt.payment_captured", "forged capture".into())
        .await
        .expect("sent");
    inventory.flush().await.expect("flushed");
    violation_reported(&errors, "billing.evt.payment_captured").await;
    let forged_command = js
        .publish("billing.cmd.charge_payment", "forged charge".into())
        .await;
    let acked = match forged_command {
        Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack).await,
        Err(error) => Ok(Err(error)),
    };
    assert!(
        !matches!(acked, Ok(Ok(_))),
        "JetStream stored a forged command"
    );
    assert_eq!(stream_messages(&stack, "BILLING").await, billing_before);

    // Reading the commands order sends to billing: no subscription ...
    let mut spy = inventory.subscribe("billing.cmd.>").await.expect("sent");
    violation_reported(&errors, "billing.cmd.>").await;
    // ... no consumer of its own on billing's stream ...
    let billing = js
        .get_stream("BILLING")
        .await
        .expect("stream info is allowed");
    let created = tokio::time::timeout(
        Duration::from_secs(5),
        billing.create_consumer(consumer::pull::Config {
            durable_name: Some("spy".into()),
            filter_subject: "billing.cmd.>".into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(
        !matches!(created, Ok(Ok(_))),
        "inventory created a consumer on BILLING"
    );
    // ... and no pulling from billing's own durable consumer.
    let pulled = tokio::time::timeout(
        Duration::from_secs(5),
        billing.get_consumer::<consumer::pull::Config>("billing-commands"),
    )
    .await;
    assert!(
        !matches!(pulled, Ok(Ok(_))),
        "inventory looked up billing's consumer"
    );

    // Meanwhile a real order flows: billing gets its command, inventory saw none.
    let mut orders = microcosm_proto::order::order_service_client::OrderServiceClient::new(
        stack.order.channel().await.expect("channel"),
    );
    let placed = orders
        .place_order(microcosm_proto::order::PlaceOrderRequest {
            customer_id: "alice".into(),
            lines: vec![microcosm_proto::order::OrderLineRequest {
                sku: "KB-01".into(),
                quantity: 1,
            }],
            idempotency_key: "security-probe".into(),
            wait_ms: 20_000,
        })
        .await
        .expect("order placed")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        placed.status(),
        microcosm_proto::order::OrderStatus::Confirmed
    );
    let leaked = tokio::time::timeout(Duration::from_millis(500), spy.next()).await;
    assert!(
        !matches!(leaked, Ok(Some(_))),
        "inventory read a command to billing"
    );

    // Its own events it may publish, with a PubAck from JetStream.
    let own = js
        .publish("inventory.evt.security_probe", "probe".into())
        .await
        .expect("sent")
        .await;
    assert!(own.is_ok(), "inventory publishes its own events: {own:?}");
}
