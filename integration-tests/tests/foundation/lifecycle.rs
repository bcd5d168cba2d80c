//! A service's life: start, health, reflection, migrations, restarts, SIGTERM.

use std::time::Duration;

use microcosm_proto::billing::{DepositRequest, GetAccountRequest};
use microcosm_proto::inventory::{GetProductRequest, ListProductsRequest, RestockProductRequest};
use microcosm_proto::order::{GetOrderRequest, OrderLineRequest, PlaceOrderRequest};
use microcosm_testkit::{ServiceKind, ServingStatus, Stack};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::clients::{billing, eventually, inventory, order};

fn api_name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Order => "shop.order.v1.OrderService",
        ServiceKind::Inventory => "shop.inventory.v1.InventoryService",
        ServiceKind::Billing => "shop.billing.v1.BillingService",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_starts_and_reports_serving() {
    let stack = Stack::start().await.expect("stack");
    for kind in ServiceKind::all() {
        let service = stack.service(kind);
        assert_eq!(
            service.health("").await.expect("health"),
            ServingStatus::Serving,
            "{} server",
            kind.name()
        );
        assert_eq!(
            service.health(api_name(kind)).await.expect("health"),
            ServingStatus::Serving,
            "{} API",
            kind.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_each_services_api_and_describes_it() {
    let stack = Stack::start().await.expect("stack");
    for kind in ServiceKind::all() {
        let mut client =
            ServerReflectionClient::new(stack.service(kind).channel().await.expect("channel"));
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol(api_name(kind).to_owned()),
        ]
        .map(|message| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(message),
        });
        let mut responses = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .expect("reflection")
            .into_inner();

        let listed = responses
            .message()
            .await
            .expect("stream")
            .expect("a response");
        let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
            panic!("{}: expected a service list, got {listed:?}", kind.name());
        };
        let names: Vec<String> = list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect();
        for expected in [
            api_name(kind),
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ] {
            assert!(
                names.iter().any(|name| name == expected),
                "{}: {expected} not in {names:?}",
                kind.name()
            );
        }

        let described = responses
            .message()
            .await
            .expect("stream")
            .expect("a response");
        let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response
        else {
            panic!(
                "{}: expected file descriptors, got {described:?}",
                kind.name()
            );
        };
        assert!(
            !files.file_descriptor_proto.is_empty(),
            "{}: descriptors for {}",
            kind.name(),
            api_name(kind)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_migrations_again_is_harmless() {
    let mut stack = Stack::with_demo_data().await.expect("stack");
    let mut applied = Vec::new();
    for kind in ServiceKind::all() {
        let pool = stack.superuser_pool(kind).await.expect("pool");
        let rows: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .expect("migrations table");
        assert!(
            !rows.is_empty() && rows.iter().all(|(_, success)| *success),
            "{}: {rows:?}",
            kind.name()
        );
        applied.push(rows);
    }
    let stock_before = inventory(&stack)
        .await
        .list_products(ListProductsRequest::default())
        .await
        .expect("list");

    // Each restart migrates (and seeds) again; nothing changes.
    for kind in ServiceKind::all() {
        stack.service_mut(kind).restart().await.expect("restart");
    }
    for (kind, before) in ServiceKind::all().into_iter().zip(applied) {
        let pool = stack.superuser_pool(kind).await.expect("pool");
        let after: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .expect("migrations table");
        assert_eq!(after, before, "{}: migrations applied once", kind.name());
    }
    let stock_after = inventory(&stack)
        .await
        .list_products(ListProductsRequest::default())
        .await
        .expect("list");
    assert_eq!(
        stock_after.into_inner(),
        stock_before.into_inner(),
        "seeding twice changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_migrating_one_fresh_database_at_once_apply_each_migration_once() {
    let stack = Stack::start().await.expect("stack");
    let mut twin = ServiceKind::Inventory.database();
    twin.database = "microcosm_inventory_twin".into();
    stack
        .postgres(ServiceKind::Inventory)
        .provision(&twin)
        .await
        .expect("provision");
    let env = || {
        vec![
            (
                "DATABASE_URL".to_owned(),
                stack.postgres(ServiceKind::Inventory).service_url(&twin),
            ),
            (
                "MIGRATION_DATABASE_URL".to_owned(),
                stack.postgres(ServiceKind::Inventory).owner_url(&twin),
            ),
            ("NATS_URL".to_owned(), stack.nats.url()),
        ]
    };
    let (first, second) = tokio::join!(
        microcosm_testkit::ServiceProcess::start(ServiceKind::Inventory, env()),
        microcosm_testkit::ServiceProcess::start(ServiceKind::Inventory, env()),
    );
    let (_first, _second) = (
        first.expect("first replica"),
        second.expect("second replica"),
    );
    let pool = sqlx::PgPool::connect(
        &stack
            .postgres(ServiceKind::Inventory)
            .superuser_url(&twin.database),
    )
    .await
    .expect("pool");
    let duplicates: i64 =
        sqlx::query_scalar("SELECT count(*) - count(DISTINCT version) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_each_service_cleanly_and_promptly() {
    let mut stack = Stack::start().await.expect("stack");
    for kind in [
        ServiceKind::Order,
        ServiceKind::Inventory,
        ServiceKind::Billing,
    ] {
        let status = stack
            .service_mut(kind)
            .terminate(Duration::from_secs(10))
            .await
            .expect("exits within 10 s");
        assert!(status.success(), "{} exited with {status}", kind.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_restarts_with_its_data_intact() {
    let mut stack = Stack::with_demo_data().await.expect("stack");
    let placed = order(&stack)
        .await
        .place_order(PlaceOrderRequest {
            customer_id: "alice".into(),
            lines: vec![OrderLineRequest {
                sku: "KB-01".into(),
                quantity: 2,
            }],
            idempotency_key: "survives".into(),
            wait_ms: 0,
        })
        .await
        .expect("place")
        .into_inner()
        .order
        .expect("order");
    let restocked = inventory(&stack)
        .await
        .restock_product(RestockProductRequest {
            sku: "LAMP-01".into(),
            quantity: 9,
        })
        .await
        .expect("restock")
        .into_inner()
        .product
        .expect("product");
    let deposited = billing(&stack)
        .await
        .deposit(DepositRequest {
            customer_id: "bob".into(),
            amount_minor: 4_200,
        })
        .await
        .expect("deposit")
        .into_inner()
        .account
        .expect("account");

    for kind in ServiceKind::all() {
        let service = stack.service_mut(kind);
        service.kill().expect("SIGKILL");
        service.restart().await.expect("restart");
    }

    let order_after = order(&stack)
        .await
        .get_order(GetOrderRequest {
            order_id: placed.order_id.clone(),
            include_details: false,
        })
        .await;
    let order_after = order_after.expect("get").into_inner().order.expect("order");
    assert_eq!(
        (
            &order_after.customer_id,
            &order_after.created_at,
            &order_after.lines.len()
        ),
        (&placed.customer_id, &placed.created_at, &placed.lines.len()),
        "the order survives its service's crash"
    );
    let product_after = inventory(&stack)
        .await
        .get_product(GetProductRequest {
            sku: "LAMP-01".into(),
        })
        .await;
    assert_eq!(
        product_after
            .expect("get")
            .into_inner()
            .product
            .expect("product"),
        restocked
    );
    let account_after = billing(&stack)
        .await
        .get_account(GetAccountRequest {
            customer_id: "bob".into(),
        })
        .await;
    assert_eq!(
        account_after
            .expect("get")
            .into_inner()
            .account
            .expect("account"),
        deposited
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database_down_and_up_again() {
    let mut stack = Stack::start().await.expect("stack");
    stack
        .postgres_mut(ServiceKind::Order)
        .stop()
        .await
        .expect("stop postgres");
    for kind in ServiceKind::all() {
        let service = stack.service(kind);
        eventually(
            &format!("{} NOT_SERVING", kind.name()),
            Duration::from_secs(15),
            || async { matches!(service.health("").await, Ok(ServingStatus::NotServing)) },
        )
        .await;
    }
    stack
        .postgres_mut(ServiceKind::Order)
        .restart()
        .await
        .expect("restart postgres");
    for kind in ServiceKind::all() {
        let service = stack.service(kind);
        eventually(
            &format!("{} SERVING", kind.name()),
            Duration::from_secs(15),
            || async { matches!(service.health("").await, Ok(ServingStatus::Serving)) },
        )
        .await;
    }
    let products = inventory(&stack)
        .await
        .list_products(ListProductsRequest::default())
        .await;
    assert!(
        products.is_ok(),
        "the pool reconnects after the restart: {products:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_malformed_variable_is_named_at_startup() {
    for kind in ServiceKind::all() {
        let output =
            tokio::process::Command::new(microcosm_testkit::service_binary(kind).expect("binary"))
                .env_clear()
                .env("NATS_URL", "http://not-nats")
                .env("GRPC_LISTEN_ADDR", "nowhere")
                .output()
                .await
                .expect("run");
        assert_eq!(output.status.code(), Some(78), "{}: EX_CONFIG", kind.name());
        let stderr = String::from_utf8_lossy(&output.stderr);
        for variable in ["DATABASE_URL", "NATS_URL", "GRPC_LISTEN_ADDR"] {
            assert!(
                stderr.contains(variable),
                "{}: {variable} not named in {stderr}",
                kind.name()
            );
        }
    }
}

/// Runs `<service> healthcheck` with the configuration the running service has
/// (the kit adds the listen address to it), as a container health check does;
/// returns its exit status and output.
async fn healthcheck(stack: &Stack, kind: ServiceKind) -> (std::process::ExitStatus, String) {
    let output = tokio::process::Command::new(
        microcosm_testkit::service_binary(kind).expect("service binary"),
    )
    .arg("healthcheck")
    .env_clear()
    .envs(stack.service(kind).env().iter().cloned())
    .env(
        "GRPC_LISTEN_ADDR",
        stack.service(kind).grpc_addr().to_string(),
    )
    .output()
    .await
    .expect("healthcheck ran");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_subcommand_passes_only_while_its_service_is_serving() {
    let mut stack = Stack::start().await.expect("stack");
    for kind in ServiceKind::all() {
        let (status, output) = healthcheck(&stack, kind).await;
        assert!(status.success(), "{kind}: {output}");
        assert!(output.starts_with("SERVING"), "{kind}: {output}");
    }
    // Without its database the service is NOT_SERVING, and the check fails.
    stack
        .postgres_mut(ServiceKind::Billing)
        .stop()
        .await
        .expect("stop postgres");
    eventually(
        "billing's healthcheck fails",
        Duration::from_secs(20),
        || async {
            let (status, output) = healthcheck(&stack, ServiceKind::Billing).await;
            !status.success() && output.starts_with("NOT_SERVING")
        },
    )
    .await;
    // ... while it is still alive: liveness probes must not restart it for that.
    assert_eq!(
        stack.billing.health("liveness").await.expect("liveness"),
        ServingStatus::Serving
    );
    // A service that is not running at all fails it too.
    stack.inventory.kill().expect("kill inventory");
    let (status, output) = healthcheck(&stack, ServiceKind::Inventory).await;
    assert!(!status.success(), "{output}");
    assert!(output.starts_with("UNREACHABLE"), "{output}");

    // An unknown argument is a usage error (EX_USAGE), not a service start.
    let unknown = tokio::process::Command::new(
        microcosm_testkit::service_binary(ServiceKind::Order).expect("service binary"),
    )
    .arg("serve-please")
    .env_clear()
    .envs(stack.order.env().iter().cloned())
    .output()
    .await
    .expect("ran");
    assert_eq!(unknown.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("healthcheck"));
}
