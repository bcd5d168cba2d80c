//! The audit against real PostgreSQL: the three service databases of a real
//! stack (migrated by the real services), filled with rows that show one
//! scenario each. Consistent sagas must audit clean; each broken invariant must
//! be reported by exactly its own check, about exactly its own order, product
//! or account, and by no other check.
//!
//! Scenarios share a stack (one per test) and stay apart by their order ids,
//! SKUs and customers.

mod scenario;

use std::time::Duration;

use microcosm_audit::{AuditDatabases, AuditError, AuditOptions, Database, audit, checks};
use microcosm_testkit::Stack;
use scenario::{Databases, OrderState, assert_findings, line, run_sql, total_of};
use sqlx::postgres::PgPoolOptions;

type TestResult = anyhow::Result<()>;

const TWO_MINUTES: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_that_ended_every_way_audit_clean_with_their_counts() -> TestResult {
    let stack = Stack::with_demo_data().await?;
    let db = Databases::of(&stack).await?;

    // Confirmed: stock committed, payment captured, one charge of the total.
    let lines = [line("KB-01", 2), line("MOUSE-01", 1)];
    let total = total_of(&lines);
    let confirmed = db
        .insert_order("alice", OrderState::Confirmed, &lines, total)
        .await?;
    db.record_reservation(confirmed, "COMMITTED", &lines)
        .await?;
    db.record_payment(confirmed, "alice", "CAPTURED", total)
        .await?;
    db.record_ledger("alice", "charge", total, Some(confirmed))
        .await?;

    // Cancelled after the charge (the commit timed out): stock released,
    // payment refunded, charge and refund cancel out.
    let lines = [line("MON-27", 1)];
    let total = total_of(&lines);
    let compensated = db
        .insert_order("bob", OrderState::Cancelled("step_timeout"), &lines, total)
        .await?;
    db.record_reservation(compensated, "RELEASED", &lines)
        .await?;
    db.record_payment(compensated, "bob", "REFUNDED", total)
        .await?;
    db.record_ledger("bob", "charge", total, Some(compensated))
        .await?;
    db.record_ledger("bob", "refund", total, Some(compensated))
        .await?;

    // Cancelled because inventory refused: nothing held, never charged.
    let lines = [line("MON-27", 100)];
    let out_of_stock = db
        .insert_order("alice", OrderState::Cancelled("out_of_stock"), &lines, 0)
        .await?;
    db.record_reservation(out_of_stock, "REJECTED", &lines)
        .await?;

    // Cancelled because billing declined: stock released, nothing taken.
    let lines = [line("KB-01", 1)];
    let total = total_of(&lines);
    let declined = db
        .insert_order(
            "carol",
            OrderState::Cancelled("insufficient_funds"),
            &lines,
            total,
        )
        .await?;
    db.record_reservation(declined, "RELEASED", &lines).await?;
    db.record_payment(declined, "carol", "DECLINED", total)
        .await?;

    // Cancelled before either participant acted: a RELEASED tombstone without
    // lines and a VOIDED payment, so late commands are refused.
    let lines = [line("MOUSE-01", 1)];
    let too_late = db
        .insert_order("bob", OrderState::Cancelled("step_timeout"), &lines, 0)
        .await?;
    db.record_reservation(too_late, "RELEASED", &[]).await?;
    db.record_payment(too_late, "bob", "VOIDED", 0).await?;

    // In flight: stock reserved, no payment yet; not judged, only counted.
    let lines = [line("KB-01", 1)];
    let in_flight = db
        .insert_order("alice", OrderState::InFlight, &lines, 0)
        .await?;
    db.record_reservation(in_flight, "RESERVED", &lines).await?;

    let report = db.audit(&AuditOptions::default()).await?;

    assert!(report.is_clean(), "expected a clean audit:\n{report}");
    assert_eq!(report.orders.total, 6);
    assert_eq!(report.orders.confirmed, 1);
    assert_eq!(report.orders.pending, 1);
    assert_eq!(report.orders.in_flight, 1);
    assert_eq!(
        report.orders.cancelled_by_reason,
        [
            ("insufficient_funds".to_owned(), 1),
            ("out_of_stock".to_owned(), 1),
            ("step_timeout".to_owned(), 2),
        ]
        .into(),
    );
    let text = report.to_string();
    assert!(
        text.contains("orders: 6 total, 1 pending (1 in flight), 1 confirmed, 4 cancelled"),
        "{text}"
    );
    assert!(text.ends_with("audit clean"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_confirmed_cancelled_and_stuck_orders_are_each_named_by_their_check() -> TestResult {
    let stack = Stack::with_demo_data().await?;
    let db = Databases::of(&stack).await?;
    let lines = [line("KB-01", 1), line("MOUSE-01", 2)];
    let total = total_of(&lines);
    let cancelled = || OrderState::Cancelled("payment_declined");

    // Confirmed, but inventory never heard of it.
    let never_reserved = db
        .insert_order("alice", OrderState::Confirmed, &lines, total)
        .await?;
    db.record_payment(never_reserved, "alice", "CAPTURED", total)
        .await?;
    db.record_ledger("alice", "charge", total, Some(never_reserved))
        .await?;

    // Confirmed, but inventory committed one keyboard fewer than ordered.
    let short_committed = db
        .insert_order("alice", OrderState::Confirmed, &lines, total)
        .await?;
    db.record_reservation(short_committed, "COMMITTED", &[line("MOUSE-01", 2)])
        .await?;
    db.record_payment(short_committed, "alice", "CAPTURED", total)
        .await?;
    db.record_ledger("alice", "charge", total, Some(short_committed))
        .await?;

    // Confirmed, but the payment row records less than the total.
    let underpaid = db
        .insert_order("alice", OrderState::Confirmed, &lines, total)
        .await?;
    db.record_reservation(underpaid, "COMMITTED", &lines)
        .await?;
    db.record_payment(underpaid, "alice", "CAPTURED", total - 1)
        .await?;
    db.record_ledger("alice", "charge", total, Some(underpaid))
        .await?;

    // Confirmed with a total its lines do not add up to, charged in full.
    let mispriced = db
        .insert_order("alice", OrderState::Confirmed, &lines, total + 100)
        .await?;
    db.record_reservation(mispriced, "COMMITTED", &lines)
        .await?;
    db.record_payment(mispriced, "alice", "CAPTURED", total + 100)
        .await?;
    db.record_ledger("alice", "charge", total + 100, Some(mispriced))
        .await?;

    // Confirmed and captured, but the charge never reached the ledger.
    let unledgered = db
        .insert_order("alice", OrderState::Confirmed, &lines, total)
        .await?;
    db.record_reservation(unledgered, "COMMITTED", &lines)
        .await?;
    db.record_payment(unledgered, "alice", "CAPTURED", total)
        .await?;

    // Cancelled, but its units are still held.
    let still_reserved = db.insert_order("bob", cancelled(), &lines, total).await?;
    db.record_reservation(still_reserved, "RESERVED", &lines)
        .await?;

    // Cancelled, but its units were sold anyway.
    let still_committed = db.insert_order("bob", cancelled(), &lines, total).await?;
    db.record_reservation(still_committed, "COMMITTED", &lines)
        .await?;

    // Cancelled, the money given back, but the payment still says CAPTURED.
    let still_captured = db.insert_order("bob", cancelled(), &lines, total).await?;
    db.record_reservation(still_captured, "RELEASED", &lines)
        .await?;
    db.record_payment(still_captured, "bob", "CAPTURED", total)
        .await?;
    db.record_ledger("bob", "charge", total, Some(still_captured))
        .await?;
    db.record_ledger("bob", "refund", total, Some(still_captured))
        .await?;

    // Cancelled and marked REFUNDED, but the refund never reached the ledger.
    let refund_lost = db.insert_order("bob", cancelled(), &lines, total).await?;
    db.record_reservation(refund_lost, "RELEASED", &lines)
        .await?;
    db.record_payment(refund_lost, "bob", "REFUNDED", total)
        .await?;
    db.record_ledger("bob", "charge", total, Some(refund_lost))
        .await?;

    // PENDING for two minutes: stuck. Placed just now: in flight, not judged.
    let stuck = db
        .insert_order("alice", OrderState::PendingFor(TWO_MINUTES), &lines, 0)
        .await?;
    db.insert_order("alice", OrderState::InFlight, &lines, 0)
        .await?;

    let report = db.audit(&AuditOptions::default()).await?;

    assert_findings(
        &report,
        &[
            (
                checks::CONFIRMED_ORDER_HAS_COMMITTED_STOCK,
                never_reserved.to_string(),
            ),
            (
                checks::CONFIRMED_ORDER_HAS_COMMITTED_STOCK,
                short_committed.to_string(),
            ),
            (
                checks::CONFIRMED_ORDER_HAS_CAPTURED_PAYMENT,
                underpaid.to_string(),
            ),
            (
                checks::CONFIRMED_ORDER_TOTAL_MATCHES_LINES,
                mispriced.to_string(),
            ),
            (
                checks::CONFIRMED_ORDER_LEDGER_NETS_TO_TOTAL,
                unledgered.to_string(),
            ),
            (
                checks::CANCELLED_ORDER_HOLDS_NO_STOCK,
                still_reserved.to_string(),
            ),
            (
                checks::CANCELLED_ORDER_HOLDS_NO_STOCK,
                still_committed.to_string(),
            ),
            (
                checks::CANCELLED_ORDER_HAS_NO_CAPTURED_PAYMENT,
                still_captured.to_string(),
            ),
            (
                checks::CANCELLED_ORDER_LEDGER_NETS_TO_ZERO,
                refund_lost.to_string(),
            ),
            (checks::PENDING_ORDER_IS_NOT_STUCK, stuck.to_string()),
        ],
    );
    assert_eq!(report.orders.pending, 2);
    assert_eq!(report.orders.in_flight, 1);
    let text = report.to_string();
    assert!(text.contains("10 violations:"), "{text}");
    assert!(
        text.contains(&format!(
            "{}: order {short_committed}: reservation holds MOUSE-01 × 2 but the order is for KB-01 × 1, MOUSE-01 × 2",
            checks::CONFIRMED_ORDER_HAS_COMMITTED_STOCK
        )),
        "{text}"
    );

    // With a longer patience the old PENDING order counts as in flight instead.
    let patient = AuditOptions {
        stuck_after: Duration::from_secs(3600),
    };
    let report = db.audit(&patient).await?;
    assert!(
        !scenario::findings(&report)
            .contains(&(checks::PENDING_ORDER_IS_NOT_STUCK, stuck.to_string())),
        "{report}"
    );
    assert_eq!(report.orders.in_flight, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_bad_stock_bad_balances_and_ledger_anomalies_are_each_named_by_their_check()
-> TestResult {
    let stack = Stack::with_demo_data().await?;
    let db = Databases::of(&stack).await?;
    // Remove the guards the schema has, to show the audit does not rely on them.
    run_sql(
        &db.inventory,
        "ALTER TABLE products DROP CONSTRAINT products_available_check",
    )
    .await?;
    run_sql(
        &db.billing,
        "ALTER TABLE accounts DROP CONSTRAINT accounts_balance_minor_check",
    )
    .await?;
    run_sql(&db.billing, "DROP INDEX ledger_entries_once_per_order").await?;
    let lines = [line("KB-01", 1)];
    let total = total_of(&lines);

    // Rows in inventory and billing for orders the order database never had.
    let unknown_reservation = uuid::Uuid::now_v7();
    db.record_reservation(unknown_reservation, "RELEASED", &lines)
        .await?;
    let unknown_payment = uuid::Uuid::now_v7();
    db.record_payment(unknown_payment, "alice", "DECLINED", total)
        .await?;
    let unknown_charge = uuid::Uuid::now_v7();
    db.record_ledger("alice", "charge", total, Some(unknown_charge))
        .await?;

    // Stock: one product oversold, one with units reserved for nobody.
    run_sql(
        &db.inventory,
        "INSERT INTO products (sku, name, unit_price_minor, available)
         VALUES ('OVERSOLD', 'Sold twice', 100, -1), ('LEAKED', 'Held for no one', 100, 5)",
    )
    .await?;
    run_sql(
        &db.inventory,
        "UPDATE products SET reserved = 3 WHERE sku = 'LEAKED'",
    )
    .await?;

    // Balances: one overdrawn (its ledger agrees), one drifted from its ledger.
    db.open_account("overdrawn", 100).await?;
    db.in_flight_order_with_ledger("overdrawn", &lines, &[("charge", total)])
        .await?;
    db.open_account("drifted", 900).await?;
    run_sql(
        &db.billing,
        "UPDATE accounts SET balance_minor = balance_minor + 100 WHERE customer_id = 'drifted'",
    )
    .await?;

    // The ledger per order, on orders still in flight (whose totals are not yet
    // judged), so only the ledger rule itself can fire.
    let (charge, refund) = (("charge", total), ("refund", total));
    let charged_twice = db
        .in_flight_order_with_ledger("bob", &lines, &[charge, charge])
        .await?;
    let refunded_twice = db
        .in_flight_order_with_ledger("bob", &lines, &[charge, refund, refund])
        .await?;
    let refunded_uncharged = db
        .in_flight_order_with_ledger("bob", &lines, &[refund])
        .await?;
    let refunded_short = db
        .in_flight_order_with_ledger("bob", &lines, &[charge, ("refund", total - 1)])
        .await?;

    let report = db.audit(&AuditOptions::default()).await?;

    assert_findings(
        &report,
        &[
            (
                checks::RESERVATION_HAS_ORDER,
                unknown_reservation.to_string(),
            ),
            (checks::PAYMENT_HAS_ORDER, unknown_payment.to_string()),
            (checks::LEDGER_ENTRY_HAS_ORDER, unknown_charge.to_string()),
            (checks::STOCK_IS_NOT_NEGATIVE, "product OVERSOLD".to_owned()),
            (
                checks::PRODUCT_RESERVED_MATCHES_RESERVATIONS,
                "product LEAKED".to_owned(),
            ),
            (
                checks::BALANCE_IS_NOT_NEGATIVE,
                "account overdrawn".to_owned(),
            ),
            (
                checks::ACCOUNT_BALANCE_MATCHES_LEDGER,
                "account drifted".to_owned(),
            ),
            (
                checks::AT_MOST_ONE_CHARGE_PER_ORDER,
                charged_twice.to_string(),
            ),
            (
                checks::AT_MOST_ONE_REFUND_PER_ORDER,
                refunded_twice.to_string(),
            ),
            (checks::REFUND_HAS_CHARGE, refunded_uncharged.to_string()),
            (checks::REFUND_EQUALS_CHARGE, refunded_short.to_string()),
        ],
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_the_audit_and_is_named() -> TestResult {
    let nowhere = format!(
        "postgres://nobody@127.0.0.1:{}/nothing",
        microcosm_testkit::free_port()?
    );
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&nowhere)?;
    let databases = AuditDatabases {
        order: &pool,
        inventory: &pool,
        billing: &pool,
    };

    let error = audit(databases, &AuditOptions::default())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("the audit of an unreachable database succeeded"))?;

    // Inventory is read first (orders last, so new orders never look orphaned).
    assert!(matches!(error, AuditError::Read { .. }), "{error:?}");
    assert_eq!(error.database(), Database::Inventory);
    assert!(
        error.to_string().contains("the inventory database"),
        "{error}"
    );
    Ok(())
}
