//! `microcosm chaos --quick`, run for real, as CI's short variant of the soak:
//! 400 orders while services are SIGKILLed and restarted at random, NATS is
//! crashed once and one service's PostgreSQL once. The command's own verdict
//! (0 lost, 0 doubled, 0 stuck, audit clean) decides its exit code; this test
//! also checks that every fault the report claims was really injected.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use microcosm_testkit::{ServiceKind, service_binary};
use serde_json::Value;

/// 400 orders at 40/s take about ten seconds plus the outages; the drain a few
/// more. Far more than this means it hangs.
const CHAOS_TIMEOUT: Duration = Duration::from_secs(600);

fn microcosm_binary() -> PathBuf {
    service_binary(ServiceKind::Order)
        .expect("the workspace binaries are built: cargo build --workspace --bins")
        .with_file_name("microcosm")
}

fn number(report: &Value, pointer: &str) -> u64 {
    report
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} is a number in\n{report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_chaos_soak_loses_nothing_doubles_nothing_and_leaves_nothing_stuck() {
    let output = tokio::process::Command::new(microcosm_binary())
        .args(["chaos", "--quick", "--seed", "20261123", "--json"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CHAOS_TIMEOUT, output)
        .await
        .expect("microcosm chaos --quick finished in time")
        .expect("microcosm chaos ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "microcosm chaos --quick failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(&stdout).expect("the report is JSON");

    assert_eq!(report["passed"], Value::Bool(true), "{report:#}");
    assert_eq!(report["audit"]["clean"], Value::Bool(true), "{report:#}");
    assert_eq!(number(&report, "/orders/placed"), 400);
    for zero in [
        "/orders/lost",
        "/orders/doubled",
        "/orders/stuck",
        "/orders/not_placed",
    ] {
        assert_eq!(number(&report, zero), 0, "{zero}");
    }
    // Every order ended, one way or the other, and the audit saw them all.
    assert_eq!(
        number(&report, "/orders/confirmed") + number(&report, "/orders/cancelled"),
        400
    );
    assert_eq!(number(&report, "/audit/orders/total"), 400);
    assert!(number(&report, "/orders/confirmed") > 300, "{report:#}");
    let reasons = report["orders"]["cancelled_by_reason"]
        .as_object()
        .expect("reasons");
    for reason in ["insufficient_funds", "unknown_customer", "out_of_stock"] {
        assert!(reasons.contains_key(reason), "{reason} in {reasons:?}");
    }

    // The faults were injected: one NATS crash, one database crash, and kills.
    assert_eq!(number(&report, "/faults/nats_restarts"), 1);
    let database_restarts: u64 = report["faults"]["database_restarts"]
        .as_object()
        .expect("database restarts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(database_restarts, 1);
    let kills: u64 = report["faults"]["kills"]
        .as_object()
        .expect("kills")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!(kills >= 1, "{report:#}");
    assert_eq!(number(&report, "/faults/total"), kills + 2);
    // And the run said what it did while it did it.
    assert!(stderr.contains("SIGKILL nats-server"), "{stderr}");
    assert!(stderr.contains("PostgreSQL, down for"), "{stderr}");
}
