//! One trace per order: the services export to a real OTLP collector (in the
//! test process), and the traces are checked for their shape — one trace id
//! across all three services, every span's parent present, the saga's steps in
//! causal order, compensation and redeliveries inside the same trace.

use std::collections::HashSet;
use std::time::Duration;

use microcosm_proto::admin::SetFaultRequest;
use microcosm_proto::admin::fault_injection_service_client::FaultInjectionServiceClient;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{
    GetOrderRequest, Order, OrderLineRequest, OrderStatus, PlaceOrderRequest,
};
use microcosm_testkit::{
    CollectedPoint, CollectedSpan, OtlpCollector, ServiceKind, Stack, StackOptions,
};

async fn traced_stack(extra: &[(ServiceKind, &str, &str)]) -> (OtlpCollector, Stack) {
    let collector = OtlpCollector::start().await.expect("collector");
    let mut extra_env: Vec<(ServiceKind, String, String)> = Vec::new();
    for kind in ServiceKind::all() {
        extra_env.push((
            kind,
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            collector.endpoint(),
        ));
        extra_env.push((kind, "OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
    }
    extra_env.extend(
        extra
            .iter()
            .map(|(kind, name, value)| (*kind, (*name).to_owned(), (*value).to_owned())),
    );
    let stack = StackOptions {
        seed_demo_data: true,
        extra_env,
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("stack");
    (collector, stack)
}

async fn place(stack: &Stack, customer: &str, sku: &str) -> Order {
    let mut client = OrderServiceClient::new(stack.order.channel().await.expect("channel"));
    client
        .place_order(PlaceOrderRequest {
            customer_id: customer.into(),
            lines: vec![OrderLineRequest {
                sku: sku.into(),
                quantity: 1,
            }],
            idempotency_key: uuid::Uuid::now_v7().to_string(),
            wait_ms: 20_000,
        })
        .await
        .expect("place")
        .into_inner()
        .order
        .expect("order")
}

fn services(spans: &[CollectedSpan]) -> HashSet<&str> {
    spans.iter().map(|span| span.service.as_str()).collect()
}

fn orphans(spans: &[CollectedSpan]) -> Vec<&CollectedSpan> {
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    spans
        .iter()
        .filter(|span| {
            !span.parent_span_id.is_empty() && !ids.contains(span.parent_span_id.as_str())
        })
        .collect()
}

fn reached(spans: &[CollectedSpan], state: &str) -> bool {
    spans
        .iter()
        .any(|span| span.attribute("saga.to") == Some(state))
}

fn first_start(spans: &[CollectedSpan], name: &str) -> u64 {
    spans
        .iter()
        .filter(|span| span.name == name)
        .map(|span| span.start_unix_nanos)
        .min()
        .unwrap_or_else(|| panic!("no span {name}"))
}

/// Waits for a trace whose saga reached `state`, with spans from all three
/// services and no span whose parent is missing, and returns it.
async fn complete_trace(
    collector: &OtlpCollector,
    order: &Order,
    state: &str,
) -> Vec<CollectedSpan> {
    assert_eq!(
        order.trace_id.len(),
        32,
        "the order stores its trace id: {order:?}"
    );
    collector
        .wait_for_trace(&order.trace_id, Duration::from_secs(20), |spans| {
            reached(spans, state) && services(spans).len() == 3 && orphans(spans).is_empty()
        })
        .await
        .expect("a complete trace")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_order_is_one_trace_across_three_services_in_causal_order() {
    // Each message handled is logged at debug (at info, a participant logs
    // nothing per order); ask for those lines to see them carry the trace id.
    let per_message = "info,microcosm_messaging=debug";
    let (collector, stack) = traced_stack(&[
        (ServiceKind::Inventory, "RUST_LOG", per_message),
        (ServiceKind::Billing, "RUST_LOG", per_message),
    ])
    .await;
    let order = place(&stack, "alice", "KB-01").await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    let spans = complete_trace(&collector, &order, "CONFIRMED").await;

    assert_eq!(
        services(&spans),
        HashSet::from(["order", "inventory", "billing"])
    );
    let roots: Vec<_> = spans
        .iter()
        .filter(|span| span.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    assert_eq!(roots[0].name, "shop.order.v1.OrderService/PlaceOrder");

    let reserve = first_start(&spans, "process inventory.cmd.reserve_stock");
    let charge = first_start(&spans, "process billing.cmd.charge_payment");
    let commit = first_start(&spans, "process inventory.cmd.commit_stock");
    assert!(
        reserve < charge && charge < commit,
        "participants worked in saga order"
    );
    let moved_to = |state: &str| {
        spans
            .iter()
            .find(|span| span.attribute("saga.to") == Some(state))
            .map(|span| span.start_unix_nanos)
            .unwrap_or_else(|| panic!("no transition to {state}"))
    };
    assert!(
        moved_to("CHARGING") < moved_to("COMMITTING")
            && moved_to("COMMITTING") < moved_to("CONFIRMED")
    );
    assert!(
        moved_to("CHARGING") > reserve
            && moved_to("COMMITTING") > charge
            && moved_to("CONFIRMED") > commit
    );

    let process = spans
        .iter()
        .find(|span| span.name == "process billing.cmd.charge_payment")
        .expect("billing's span");
    assert_eq!(process.attribute("order_id"), Some(order.order_id.as_str()));
    assert_eq!(
        process.attribute("messaging.nats.delivery_attempt"),
        Some("1")
    );
    assert!(
        process
            .attribute("messaging.message.id")
            .is_some_and(|id| !id.is_empty())
    );

    // The logs of each service carry the same trace id.
    for kind in ServiceKind::all() {
        let log = std::fs::read_to_string(stack.service(kind).log_path()).expect("log");
        assert!(
            log.contains(&format!(r#""trace_id":"{}""#, order.trace_id)),
            "{}'s log lines carry the order's trace id",
            kind.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_order_s_compensation_is_in_its_trace() {
    let (collector, stack) = traced_stack(&[]).await;
    let order = place(&stack, "carol", "MON-27").await;
    assert_eq!(
        (order.status(), order.reason.as_str()),
        (OrderStatus::Cancelled, "insufficient_funds")
    );
    let spans = complete_trace(&collector, &order, "CANCELLED").await;
    let release = spans
        .iter()
        .find(|span| span.name == "process inventory.cmd.release_stock")
        .expect("the compensation's span is in the order's trace");
    assert_eq!(release.service, "inventory");
    assert!(release.start_unix_nanos > first_start(&spans, "process billing.cmd.charge_payment"));
    assert_eq!(
        spans
            .iter()
            .filter(|span| span.parent_span_id.is_empty())
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_shows_as_a_second_attempt_in_the_same_trace() {
    let (collector, stack) =
        traced_stack(&[(ServiceKind::Billing, "CONSUMER_ACK_WAIT_MS", "1000")]).await;
    let mut faults =
        FaultInjectionServiceClient::new(stack.billing.channel().await.expect("channel"));
    faults
        .set_fault(SetFaultRequest {
            name: "drop_ack_percent".into(),
            value: 100,
        })
        .await
        .expect("drop acks");
    let order = place(&stack, "bob", "LAMP-01").await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    let spans = collector
        .wait_for_trace(&order.trace_id, Duration::from_secs(20), |spans| {
            spans
                .iter()
                .filter(|span| span.name == "process billing.cmd.charge_payment")
                .count()
                >= 2
        })
        .await
        .expect("the redelivery's span");
    let mut attempts: Vec<&str> = spans
        .iter()
        .filter(|span| span.name == "process billing.cmd.charge_payment")
        .filter_map(|span| span.attribute("messaging.nats.delivery_attempt"))
        .collect();
    attempts.sort_unstable();
    assert_eq!(
        &attempts[..2],
        ["1", "2"],
        "the first delivery and its redelivery, one trace"
    );
}

/// Waits until `condition` holds on the collector's metrics.
async fn wait_for_metrics(
    collector: &OtlpCollector,
    what: &str,
    condition: impl Fn(&OtlpCollector) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition(collector) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never showed {what}: {:#?}",
            collector.metric_points("microcosm.saga.completed")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn total(
    collector: &OtlpCollector,
    metric: &str,
    matches: impl Fn(&CollectedPoint) -> bool,
) -> f64 {
    collector
        .metric_points(metric)
        .iter()
        .filter(|point| matches(point))
        .map(|point| point.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_saga_outcome_the_calls_served_and_the_pools() {
    let interval: Vec<(ServiceKind, &str, &str)> = ServiceKind::all()
        .into_iter()
        .map(|kind| (kind, "OTEL_METRIC_EXPORT_INTERVAL", "300"))
        .collect();
    let (collector, stack) = traced_stack(&interval).await;
    let mut confirmed = Vec::new();
    for _ in 0..4 {
        let order = place(&stack, "alice", "KB-01").await;
        assert_eq!(order.status(), OrderStatus::Confirmed);
        confirmed.push(order);
    }
    for _ in 0..2 {
        assert_eq!(
            place(&stack, "carol", "MON-27").await.status(),
            OrderStatus::Cancelled
        );
    }

    // The outcome counters sum to the orders placed, by outcome and reason.
    wait_for_metrics(&collector, "6 completed sagas", |collector| {
        total(collector, "microcosm.saga.completed", |_| true) == 6.0
    })
    .await;
    let outcome = |outcome: &'static str, reason: &'static str| {
        total(&collector, "microcosm.saga.completed", |point| {
            point.attribute("microcosm.saga.outcome") == Some(outcome)
                && point.attribute("microcosm.saga.reason") == Some(reason)
        })
    };
    assert_eq!(outcome("confirmed", ""), 4.0);
    assert_eq!(outcome("cancelled", "insufficient_funds"), 2.0);

    // Each saga left RESERVING once and CHARGING once (confirmed or declined),
    // each time with its step's duration.
    wait_for_metrics(&collector, "step durations", |collector| {
        ["RESERVING", "CHARGING"].iter().all(|state| {
            total(collector, "microcosm.saga.step.duration", |point| {
                point.attribute("microcosm.saga.state") == Some(*state)
            }) == 6.0
        })
    })
    .await;

    // Every PlaceOrder was served and timed, with its status.
    wait_for_metrics(&collector, "6 PlaceOrder calls", |collector| {
        total(collector, "rpc.server.call.duration", |point| {
            point.service == "order"
                && point.attribute("rpc.method") == Some("PlaceOrder")
                && point.attribute("rpc.grpc.status_code") == Some("0")
        }) >= 6.0
    })
    .await;
    // GetOrder with details calls inventory and billing: the order service
    // times those calls as a client, by method and status.
    OrderServiceClient::new(stack.order.channel().await.expect("channel"))
        .get_order(GetOrderRequest {
            order_id: confirmed[0].order_id.clone(),
            include_details: true,
        })
        .await
        .expect("GetOrder with details");
    wait_for_metrics(
        &collector,
        "the order service's client calls",
        |collector| {
            ["GetProduct", "GetAccount"].iter().all(|method| {
                total(collector, "rpc.client.call.duration", |point| {
                    point.service == "order"
                        && point.attribute("rpc.method") == Some(*method)
                        && point.attribute("rpc.grpc.status_code") == Some("0")
                }) == 1.0
            })
        },
    )
    .await;
    // Each service reports its pool, its memory and what its outbox published.
    for kind in ServiceKind::all() {
        wait_for_metrics(
            &collector,
            &format!("{kind}'s pool and outbox"),
            |collector| {
                let pool = collector
                    .metric_points("db.client.connection.count")
                    .iter()
                    .any(|point| point.service == kind.name());
                let memory = total(collector, "process.memory.usage", |point| {
                    point.service == kind.name()
                });
                let published = total(collector, "microcosm.outbox.published", |point| {
                    point.service == kind.name()
                });
                pool && memory > 1e6 && published > 0.0
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_rises_while_billing_is_unavailable_or_paused_and_drains_after() {
    let interval: Vec<(ServiceKind, &str, &str)> = ServiceKind::all()
        .into_iter()
        .map(|kind| (kind, "OTEL_METRIC_EXPORT_INTERVAL", "300"))
        .collect();
    let (collector, mut stack) = traced_stack(&interval).await;
    let billing_lag = |collector: &OtlpCollector| {
        total(collector, "microcosm.messaging.consumer.lag", |point| {
            point.service == "billing"
                && point.attribute("messaging.consumer.group.name") == Some("billing-commands")
        })
    };
    let billing = &stack.billing;
    let set_unavailable = |value: u32| async move {
        FaultInjectionServiceClient::new(billing.channel().await.expect("channel"))
            .set_fault(SetFaultRequest {
                name: "unavailable".into(),
                value,
            })
            .await
            .expect("set the unavailable flag");
    };
    set_unavailable(1).await;
    let client = OrderServiceClient::new(stack.order.channel().await.expect("channel"));
    // Places orders `numbers` without waiting for them to end.
    let place_without_waiting = |numbers: std::ops::Range<u32>| {
        let mut client = client.clone();
        async move {
            for number in numbers {
                client
                    .place_order(PlaceOrderRequest {
                        customer_id: "alice".into(),
                        lines: vec![OrderLineRequest {
                            sku: "MOUSE-01".into(),
                            quantity: 1,
                        }],
                        idempotency_key: format!("lag-{number}"),
                        wait_ms: 0,
                    })
                    .await
                    .expect("accepted while billing cannot charge");
            }
        }
    };
    place_without_waiting(0..3).await;
    // The charges wait in billing's consumer: its lag rises, and the order
    // service counts the three sagas in flight, waiting in CHARGING ...
    let charging = |collector: &OtlpCollector| {
        total(collector, "microcosm.saga.in_flight", |point| {
            point.attribute("microcosm.saga.state") == Some("CHARGING")
        })
    };
    wait_for_metrics(&collector, "billing's consumer lag at 3", |collector| {
        billing_lag(collector) >= 3.0 && charging(collector) == 3.0
    })
    .await;
    // ... and drains to zero once billing is back; every order then ends.
    set_unavailable(0).await;
    wait_for_metrics(
        &collector,
        "billing's consumer lag back at 0",
        |collector| {
            billing_lag(collector) == 0.0
                && total(collector, "microcosm.saga.completed", |_| true) == 3.0
                && charging(collector) == 0.0
        },
    )
    .await;
    wait_for_metrics(&collector, "order's outbox drained", |collector| {
        total(collector, "microcosm.outbox.pending", |point| {
            point.service == "order"
        }) == 0.0
    })
    .await;

    // The same with billing's process paused (SIGSTOP): it cannot even report
    // its lag, but the order service sees the sagas pile up in CHARGING; after
    // SIGCONT they drain and every one ends.
    stack.billing.pause().expect("SIGSTOP billing");
    place_without_waiting(3..6).await;
    wait_for_metrics(
        &collector,
        "3 sagas waiting on the paused billing",
        |collector| charging(collector) == 3.0,
    )
    .await;
    // What billing reported before the pause is still the latest point: wait
    // for exports made after SIGCONT (its outbox has published the three
    // charges' replies) before reading its lag.
    let billing_published = |collector: &OtlpCollector| {
        total(collector, "microcosm.outbox.published", |point| {
            point.service == "billing"
        })
    };
    let published_before = billing_published(&collector);
    stack.billing.resume().expect("SIGCONT billing");
    wait_for_metrics(
        &collector,
        "everything drained after SIGCONT",
        |collector| {
            billing_published(collector) >= published_before + 3.0
                && billing_lag(collector) == 0.0
                && total(collector, "microcosm.saga.completed", |_| true) == 6.0
                && charging(collector) == 0.0
        },
    )
    .await;
}
