//! The work one order costs, pinned. Counts, not timings: how many transactions
//! wrote, how many statements each database ran, and how many commits the
//! order database made per saga on the happy path. They do not move with the
//! machine's load, so a change that adds round trips to the saga fails here.
//! docs/BENCHMARKS.md has the measured figures; the budgets leave a margin for
//! the services' background work (health probes, sweeps) during the test.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use microcosm_testkit::{ServiceKind, Stack, WorkMeter};

use crate::support::place;

/// Orders measured; enough that the background work is a small share.
const ORDERS: usize = 40;

/// Writing transactions per saga, all three databases: PlaceOrder, inventory's
/// reservation, billing's charge, inventory's commit, and the order service's
/// three replies (7), plus the sweepers' batched "published" marks (measured:
/// 7.2).
const WRITING_TRANSACTIONS_BUDGET: f64 = 8.0;
/// Explicit transactions committed per saga in the order database: PlaceOrder
/// and the three replies.
const ORDER_COMMITS_BUDGET: f64 = 4.5;
/// Statements per saga, BEGIN and COMMIT included.
/// Measured: order 26.3, inventory 13.2, billing 7.2 (2026-12-02).
const STATEMENT_BUDGETS: [(ServiceKind, f64); 3] = [
    (ServiceKind::Order, 29.0),
    (ServiceKind::Inventory, 15.0),
    (ServiceKind::Billing, 8.5),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_stays_within_its_budget_of_database_work() {
    let stack = Stack::with_demo_data().await.expect("stack");
    let databases: Vec<String> = ServiceKind::all()
        .into_iter()
        .map(|kind| kind.database().database)
        .collect();
    let names: Vec<&str> = databases.iter().map(String::as_str).collect();
    let meter = WorkMeter::new(stack.postgres(ServiceKind::Order), &names, Vec::new(), None)
        .await
        .expect("meter");
    let nats = stack.nats.client().await.expect("nats");
    let mut ends = nats
        .subscribe("order.evt.confirmed")
        .await
        .expect("subscribe");

    // Warm up (prepared statements, pool connections). The counters read are
    // exact at any moment (pg_stat_statements, the transaction id counter), so
    // they are read as soon as the last order ended.
    wait_for_ends(&mut ends, place_orders(&stack, 1).await).await;
    let before = meter.read().await.expect("read");
    wait_for_ends(&mut ends, place_orders(&stack, ORDERS).await).await;
    let per_saga = meter
        .read()
        .await
        .expect("read")
        .since(&before)
        .per(ORDERS as u64);

    let report = format!("{per_saga:#?}");
    eprintln!("work per saga over {ORDERS} orders: {report}");
    assert!(
        per_saga.writing_transactions <= WRITING_TRANSACTIONS_BUDGET,
        "writing transactions per saga over budget: {report}"
    );
    let order = &per_saga.databases[&ServiceKind::Order.database().database];
    assert!(
        order.commits <= ORDER_COMMITS_BUDGET,
        "order database commits per saga over budget: {report}"
    );
    for (kind, budget) in STATEMENT_BUDGETS {
        let work = &per_saga.databases[&kind.database().database];
        assert!(
            work.statements <= budget,
            "{} statements per saga over {budget}: {report}",
            kind.name()
        );
    }
    assert!(
        per_saga.writing_transactions >= 7.0,
        "every saga's seven steps were counted: {report}"
    );
}

/// Places `count` orders of one cable each for alice (well funded), without
/// waiting; returns their ids.
async fn place_orders(stack: &Stack, count: usize) -> BTreeSet<String> {
    let mut placed = BTreeSet::new();
    for _ in 0..count {
        placed.insert(place(stack, "alice", &[("USB-C-1M", 1)]).await.order_id);
    }
    placed
}

/// Waits until every order in `pending` was announced confirmed: heard on
/// NATS, so the wait itself runs no query.
async fn wait_for_ends(ends: &mut async_nats::Subscriber, mut pending: BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        let message = tokio::time::timeout_at(deadline, ends.next())
            .await
            .unwrap_or_else(|_| panic!("{} orders never confirmed", pending.len()))
            .expect("subscription open");
        let envelope = microcosm_messaging::envelope::decode(&message.payload).expect("envelope");
        pending.remove(&envelope.correlation_id.to_string());
    }
}
