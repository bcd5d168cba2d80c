//! `microcosm up`, end to end: the real command, run the way a person runs it, with
//! real PostgreSQL, nats-server and service processes underneath.
//!
//! One scenario walks the whole life of a local stack: start it, place an order, stop
//! it with Ctrl-C and find nothing left running; start it again and find the order
//! still there; start it with `--fresh` and find it gone. The other tests show that a
//! run that cannot work says why before it starts anything.

mod running_up;

use std::net::{Ipv4Addr, TcpListener};

use microcosm_proto::order::{GetOrderRequest, OrderLineRequest, OrderStatus, PlaceOrderRequest};
use tonic::Code;

use crate::running_up::{
    ScratchDir, UpRun, free_base_port, is_serving, kill_service, last_lines, listening_ports,
    processes_inside, state_dir,
};
use microcosm_testkit::ServiceKind;

/// Stops `run` with Ctrl-C and checks it stopped cleanly: exit 0, PostgreSQL and NATS
/// shut down in order (their kept data needs no recovery), no gRPC port still
/// answering and no process left that works in (or names) the state directory.
async fn interrupt_and_expect_clean_stop(run: &mut UpRun, scratch: &ScratchDir, base: u16) {
    let status = run.interrupt().await.expect("microcosm up stops on Ctrl-C");
    let output = run.output();
    assert!(status.success(), "exit status {status}\n{output}");
    assert!(output.contains("stopped"), "{output}");

    let state = state_dir(scratch);
    let postgres_log = last_lines(&state.join("postgres/postgres.log"), 1);
    assert!(
        postgres_log.contains("database system is shut down"),
        "PostgreSQL log ends: {postgres_log}"
    );
    let nats_log = last_lines(&state.join("nats/nats-server.log"), 1);
    assert!(
        nats_log.contains("Server Exiting"),
        "NATS log ends: {nats_log}"
    );

    assert_eq!(
        listening_ports(base),
        Vec::<u16>::new(),
        "ports still open\n{output}"
    );
    let left = processes_inside(&state);
    assert!(
        left.is_empty(),
        "processes left running: {left:#?}\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_orders_keeps_them_across_restarts_and_forgets_them_with_fresh() {
    let scratch = ScratchDir::new().expect("scratch dir");
    let base = free_base_port().expect("free ports");

    // First run: demo data is seeded, so alice's keyboard order is confirmed.
    let mut run = UpRun::spawn(&scratch, "1", base, &[], &[]).expect("spawn up");
    run.wait_serving().await.expect("first run serving");
    // The check for leftovers below must be able to see a run's processes at all.
    let running = processes_inside(&state_dir(&scratch));
    assert!(running.len() >= 5, "servers and services: {running:#?}");
    let placed = run
        .orders()
        .await
        .expect("order client")
        .place_order(PlaceOrderRequest {
            customer_id: "alice".to_owned(),
            lines: vec![OrderLineRequest {
                sku: "KB-01".to_owned(),
                quantity: 1,
            }],
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            wait_ms: 10_000,
        })
        .await
        .expect("PlaceOrder")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(placed.status(), OrderStatus::Confirmed, "{placed:?}");
    let output = run.output();
    for expected in [
        "http://127.0.0.1:",
        "export MICROCOSM_ORDER_DATABASE_URL=postgres://microcosm_order_app:",
        "microcosm order place --customer alice --item KB-01:1 --wait",
        "Ctrl-C to stop",
    ] {
        assert!(output.contains(expected), "no {expected:?} in\n{output}");
    }
    interrupt_and_expect_clean_stop(&mut run, &scratch, base).await;

    // Second run, same directory: the order survived.
    let mut run = UpRun::spawn(&scratch, "2", base, &[], &[]).expect("spawn up");
    run.wait_serving().await.expect("second run serving");
    let found = run
        .orders()
        .await
        .expect("order client")
        .get_order(GetOrderRequest {
            order_id: placed.order_id.clone(),
            include_details: false,
        })
        .await
        .expect("the order is still there")
        .into_inner()
        .order
        .expect("an order");
    assert_eq!(found.status(), OrderStatus::Confirmed, "{found:?}");
    interrupt_and_expect_clean_stop(&mut run, &scratch, base).await;

    // Third run with --fresh: a new system that never saw the order.
    let mut run = UpRun::spawn(&scratch, "3", base, &["--fresh"], &[]).expect("spawn up");
    run.wait_serving().await.expect("fresh run serving");
    let gone = run
        .orders()
        .await
        .expect("order client")
        .get_order(GetOrderRequest {
            order_id: placed.order_id.clone(),
            include_details: false,
        })
        .await
        .expect_err("the order is gone");
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    interrupt_and_expect_clean_stop(&mut run, &scratch, base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reports_a_crashed_service_and_keeps_the_rest_running_until_ctrl_c() {
    let scratch = ScratchDir::new().expect("scratch dir");
    let base = free_base_port().expect("free ports");
    let mut run = UpRun::spawn(&scratch, "1", base, &[], &[]).expect("spawn up");
    run.wait_serving().await.expect("serving");

    kill_service(&state_dir(&scratch), ServiceKind::Billing).expect("kill billing");
    run.wait_for_output("billing-service exited on its own")
        .await
        .expect("the crash is reported");
    let output = run.output();
    assert!(output.contains("billing-service.log"), "{output}");
    for kind in [ServiceKind::Order, ServiceKind::Inventory] {
        assert!(
            is_serving(base, kind).await,
            "{kind} still serving\n{output}"
        );
    }

    interrupt_and_expect_clean_stop(&mut run, &scratch, base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_a_taken_port_names_the_port_and_the_flag_and_starts_nothing() {
    let scratch = ScratchDir::new().expect("scratch dir");
    let base = free_base_port().expect("free ports");
    let _billing_port_taken =
        TcpListener::bind((Ipv4Addr::LOCALHOST, base + 2)).expect("take billing's port");

    let mut run = UpRun::spawn(&scratch, "1", base, &[], &[]).expect("spawn up");
    let status = run.wait_for_refusal().await.expect("up refuses at once");
    let output = run.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains(&format!("port {}", base + 2)), "{output}");
    assert!(output.contains("--ports-from"), "{output}");
    assert!(
        !state_dir(&scratch).exists(),
        "nothing may be created\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_without_postgres_or_nats_names_both_plainly_and_starts_nothing() {
    let scratch = ScratchDir::new().expect("scratch dir");
    let base = free_base_port().expect("free ports");
    let nowhere = scratch.path().join("not-installed");
    let nowhere = nowhere.to_str().expect("a UTF-8 path");

    let mut run = UpRun::spawn(
        &scratch,
        "1",
        base,
        &[],
        &[("PG_BIN_DIR", nowhere), ("NATS_SERVER_BIN", nowhere)],
    )
    .expect("spawn up");
    let status = run.wait_for_refusal().await.expect("up refuses at once");
    let output = run.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains("PG_BIN_DIR="), "{output}");
    assert!(output.contains("NATS_SERVER_BIN="), "{output}");
    // Plain sentences, not a Rust debug dump of the error.
    assert!(
        !output.contains("Error {") && !output.contains("Os {"),
        "{output}"
    );
    assert!(
        !state_dir(&scratch).exists(),
        "nothing may be created\n{output}"
    );
}

/// Runs `microcosm top` with `args` against the run's metrics file and returns
/// what it printed (it must exit 0).
fn top(scratch: &ScratchDir, args: &[&str]) -> String {
    let binary = microcosm_testkit::service_binary(ServiceKind::Order)
        .expect("binaries")
        .with_file_name("microcosm");
    let output = std::process::Command::new(binary)
        .arg("top")
        .arg("--metrics-file")
        .arg(state_dir(scratch).join("metrics.json"))
        .args(args)
        .output()
        .expect("run microcosm top");
    assert!(
        output.status.success(),
        "microcosm top {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_the_local_stack_s_figures_and_counts_every_order() {
    let scratch = ScratchDir::new().expect("scratch dir");
    let base = free_base_port().expect("free ports");
    let mut run = UpRun::spawn(&scratch, "top", base, &[], &[]).expect("spawn up");
    run.wait_serving().await.expect("serving");

    // Before any metrics arrive, or with the wrong file, top says what to do.
    let missing = std::process::Command::new(
        microcosm_testkit::service_binary(ServiceKind::Order)
            .expect("binaries")
            .with_file_name("microcosm"),
    )
    .args(["top", "--once", "--metrics-file"])
    .arg(scratch.path().join("no-such.json"))
    .output()
    .expect("run microcosm top");
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("microcosm up"), "{stderr}");

    // 5 orders confirmed (alice can pay), 3 cancelled (carol cannot).
    let mut orders = run.orders().await.expect("order client");
    for (customer, sku, count) in [("alice", "KB-01", 5), ("carol", "MON-27", 3)] {
        for _ in 0..count {
            orders
                .place_order(PlaceOrderRequest {
                    customer_id: customer.to_owned(),
                    lines: vec![OrderLineRequest {
                        sku: sku.to_owned(),
                        quantity: 1,
                    }],
                    idempotency_key: uuid::Uuid::new_v4().to_string(),
                    wait_ms: 10_000,
                })
                .await
                .expect("PlaceOrder");
        }
    }

    // The services export every second, and every gauge is read on its own
    // clock (consumer lag and the census of sagas in flight every second): wait
    // until all of them have caught up with the last order, or a minute.
    let consumers = [
        "billing-commands",
        "inventory-commands",
        "order-inventory-replies",
        "order-billing-replies",
    ];
    let settled = |figures: &serde_json::Value| {
        figures["completed"] == 8.0
            && figures["in_flight"]
                .as_object()
                .is_some_and(|states| states.values().all(|count| *count == 0.0))
            && consumers
                .iter()
                .all(|consumer| figures["consumers"][consumer]["lag"] == 0.0)
            && ["order", "inventory", "billing"]
                .iter()
                .all(|service| figures["services"][service]["outbox_pending"] == 0.0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let figures = loop {
        let figures: serde_json::Value =
            serde_json::from_str(&top(&scratch, &["--json"])).expect("top --json is JSON");
        if settled(&figures) || std::time::Instant::now() > deadline {
            break figures;
        }
    };
    assert_eq!(figures["completed"], 8.0, "{figures:#}");
    assert_eq!(figures["confirmed"], 5.0, "{figures:#}");
    assert_eq!(
        figures["cancelled"]["insufficient_funds"], 3.0,
        "{figures:#}"
    );
    assert!(settled(&figures), "every saga ended: {figures:#}");
    assert!(
        figures["in_flight"].get("CHARGING").is_some(),
        "states are listed at 0: {figures:#}"
    );
    for service in ["order", "inventory", "billing"] {
        let memory = figures["services"][service]["memory_bytes"].as_f64();
        assert!(
            memory.is_some_and(|bytes| bytes > 1e6),
            "{service}: {figures:#}"
        );
    }
    for consumer in consumers {
        assert_eq!(
            figures["consumers"][consumer]["dead_letters"], 0.0,
            "{figures:#}"
        );
    }

    // The screen a person sees, and the HTML dashboard.
    let screen = top(&scratch, &["--once"]);
    assert!(screen.contains("confirmed 5 · cancelled 3\n"), "{screen}");
    assert!(
        screen.contains("CANCELLED  insufficient_funds 3\n"),
        "{screen}"
    );
    for service in ["order", "inventory", "billing"] {
        assert!(screen.contains(service), "{screen}");
    }
    let page = scratch.path().join("dashboard.html");
    top(
        &scratch,
        &["--duration", "2", "--html", page.to_str().expect("utf-8")],
    );
    let html = std::fs::read_to_string(&page).expect("the dashboard was written");
    assert!(html.contains("Saga outcomes"), "{html}");
    assert!(html.contains("confirmed <b>5</b>"), "{html}");

    interrupt_and_expect_clean_stop(&mut run, &scratch, base).await;
}
