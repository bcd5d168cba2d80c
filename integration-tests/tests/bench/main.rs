//! `microcosm bench --quick`, run for real: it starts its own stack, loads the
//! saga and the monolith, and reports every figure it promises.
//!
//! Timings depend on the machine and on what else runs on it, so this test
//! asserts that each figure was measured, never how large it is; the numbers
//! themselves are in docs/BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use microcosm_testkit::{ServiceKind, service_binary};
use serde_json::Value;

/// A quick bench starts a stack, times six cold starts and runs two 3 s loads;
/// far more than that means it hangs.
const BENCH_TIMEOUT: Duration = Duration::from_secs(300);

/// The `microcosm` executable built next to the service binaries.
fn microcosm_binary() -> PathBuf {
    service_binary(ServiceKind::Order)
        .expect("the workspace binaries are built: cargo build --workspace --bins")
        .with_file_name("microcosm")
}

/// Runs `microcosm bench --quick` and returns its JSON report.
async fn run_quick_bench() -> Value {
    let report_path =
        std::env::temp_dir().join(format!("microcosm-bench-{}.json", uuid::Uuid::now_v7()));
    let output = tokio::process::Command::new(microcosm_binary())
        .args(["bench", "--quick", "--report-json"])
        .arg(&report_path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BENCH_TIMEOUT, output)
        .await
        .expect("microcosm bench --quick finished in time")
        .expect("microcosm bench ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "microcosm bench --quick failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("Saga completed/s / monolith orders/s"),
        "the table is printed:\n{stdout}"
    );
    let text = std::fs::read_to_string(&report_path).expect("the JSON report was written");
    let _ = std::fs::remove_file(&report_path);
    serde_json::from_str(&text).expect("the report is JSON")
}

/// Asserts that the report holds a positive number at `path` (a JSON pointer).
fn assert_measured(report: &Value, path: &str) {
    let value = report.pointer(path).and_then(Value::as_f64);
    assert!(
        value.is_some_and(|value| value > 0.0),
        "the report has a positive number at {path}: {report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_bench_measures_the_saga_the_monolith_and_every_service() {
    let report = run_quick_bench().await;

    for saga_figure in [
        "/saga/placed",
        "/saga/completed",
        "/saga/completed_per_second",
        "/saga/ack_latency_ms/count",
        "/saga/place_to_end_latency_ms/count",
        "/saga/work_per_order/cpu_ms",
        "/saga/work_per_order/cpu_ms_by_process/postgres",
        "/saga/work_per_order/cpu_ms_by_process/order",
        "/saga/work_per_order/transactions",
        "/saga/work_per_order/writing_transactions",
        "/saga/work_per_order/statements",
        "/saga/work_per_order/jetstream_messages",
        "/monolith/work_per_order/cpu_ms",
        "/monolith/work_per_order/transactions",
        "/monolith/work_per_order/statements",
    ] {
        assert_measured(&report, saga_figure);
    }
    assert_eq!(
        report.pointer("/audit/clean"),
        Some(&Value::Bool(true)),
        "the databases agree after the load: {report:#}"
    );
    assert_measured(&report, "/monolith/orders_per_second");
    assert_measured(&report, "/saga_to_monolith_ratio");
    for service in ["order", "inventory", "billing"] {
        for figure in [
            "first_start_ms",
            "cold_start_median_ms",
            "idle_rss_mib",
            "peak_rss_mib",
        ] {
            assert_measured(&report, &format!("/services/{service}/{figure}"));
        }
    }
}
