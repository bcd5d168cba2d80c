//! What several test targets under `tests/` share: reading the outcome of a run
//! across the three databases. Each target is a scenario over real servers
//! started by `microcosm-testkit`; these helpers only look at the result.

use std::time::Duration;

use microcosm_audit::{AuditDatabases, AuditOptions, AuditReport};
use microcosm_testkit::{ServiceKind, Stack};

/// The audit across the stack's three databases.
///
/// # Panics
/// If a database cannot be read: the test cannot prove anything then.
pub async fn audit(stack: &Stack) -> AuditReport {
    let pool = |kind| async move { stack.superuser_pool(kind).await.expect("superuser pool") };
    let (order, inventory, billing) = (
        pool(ServiceKind::Order).await,
        pool(ServiceKind::Inventory).await,
        pool(ServiceKind::Billing).await,
    );
    let databases = AuditDatabases {
        order: &order,
        inventory: &inventory,
        billing: &billing,
    };
    microcosm_audit::audit(databases, &AuditOptions::default())
        .await
        .expect("the audit ran")
}

/// Asserts that the audit finds nothing wrong.
///
/// # Panics
/// On any violation, printing the report.
pub async fn assert_audit_clean(stack: &Stack) {
    let report = audit(stack).await;
    assert!(report.is_clean(), "audit found violations:\n{report}");
}

/// Waits until no order is PENDING any more.
///
/// # Panics
/// If some still are after `timeout`.
pub async fn wait_until_no_order_pending(stack: &Stack, timeout: Duration) {
    let order_db = stack
        .superuser_pool(ServiceKind::Order)
        .await
        .expect("superuser pool");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PENDING'")
                .fetch_one(&order_db)
                .await
                .expect("count pending orders");
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} orders still PENDING after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
