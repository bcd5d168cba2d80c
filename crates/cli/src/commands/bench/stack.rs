//! The bench's own private system: PostgreSQL, NATS and the three services, on
//! loopback, started with the test kit and torn down when the bench ends.
//!
//! The bench never measures a stack someone else started: a private one has a
//! known configuration and empty databases, and nothing else runs against it.
//! The services are the binaries next to the running `microcosm` (see
//! `microcosm_testkit::service_binary`), so `target/release/microcosm bench`
//! measures release builds. They are started one after the other, so each
//! first start is timed alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use microcosm_testkit::nats::SyncInterval;
use microcosm_testkit::{MeteredProcess, Nats, Postgres, ServiceKind, ServiceProcess, WorkMeter};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::workload::{self, CUSTOMERS, FUNDS_EACH, PRODUCTS, STOCK_EACH};

/// The running bench system. Services are declared first so that they are
/// killed before the database and broker they depend on.
#[derive(Debug)]
pub(crate) struct BenchStack {
    /// The services, in start order: inventory, billing, order.
    pub(crate) services: Vec<ServiceProcess>,
    /// How long each service's first start took, from exec to SERVING, including
    /// migrating its empty database (measured by the kit, which probes every 25 ms).
    pub(crate) first_starts: BTreeMap<ServiceKind, Duration>,
    /// The PostgreSQL server holding the three service databases and the monolith's.
    pub(crate) postgres: Postgres,
    /// The nats-server the services talk through.
    pub(crate) nats: Nats,
}

impl BenchStack {
    /// Starts PostgreSQL and NATS, provisions the three service databases, and
    /// starts inventory, billing and then order (which needs the other two's
    /// endpoints) with `RUST_LOG=service_log`; JetStream syncs to disk as
    /// `sync_interval` says (the server's default if `None`); with
    /// `otlp_endpoint`, the services export their telemetry there.
    pub(crate) async fn start(
        service_log: &str,
        sync_interval: Option<SyncInterval>,
        otlp_endpoint: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (postgres, nats) =
            tokio::try_join!(Postgres::start(), Nats::start_syncing(sync_interval))?;
        for kind in ServiceKind::all() {
            postgres.provision(&kind.database()).await?;
        }
        let mut services: Vec<ServiceProcess> = Vec::new();
        let mut first_starts = BTreeMap::new();
        for kind in ServiceKind::all() {
            let mut env = vec![
                (
                    "DATABASE_URL".to_owned(),
                    postgres.service_url(&kind.database()),
                ),
                (
                    "MIGRATION_DATABASE_URL".to_owned(),
                    postgres.owner_url(&kind.database()),
                ),
                ("NATS_URL".to_owned(), nats.service_url(kind)),
                ("SEED_DEMO_DATA".to_owned(), "false".to_owned()),
                ("RUST_LOG".to_owned(), service_log.to_owned()),
            ];
            if let Some(endpoint) = otlp_endpoint {
                // As deploy/env sets it for `microcosm up` and compose.
                env.extend([
                    (
                        "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                        endpoint.to_owned(),
                    ),
                    ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "1000".to_owned()),
                    ("OTEL_METRIC_EXPORT_INTERVAL".to_owned(), "1000".to_owned()),
                ]);
            }
            if kind == ServiceKind::Order {
                for started in &services {
                    let variable = match started.kind() {
                        ServiceKind::Inventory => "INVENTORY_GRPC_URL",
                        ServiceKind::Billing => "BILLING_GRPC_URL",
                        ServiceKind::Order => continue,
                    };
                    env.push((variable.to_owned(), started.endpoint()));
                }
            }
            let exec = Instant::now();
            let service = ServiceProcess::start(kind, env)
                .await
                .with_context(|| format!("could not start the {kind} service"))?;
            first_starts.insert(kind, exec.elapsed());
            services.push(service);
        }
        Ok(Self {
            services,
            first_starts,
            postgres,
            nats,
        })
    }

    /// One service's process.
    pub(crate) fn service(&self, kind: ServiceKind) -> anyhow::Result<&ServiceProcess> {
        self.services
            .iter()
            .find(|service| service.kind() == kind)
            .with_context(|| format!("the bench stack has no {kind} service"))
    }

    /// Each service's process id, for reading its memory.
    pub(crate) fn pids(&self) -> anyhow::Result<Vec<(ServiceKind, u32)>> {
        self.services
            .iter()
            .map(|service| {
                let pid = service
                    .pid()
                    .with_context(|| format!("the {} service is not running", service.kind()))?;
                Ok((service.kind(), pid))
            })
            .collect()
    }

    /// A meter of the work the loads cost: CPU of the services, of PostgreSQL
    /// (postmaster and backends), of nats-server and of the bench itself;
    /// transactions and statements of the service databases and the monolith's;
    /// JetStream's stored messages.
    pub(crate) async fn work_meter(&self, monolith_database: &str) -> anyhow::Result<WorkMeter> {
        let mut processes: Vec<MeteredProcess> = self
            .pids()?
            .into_iter()
            .map(|(kind, pid)| MeteredProcess {
                name: kind.name().to_owned(),
                pid,
                with_descendants: false,
            })
            .collect();
        let servers = [
            ("postgres", self.postgres.pid(), true),
            ("nats-server", self.nats.pid(), false),
            ("bench", Some(std::process::id()), false),
        ];
        for (name, pid, with_descendants) in servers {
            processes.push(MeteredProcess {
                name: name.to_owned(),
                pid: pid.with_context(|| format!("{name} is not running"))?,
                with_descendants,
            });
        }
        let databases: Vec<String> = ServiceKind::all()
            .into_iter()
            .map(|kind| kind.database().database)
            .chain(std::iter::once(monolith_database.to_owned()))
            .collect();
        let databases: Vec<&str> = databases.iter().map(String::as_str).collect();
        WorkMeter::new(&self.postgres, &databases, processes, Some(&self.nats)).await
    }

    /// A superuser pool on one database of the bench's PostgreSQL.
    pub(crate) async fn superuser_pool(
        &self,
        database: &str,
        connections: u32,
    ) -> anyhow::Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(connections)
            // No ping before each use: the monolith's clients each keep their
            // connection, as the services' pools do.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&self.postgres.superuser_url(database))
            .await
            .with_context(|| format!("could not connect to the bench database {database}"))
    }

    /// Loads the bench catalogue into inventory and the funded customers into
    /// billing, straight into their tables as superuser: the bench's data is not
    /// what it measures, so it goes in the fastest way, before the clock starts.
    /// Each account gets the `deposit` ledger entry that explains its balance, as
    /// a real deposit would, so that the audit afterwards balances.
    pub(crate) async fn seed_catalogue_and_customers(&self) -> anyhow::Result<()> {
        let inventory = self
            .superuser_pool(&ServiceKind::Inventory.database().database, 1)
            .await?;
        for index in 0..PRODUCTS {
            sqlx::query(
                "INSERT INTO products (sku, name, unit_price_minor, available)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(workload::sku(index))
            .bind(format!("Bench product {index}"))
            .bind(workload::unit_price_minor(index))
            .bind(STOCK_EACH)
            .execute(&inventory)
            .await
            .context("could not seed the bench catalogue")?;
        }
        let billing = self
            .superuser_pool(&ServiceKind::Billing.database().database, 1)
            .await?;
        for index in 0..CUSTOMERS {
            let mut transaction = billing.begin().await?;
            sqlx::query("INSERT INTO accounts (customer_id, balance_minor) VALUES ($1, $2)")
                .bind(workload::customer(index))
                .bind(FUNDS_EACH)
                .execute(&mut *transaction)
                .await
                .context("could not seed a bench account")?;
            sqlx::query(
                "INSERT INTO ledger_entries (entry_id, customer_id, kind, amount_minor)
                 VALUES (gen_random_uuid(), $1, 'deposit', $2)",
            )
            .bind(workload::customer(index))
            .bind(FUNDS_EACH)
            .execute(&mut *transaction)
            .await
            .context("could not seed a bench deposit")?;
            transaction.commit().await?;
        }
        Ok(())
    }
}
