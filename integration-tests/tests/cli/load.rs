//! `microcosm load`: the steady load compose's `loadgen` profile runs, against a
//! real stack. Every order it places exists afterwards and ends, and the audit is
//! clean: a load generator that doubled or lost orders would hide real bugs.

use std::time::Duration;

use integration_tests::{audit, wait_until_no_order_pending};
use microcosm_testkit::Stack;

use crate::support::Microcosm;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_places_the_orders_asked_for_and_every_one_ends() {
    let stack = Stack::with_demo_data().await.expect("stack");
    let cli = Microcosm::for_stack(&stack);
    let run = cli
        .run(&["load", "--orders", "60", "--rate", "60"])
        .await
        .expect_exit(0);
    // Retries are allowed: on a starved machine a call can wait past the pool's
    // acquire timeout and be answered UNAVAILABLE; the client sends it again with
    // the same idempotency key, and the audit below proves nothing was doubled.
    let summary = run
        .stderr
        .lines()
        .rfind(|line| line.starts_with("load: 60 placed, "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", run.stderr));
    assert!(
        summary.ends_with(" retried, 0 could not be placed"),
        "{}\norder service log:\n{}",
        run.stderr,
        stack.order.log_tail()
    );
    wait_until_no_order_pending(&stack, Duration::from_secs(60)).await;
    let report = audit(&stack).await;
    assert_eq!(report.orders.total, 60, "{report}");
    assert!(report.orders.confirmed > 0, "{report}");
    assert!(report.is_clean(), "{report}");
}
