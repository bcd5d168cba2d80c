//! gRPC over mutual TLS with the certificates `microcosm certs` writes: the
//! services serve only TLS and require a client certificate signed by the CA;
//! order calls inventory and billing over mutual TLS; the CLI passes with its
//! certificate and is refused without one.

use std::path::{Path, PathBuf};
use std::process::Output;

use microcosm_proto::order::GetOrderRequest;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_testkit::{ServiceKind, StackOptions, service_binary};
use serde_json::Value;

fn microcosm() -> PathBuf {
    service_binary(ServiceKind::Order)
        .expect("the workspace binaries are built")
        .with_file_name("microcosm")
}

async fn run(args: &[String]) -> Output {
    tokio::process::Command::new(microcosm())
        .args(args)
        .env_remove("MICROCOSM_TLS_CA")
        .env_remove("MICROCOSM_TLS_CERT")
        .env_remove("MICROCOSM_TLS_KEY")
        .kill_on_drop(true)
        .output()
        .await
        .expect("microcosm ran")
}

fn pem(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_runs_over_mutual_tls_and_a_client_without_a_certificate_is_refused() {
    let certs = tempfile::tempdir().expect("temp dir");
    let dir = certs.path();
    let written = run(&["certs".into(), "--dir".into(), dir.display().to_string()]).await;
    assert!(written.status.success(), "{written:?}");

    let extra_env = ServiceKind::all()
        .into_iter()
        .flat_map(|kind| {
            [
                ("GRPC_TLS_CERT", pem(dir, &format!("{}.pem", kind.name()))),
                (
                    "GRPC_TLS_KEY",
                    pem(dir, &format!("{}-key.pem", kind.name())),
                ),
                ("GRPC_TLS_CA", pem(dir, "ca.pem")),
            ]
            .map(|(name, value)| (kind, name.to_owned(), value))
        })
        .collect();
    let stack = StackOptions {
        seed_demo_data: true,
        extra_env,
        ..StackOptions::default()
    }
    .start()
    .await
    .expect("a stack serving mutual TLS");
    assert!(stack.order.endpoint().starts_with("https://"));

    let urls = [
        "--order-url".to_owned(),
        stack.order.endpoint(),
        "--inventory-url".to_owned(),
        stack.inventory.endpoint(),
        "--billing-url".to_owned(),
        stack.billing.endpoint(),
    ];
    let with_certificate = [
        "--tls-ca".to_owned(),
        pem(dir, "ca.pem"),
        "--tls-cert".to_owned(),
        pem(dir, "cli.pem"),
        "--tls-key".to_owned(),
        pem(dir, "cli-key.pem"),
    ];
    // The CLI with its certificate: the whole saga, over mutual TLS.
    let placed = run(&[
        &urls[..],
        &with_certificate[..],
        &[
            "--json",
            "order",
            "place",
            "--customer",
            "alice",
            "--item",
            "KB-01:1",
            "--wait",
        ]
        .map(str::to_owned)[..],
    ]
    .concat())
    .await;
    assert!(placed.status.success(), "{placed:?}");
    let placed: Value = serde_json::from_slice(&placed.stdout).expect("JSON");
    let order = &placed["order"];
    assert_eq!(order["status"], "CONFIRMED", "{placed:#}");

    // Order's own calls to inventory and billing (GetOrder's details) pass mutual TLS.
    let order_id = order["order_id"].as_str().expect("order id").to_owned();
    let details = OrderServiceClient::new(stack.order.channel().await.expect("channel"))
        .get_order(GetOrderRequest {
            order_id,
            include_details: true,
        })
        .await
        .expect("get order")
        .into_inner()
        .details
        .expect("details");
    assert!(
        details.notes.is_empty(),
        "no participant was unreachable: {:?}",
        details.notes
    );
    assert_eq!(
        details.products.first().map(|product| product.sku.as_str()),
        Some("KB-01")
    );
    assert!(details.account.is_some());

    // Without a client certificate, or without TLS at all: refused.
    let no_certificate = run(&[
        &urls[..],
        &["--tls-ca".to_owned(), pem(dir, "ca.pem")][..],
        &["order", "list"].map(str::to_owned)[..],
    ]
    .concat())
    .await;
    assert!(!no_certificate.status.success(), "{no_certificate:?}");
    let plaintext = run(&[
        "--order-url".to_owned(),
        stack.order.endpoint().replace("https://", "http://"),
        "order".to_owned(),
        "list".to_owned(),
    ])
    .await;
    assert!(!plaintext.status.success(), "{plaintext:?}");

    // The container health check speaks mutual TLS with the service's own certificate.
    let health =
        tokio::process::Command::new(service_binary(ServiceKind::Billing).expect("binary"))
            .arg("healthcheck")
            .env_clear()
            .envs(stack.billing.env().iter().cloned())
            .env("GRPC_LISTEN_ADDR", stack.billing.grpc_addr().to_string())
            .output()
            .await
            .expect("healthcheck ran");
    assert!(health.status.success(), "{health:?}");
}
