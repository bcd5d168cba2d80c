//! SIGTERM ends a service within its grace period whatever its dependencies are
//! doing: a database that was never there, is being migrated under a lock, was
//! stopped or frozen; a NATS that never answered, went away or froze; both down;
//! the outbox relay backing off; a gRPC call still running; a trace collector
//! that never answers. The real service
//! binaries, PostgreSQL and nats-server, each test with its own.
//!
//! Every test sends SIGTERM and expects exit code 0 within `SHUTDOWN_GRACE_MS`
//! (one second here) plus two seconds; when a service overruns, the failure shows
//! its last log lines. A second signal during a slow shutdown ends the process at
//! once with 143 (SIGTERM) or 130 (SIGINT).

use std::time::{Duration, Instant};

use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{OrderLineRequest, PlaceOrderRequest};
use microcosm_testkit::{
    Nats, Postgres, ServiceKind, ServiceOptions, ServiceProcess, Signal, free_port,
};
use sqlx::Connection;

/// The grace period the services get in these tests.
const GRACE: Duration = Duration::from_millis(1000);
/// What a shutdown may take beyond the grace period: closing connections and
/// flushing telemetry, each bounded, plus the time to exit.
const MARGIN: Duration = Duration::from_secs(2);
/// How long a service may take to reach the state a test wants to stop it in.
const REACH_STATE: Duration = Duration::from_secs(30);

/// The servers a service under test may have; `None` is a server that was never
/// started, and the service is pointed at a loopback port where nothing listens.
#[derive(Default)]
struct Servers {
    postgres: Option<Postgres>,
    nats: Option<Nats>,
}

impl Servers {
    /// PostgreSQL with `kinds`' databases and roles, and nats-server.
    async fn both(kinds: &[ServiceKind]) -> Self {
        Self {
            postgres: Some(postgres_for(kinds).await),
            nats: Some(Nats::start().await.expect("nats-server")),
        }
    }

    /// PostgreSQL with `kind`'s database, and no NATS.
    async fn postgres_only(kind: ServiceKind) -> Self {
        Self {
            postgres: Some(postgres_for(&[kind]).await),
            nats: None,
        }
    }

    fn postgres(&mut self) -> &mut Postgres {
        self.postgres
            .as_mut()
            .expect("this test started PostgreSQL")
    }

    fn nats(&mut self) -> &mut Nats {
        self.nats.as_mut().expect("this test started NATS")
    }

    /// The environment the test kit gives `kind`, on these servers, with a short
    /// grace period and a patient database wait (so "waiting for the database"
    /// lasts as long as the test needs).
    fn env(&self, kind: ServiceKind) -> Vec<(String, String)> {
        let database = kind.database();
        let nowhere = || free_port().expect("a free port");
        let (database_url, owner_url) = match &self.postgres {
            Some(postgres) => (
                postgres.service_url(&database),
                postgres.owner_url(&database),
            ),
            None => {
                let port = nowhere();
                let url = format!(
                    "postgres://{}:{}@127.0.0.1:{port}/{}",
                    database.app_role, database.app_password, database.database
                );
                (url.clone(), url)
            }
        };
        let nats_url = match &self.nats {
            Some(nats) => nats.service_url(kind),
            None => format!("nats://127.0.0.1:{}", nowhere()),
        };
        let mut env = vec![
            ("DATABASE_URL".to_owned(), database_url),
            ("MIGRATION_DATABASE_URL".to_owned(), owner_url),
            ("NATS_URL".to_owned(), nats_url),
            (
                "SHUTDOWN_GRACE_MS".to_owned(),
                GRACE.as_millis().to_string(),
            ),
            (
                "DATABASE_CONNECT_TIMEOUT_MS".to_owned(),
                "120000".to_owned(),
            ),
        ];
        if kind == ServiceKind::Order {
            // Participants that are not there: a saga waits in RESERVING.
            env.extend([
                (
                    "INVENTORY_GRPC_URL".to_owned(),
                    format!("http://127.0.0.1:{}", nowhere()),
                ),
                (
                    "BILLING_GRPC_URL".to_owned(),
                    format!("http://127.0.0.1:{}", nowhere()),
                ),
            ]);
        }
        env
    }

    /// Starts `kind` on these servers and returns at once: the test waits for the
    /// state it wants.
    async fn spawn(&self, kind: ServiceKind) -> ServiceProcess {
        self.spawn_with(kind, Vec::new()).await
    }

    async fn spawn_with(&self, kind: ServiceKind, extra: Vec<(String, String)>) -> ServiceProcess {
        let mut env = self.env(kind);
        env.extend(extra);
        let options = ServiceOptions {
            spawn_only: true,
            ..ServiceOptions::default()
        };
        ServiceProcess::start_with(kind, env, options)
            .await
            .expect("the service process starts")
    }
}

/// `kind` SERVING on a PostgreSQL and a nats-server of its own, which the test
/// then breaks.
async fn serving(kind: ServiceKind) -> (Servers, ServiceProcess) {
    let servers = Servers::both(&[kind]).await;
    let mut service = servers.spawn(kind).await;
    service.wait_serving(REACH_STATE).await.expect("SERVING");
    (servers, service)
}

/// Waits until the health probe has logged NOT_SERVING with `reason`, a fragment
/// of its JSON line such as `"nats_up":false`.
async fn wait_until_not_serving(service: &mut ServiceProcess, reason: &str) {
    service
        .wait_for_log(reason, REACH_STATE)
        .await
        .unwrap_or_else(|error| panic!("never NOT_SERVING with {reason}: {error:#}"));
}

async fn postgres_for(kinds: &[ServiceKind]) -> Postgres {
    let postgres = Postgres::start().await.expect("PostgreSQL");
    for kind in kinds {
        postgres
            .provision(&kind.database())
            .await
            .expect("provision");
    }
    postgres
}

/// Sends SIGTERM, expects exit code 0 within the bound, and returns the line
/// that ends the shutdown ("shutdown finished ...", with `cut_short`).
async fn assert_stops_within_the_bound(service: &mut ServiceProcess) -> String {
    let asked = Instant::now();
    let status = service
        .terminate(GRACE + MARGIN)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "{} did not exit within {:?} of SIGTERM: {error:#}",
                service.kind().binary_name(),
                GRACE + MARGIN
            )
        });
    let took = asked.elapsed();
    let log = std::fs::read_to_string(service.log_path()).expect("the service's log");
    assert!(
        status.success(),
        "{} exited with {status} after SIGTERM; log:\n{}",
        service.kind().binary_name(),
        last_lines(&log)
    );
    let finished = log
        .lines()
        .rev()
        .find(|line| line.contains("shutdown finished"))
        .unwrap_or_else(|| panic!("no \"shutdown finished\" line; log:\n{}", last_lines(&log)))
        .to_owned();
    assert!(
        log.contains("shutdown started"),
        "no \"shutdown started\" line; log:\n{}",
        last_lines(&log)
    );
    eprintln!("exited {took:?} after SIGTERM: {finished}");
    finished
}

fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_a_database_that_is_not_there() {
    let servers = Servers::default();
    let mut service = servers.spawn(ServiceKind::Inventory).await;
    service
        .wait_for_log("database not ready; retrying", REACH_STATE)
        .await
        .expect("waiting for its database");

    let finished = assert_stops_within_the_bound(&mut service).await;
    assert!(
        finished.contains("start-up (waiting for the database)"),
        "the abandoned step is named: {finished}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_migrating_behind_another_replicas_lock() {
    let servers = Servers::postgres_only(ServiceKind::Billing).await;
    let database = ServiceKind::Billing.database();
    // Another replica is migrating: it holds the advisory lock sqlx migrates under.
    let superuser_url = servers
        .postgres
        .as_ref()
        .expect("postgres")
        .superuser_url(&database.database);
    let mut replica = sqlx::PgConnection::connect(&superuser_url)
        .await
        .expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(sqlx_migration_lock_id(&database.database))
        .execute(&mut replica)
        .await
        .expect("take the migration lock");

    let mut service = servers.spawn(ServiceKind::Billing).await;
    let mut observer = sqlx::PgConnection::connect(&superuser_url)
        .await
        .expect("connect");
    let deadline = Instant::now() + REACH_STATE;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .fetch_one(&mut observer)
        .await
        .expect("pg_locks");
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "billing never waited for the migration lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let finished = assert_stops_within_the_bound(&mut service).await;
    assert!(
        finished.contains("start-up (migrating and loading demo data)"),
        "the abandoned step is named: {finished}"
    );
    // The other replica finishes; the abandoned migration never ran (PostgreSQL
    // notices the client is gone once the lock is granted, and ends its backend).
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut replica)
        .await
        .expect("release the migration lock");
    let deadline = Instant::now() + REACH_STATE;
    loop {
        let backends: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
                .bind(&database.role)
                .fetch_one(&mut observer)
                .await
                .expect("pg_stat_activity");
        if backends == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "billing's migration connection outlived it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let migrations_table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(&mut observer)
            .await
            .expect("catalog");
    if migrations_table.is_some() {
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&mut observer)
            .await
            .expect("migrations applied");
        assert_eq!(applied, 0, "no migration was applied after SIGTERM");
    }
}

/// The advisory lock sqlx takes while it migrates a database (sqlx-postgres'
/// `generate_lock_id`): CRC-32 of the database name times a constant.
fn sqlx_migration_lock_id(database: &str) -> i64 {
    const CRC_IEEE: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32_ad9e * i64::from(CRC_IEEE.checksum(database.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_nats_was_never_reachable_and_the_consumer_is_retrying() {
    let servers = Servers::postgres_only(ServiceKind::Inventory).await;
    let mut service = servers.spawn(ServiceKind::Inventory).await;
    service
        .wait_for_log("cannot consume yet; retrying", REACH_STATE)
        .await
        .expect("the consumer retries");

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_nats_went_away_mid_run() {
    let (mut servers, mut service) = serving(ServiceKind::Billing).await;
    servers.nats().stop().await.expect("stop nats-server");
    wait_until_not_serving(&mut service, r#""nats_up":false"#).await;

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_nats_is_frozen() {
    let (mut servers, mut service) = serving(ServiceKind::Inventory).await;
    // Still connected as far as the client knows, and nothing answers.
    servers.nats().pause().expect("SIGSTOP nats-server");

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_trace_collector_that_never_answers() {
    let servers = Servers::both(&[ServiceKind::Inventory]).await;
    // A port that accepts connections (the kernel completes the handshake) and
    // never says a word: the OTLP exporter waits on it.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", black_hole.local_addr().expect("address"));
    let otlp = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ];
    let mut service = servers.spawn_with(ServiceKind::Inventory, otlp).await;
    service.wait_serving(REACH_STATE).await.expect("SERVING");

    let finished = assert_stops_within_the_bound(&mut service).await;
    assert!(
        finished.contains("telemetry flush"),
        "the flush is named as cut short: {finished}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_the_database_stopped_mid_run() {
    let (mut servers, mut service) = serving(ServiceKind::Inventory).await;
    servers.postgres().stop().await.expect("stop PostgreSQL");
    wait_until_not_serving(&mut service, r#""database_up":false"#).await;

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_database_is_frozen() {
    let (mut servers, mut service) = serving(ServiceKind::Order).await;
    // Connections stay open and no query is ever answered.
    servers.postgres().pause().expect("SIGSTOP PostgreSQL");
    wait_until_not_serving(&mut service, r#""database_up":false"#).await;

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_both_the_database_and_nats_down() {
    let (mut servers, mut service) = serving(ServiceKind::Billing).await;
    servers.nats().stop().await.expect("stop nats-server");
    servers
        .postgres()
        .kill()
        .await
        .expect("immediate PostgreSQL shutdown");
    wait_until_not_serving(&mut service, r#""database_up":false,"nats_up":false"#).await;

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_outbox_relay_backs_off() {
    let servers = Servers::postgres_only(ServiceKind::Order).await;
    let mut service = servers.spawn(ServiceKind::Order).await;
    service
        .wait_for_log("serving gRPC", REACH_STATE)
        .await
        .expect("serving");
    // The order and its ReserveStock command are stored; the command cannot be published.
    place_order(&service, 0).await.expect("PlaceOrder");
    service
        .wait_for_log("outbox relay round failed; retrying", REACH_STATE)
        .await
        .expect("the relay backs off");

    assert_stops_within_the_bound(&mut service).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_grpc_call_that_outlives_the_grace_period() {
    let (_servers, mut service) = serving(ServiceKind::Order).await;
    // No inventory answers, so a PlaceOrder that waits for the end waits long.
    let call = tokio::spawn(place_order_and_wait(&service, 30_000));
    service
        .wait_for_log("order placed", REACH_STATE)
        .await
        .expect("the call is in flight");

    let finished = assert_stops_within_the_bound(&mut service).await;
    assert!(
        finished.contains("in-flight gRPC calls"),
        "the call is named as cut short: {finished}"
    );
    let answer = tokio::time::timeout(MARGIN, call)
        .await
        .expect("the client is not left hanging")
        .expect("the call's task");
    assert!(answer.is_err(), "the call ends with an error: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_a_slow_shutdown_exits_at_once_with_143() {
    second_signal_exits_at_once(Signal::SIGTERM, 143).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_during_a_slow_shutdown_exits_at_once_with_130() {
    second_signal_exits_at_once(Signal::SIGINT, 130).await;
}

/// A shutdown made slow by a long grace period and a call that uses all of it;
/// the second `signal` must not wait for either.
async fn second_signal_exits_at_once(signal: Signal, code: i32) {
    let servers = Servers::both(&[ServiceKind::Order]).await;
    let long_grace = vec![("SHUTDOWN_GRACE_MS".to_owned(), "60000".to_owned())];
    let mut service = servers.spawn_with(ServiceKind::Order, long_grace).await;
    service.wait_serving(REACH_STATE).await.expect("SERVING");
    let _call = tokio::spawn(place_order_and_wait(&service, 30_000));
    service
        .wait_for_log("order placed", REACH_STATE)
        .await
        .expect("the call is in flight");

    service.signal(signal).expect("first signal");
    service
        .wait_for_log("shutdown started", REACH_STATE)
        .await
        .expect("shutdown started");
    service.signal(signal).expect("second signal");
    let status = service.wait_for_exit(MARGIN).await.unwrap_or_else(|error| {
        panic!("a second {signal} did not end the process at once: {error:#}")
    });
    assert_eq!(status.code(), Some(code), "exit status after two {signal}s");
}

fn order_request(number: u32, wait_ms: u32) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: "alice".into(),
        lines: vec![OrderLineRequest {
            sku: "KB-01".into(),
            quantity: 1,
        }],
        idempotency_key: format!("shutdown-{number}"),
        wait_ms,
    }
}

async fn place_order(service: &ServiceProcess, number: u32) -> Result<(), tonic::Status> {
    let channel = service.channel().await.expect("channel");
    OrderServiceClient::new(channel)
        .place_order(order_request(number, 0))
        .await
        .map(drop)
}

/// A PlaceOrder that waits up to `wait_ms` for the saga's end; what it answered.
fn place_order_and_wait(
    service: &ServiceProcess,
    wait_ms: u32,
) -> impl Future<Output = Result<(), tonic::Status>> + Send + 'static {
    let endpoint = service.endpoint();
    async move {
        let channel = tonic::transport::Endpoint::from_shared(endpoint)
            .expect("endpoint")
            .connect()
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        OrderServiceClient::new(channel)
            .place_order(order_request(1, wait_ms))
            .await
            .map(drop)
    }
}
