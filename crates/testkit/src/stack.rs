//! The whole system on loopback: PostgreSQL, NATS and the three services, wired
//! together the way a deployment wires them.
//!
//! An end-to-end test starts with `let stack = Stack::start().await?;` and then only
//! shows its scenario. The stack is wired like production: each service gets its own
//! database role, and the order service reaches the others by their gRPC endpoints.
//! Failure tests ask for more: a PostgreSQL server per service (as compose and
//! Kubernetes deploy them, so that one database can fail alone) and fault proxies on
//! the connections each service makes to its database and to NATS.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::nats::Nats;
use crate::postgres::Postgres;
use crate::proxy::FaultProxy;
use crate::service::{ServiceKind, ServiceProcess};

/// Connections a test pool may open: assertions need few, and PostgreSQL is shared
/// with three services.
const TEST_POOL_CONNECTIONS: u32 = 4;
/// How long a test pool waits for a connection before failing the test.
const TEST_POOL_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start a [`Stack`]; `StackOptions::default()` is an empty system with one
/// PostgreSQL server holding the three databases and no proxies.
#[derive(Clone, Debug, Default)]
pub struct StackOptions {
    /// Whether the services load their demo products and customers on start.
    pub seed_demo_data: bool,
    /// Extra environment for one service each, e.g. a shorter saga timeout for order.
    pub extra_env: Vec<(ServiceKind, String, String)>,
    /// A PostgreSQL server per service instead of one for all three databases, so
    /// that stopping one service's database leaves the others' running.
    pub postgres_per_service: bool,
    /// Routes each service's connections to its database and to NATS through fault
    /// proxies of its own (see [`Stack::proxies`]).
    pub fault_proxies: bool,
}

/// The fault proxies in front of one service's dependencies.
#[derive(Debug)]
pub struct ServiceProxies {
    /// Between the service and its PostgreSQL.
    pub database: FaultProxy,
    /// Between the service and NATS.
    pub nats: FaultProxy,
}

/// The servers the services depend on, started before any service.
struct Dependencies {
    postgres: Vec<Postgres>,
    nats: Nats,
    proxies: BTreeMap<ServiceKind, ServiceProxies>,
}

impl StackOptions {
    /// Starts PostgreSQL and NATS, gives each service its database, then starts
    /// inventory and billing, and last order, which needs both their endpoints.
    pub async fn start(self) -> anyhow::Result<Stack> {
        let dependencies = self.start_dependencies().await?;
        let (inventory, billing) = tokio::try_join!(
            self.start_service(ServiceKind::Inventory, &dependencies, Vec::new()),
            self.start_service(ServiceKind::Billing, &dependencies, Vec::new()),
        )?;
        let downstream = vec![
            ("INVENTORY_GRPC_URL".to_owned(), inventory.endpoint()),
            ("BILLING_GRPC_URL".to_owned(), billing.endpoint()),
        ];
        let order = self
            .start_service(ServiceKind::Order, &dependencies, downstream)
            .await?;
        let Dependencies {
            postgres,
            nats,
            proxies,
        } = dependencies;
        Ok(Stack {
            order,
            inventory,
            billing,
            proxies,
            postgres,
            nats,
        })
    }

    async fn start_dependencies(&self) -> anyhow::Result<Dependencies> {
        let postgres = async {
            if self.postgres_per_service {
                let servers =
                    tokio::try_join!(Postgres::start(), Postgres::start(), Postgres::start())?;
                anyhow::Ok(vec![servers.0, servers.1, servers.2])
            } else {
                Ok(vec![Postgres::start().await?])
            }
        };
        let (postgres, nats) = tokio::try_join!(postgres, Nats::start())?;
        let mut proxies = BTreeMap::new();
        for kind in ServiceKind::all() {
            let server = &postgres[server_index(&postgres, kind)];
            server.provision(&kind.database()).await?;
            if self.fault_proxies {
                let database = FaultProxy::start(loopback(server.port())).await?;
                let nats = FaultProxy::start(loopback(nats.port())).await?;
                proxies.insert(kind, ServiceProxies { database, nats });
            }
        }
        Ok(Dependencies {
            postgres,
            nats,
            proxies,
        })
    }

    async fn start_service(
        &self,
        kind: ServiceKind,
        dependencies: &Dependencies,
        mut env: Vec<(String, String)>,
    ) -> anyhow::Result<ServiceProcess> {
        let postgres = &dependencies.postgres[server_index(&dependencies.postgres, kind)];
        let (database_port, nats_port) = match dependencies.proxies.get(&kind) {
            Some(proxies) => (proxies.database.port(), proxies.nats.port()),
            None => (postgres.port(), dependencies.nats.port()),
        };
        env.extend([
            (
                "DATABASE_URL".to_owned(),
                postgres.service_url_on_port(&kind.database(), database_port),
            ),
            (
                "MIGRATION_DATABASE_URL".to_owned(),
                postgres.owner_url_on_port(&kind.database(), database_port),
            ),
            (
                "NATS_URL".to_owned(),
                dependencies.nats.service_url_on_port(kind, nats_port),
            ),
            ("SEED_DEMO_DATA".to_owned(), self.seed_demo_data.to_string()),
        ]);
        env.extend(
            self.extra_env
                .iter()
                .filter(|(for_kind, _, _)| *for_kind == kind)
                .map(|(_, name, value)| (name.clone(), value.clone())),
        );
        ServiceProcess::start(kind, env)
            .await
            .with_context(|| format!("could not start the {kind} service"))
    }
}

/// Which of the servers holds `kind`'s database: the only one, or its own.
fn server_index(servers: &[Postgres], kind: ServiceKind) -> usize {
    if servers.len() == 1 {
        return 0;
    }
    match kind {
        ServiceKind::Order => 0,
        ServiceKind::Inventory => 1,
        ServiceKind::Billing => 2,
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A running Microcosm: every part is a real process on loopback, torn down on drop.
///
/// The services are declared first so that they are dropped (killed) before the
/// proxies, databases and message broker they depend on.
#[derive(Debug)]
pub struct Stack {
    /// The order service, configured with the inventory and billing endpoints.
    pub order: ServiceProcess,
    /// The inventory service.
    pub inventory: ServiceProcess,
    /// The billing service.
    pub billing: ServiceProcess,
    proxies: BTreeMap<ServiceKind, ServiceProxies>,
    /// One server for all three databases, or one per service (order, inventory,
    /// billing).
    postgres: Vec<Postgres>,
    /// The nats-server (JetStream) all services publish to and consume from.
    pub nats: Nats,
}

impl Stack {
    /// Starts the stack with default options: no demo data, no extra environment.
    pub async fn start() -> anyhow::Result<Stack> {
        StackOptions::default().start().await
    }

    /// Starts the stack with the demo catalogue and accounts and no other option.
    pub async fn with_demo_data() -> anyhow::Result<Stack> {
        StackOptions {
            seed_demo_data: true,
            ..StackOptions::default()
        }
        .start()
        .await
    }

    /// Assembles a stack from servers and services started elsewhere (`microcosm up`
    /// starts them in directories that outlive it): one PostgreSQL server holding the
    /// three databases, no proxies.
    pub fn from_parts(
        order: ServiceProcess,
        inventory: ServiceProcess,
        billing: ServiceProcess,
        postgres: Postgres,
        nats: Nats,
    ) -> Stack {
        Stack {
            order,
            inventory,
            billing,
            proxies: BTreeMap::new(),
            postgres: vec![postgres],
            nats,
        }
    }

    /// Starts one more process of `kind` with the same configuration on its own
    /// port: a replica competing for the same database rows and durable consumers.
    pub async fn start_replica(&self, kind: ServiceKind) -> anyhow::Result<ServiceProcess> {
        ServiceProcess::start(kind, self.service(kind).env().to_vec())
            .await
            .with_context(|| format!("could not start a replica of {kind}"))
    }

    /// The process of one service.
    pub fn service(&self, kind: ServiceKind) -> &ServiceProcess {
        match kind {
            ServiceKind::Order => &self.order,
            ServiceKind::Inventory => &self.inventory,
            ServiceKind::Billing => &self.billing,
        }
    }

    /// The process of one service, to kill, pause or restart it.
    pub fn service_mut(&mut self, kind: ServiceKind) -> &mut ServiceProcess {
        match kind {
            ServiceKind::Order => &mut self.order,
            ServiceKind::Inventory => &mut self.inventory,
            ServiceKind::Billing => &mut self.billing,
        }
    }

    /// The PostgreSQL server holding `kind`'s database (the same for all three
    /// unless the stack was started with `postgres_per_service`).
    pub fn postgres(&self, kind: ServiceKind) -> &Postgres {
        &self.postgres[server_index(&self.postgres, kind)]
    }

    /// The PostgreSQL server holding `kind`'s database, to stop, crash or pause it.
    pub fn postgres_mut(&mut self, kind: ServiceKind) -> &mut Postgres {
        let index = server_index(&self.postgres, kind);
        &mut self.postgres[index]
    }

    /// The fault proxies in front of `kind`'s database and NATS connections.
    ///
    /// # Panics
    /// If the stack was started without `fault_proxies`: a test that cuts
    /// connections must have asked for the proxies.
    pub fn proxies(&self, kind: ServiceKind) -> &ServiceProxies {
        self.proxies
            .get(&kind)
            .expect("the stack was started with StackOptions::fault_proxies")
    }

    /// A superuser pool on one service's database, for test assertions that must see
    /// everything regardless of the service's privileges. It connects directly, never
    /// through a fault proxy.
    pub async fn superuser_pool(&self, kind: ServiceKind) -> anyhow::Result<PgPool> {
        test_pool(&self.postgres(kind).superuser_url(&kind.database().database)).await
    }

    /// A pool that logs in as the service's own role, to see what the service sees.
    pub async fn service_pool(&self, kind: ServiceKind) -> anyhow::Result<PgPool> {
        test_pool(&self.postgres(kind).service_url(&kind.database())).await
    }
}

async fn test_pool(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(TEST_POOL_CONNECTIONS)
        .acquire_timeout(TEST_POOL_ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .context("could not open a test connection pool")
}
