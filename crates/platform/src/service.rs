//! The life of a service process, written once for all three.
//!
//! [`ServiceHost::start`] does what every service does before it can serve:
//! connect to its database (waiting for it, bounded), apply its migrations, load
//! demo data if asked, connect to NATS and bind the gRPC port. [`ServiceHost::serve`]
//! then runs the gRPC server and the dependency probe until shutdown, and closes
//! the pool and the NATS connection on the way out. [`main`] is the whole body of
//! each service's `main.rs`.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::config::{ConfigError, EnvSource, ProcessEnv, ServiceConfig};
use crate::db::DatabaseError;
use crate::faults::layer::FaultLayer;
use crate::faults::{FaultAdmin, Faults};
use crate::grpc::{GrpcError, GrpcLimits, ServiceRouter};
use crate::health::DependencyProbe;
use crate::messaging::NatsConnectError;
use crate::messaging::consumer::{MessageHandler, run_consumer};
use crate::messaging::outbox::OutboxRelay;
use crate::messaging::streams::ConsumerSpec;
use crate::shutdown::Shutdown;
use crate::telemetry::init_telemetry;

/// Exit code for a configuration error (`EX_CONFIG` from sysexits.h), so a
/// supervisor can tell "fix the environment" from "crashed".
pub const EXIT_CONFIG: u8 = 78;

/// Exit code for an unknown command-line argument (`EX_USAGE` from sysexits.h).
pub const EXIT_USAGE: u8 = 64;

/// Why a service could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The database could not be reached or migrated.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Demo data could not be loaded.
    #[error("could not load the demo data (SEED_DEMO_DATA=true)")]
    Seed(#[source] sqlx::Error),
    /// NATS could not be reached.
    #[error(transparent)]
    Nats(#[from] NatsConnectError),
    /// The gRPC server could not start or failed.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// Signal handlers could not be installed.
    #[error("could not install the SIGTERM/SIGINT handlers")]
    Signals(#[source] std::io::Error),
    /// A service-specific start-up step failed.
    #[error("start-up failed: {0}")]
    Startup(String),
    /// A background task (relay, consumer, timer) stopped before shutdown.
    #[error("background task {0:?} stopped unexpectedly")]
    TaskStopped(&'static str),
}

/// What makes a crate a runnable Microcosm service: how it reads its
/// configuration, and how it builds and runs itself.
pub trait Microservice: Sized {
    /// The service's typed configuration.
    type Config: Debug;

    /// Reads and checks the configuration, naming every bad variable.
    ///
    /// # Errors
    /// A [`ConfigError`] listing every missing or malformed variable.
    fn load_config(env: &dyn EnvSource) -> Result<Self::Config, ConfigError>;

    /// The part of the configuration every service shares (database, NATS, gRPC
    /// address, telemetry, ...).
    fn common(config: &Self::Config) -> &ServiceConfig;

    /// Connects, migrates and binds; ready to serve.
    fn build(config: Self::Config) -> impl Future<Output = Result<Self, ServiceError>> + Send;

    /// Serves until `shutdown`, then drains and closes.
    fn run_until(self, shutdown: Shutdown)
    -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// The body of every service's `main`: configuration (exit 78 naming each bad
/// variable), telemetry, build, run until SIGTERM/SIGINT. With the argument
/// `healthcheck` it checks a running instance instead (see [`crate::healthcheck`]).
pub async fn main<S: Microservice>() -> ExitCode {
    let command = std::env::args().nth(1);
    let config = match S::load_config(&ProcessEnv) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match command.as_deref() {
        None => {}
        Some("healthcheck") => {
            let common = S::common(&config);
            return crate::healthcheck::run(common.grpc_listen_addr, common.grpc_tls.as_ref())
                .await;
        }
        Some(other) => {
            eprintln!(
                "unknown argument {other:?}: run with no arguments to serve, or with \
                 `healthcheck` to check the gRPC health of the instance running here"
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let telemetry = init_telemetry(&S::common(&config).telemetry);
    tracing::info!(?config, "starting");
    let result = async {
        let shutdown = Shutdown::on_signals().map_err(ServiceError::Signals)?;
        S::build(config).await?.run_until(shutdown).await
    }
    .await;
    telemetry.shutdown().await;
    match result {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line: `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a service needs once it is connected: its pool, its NATS client and its
/// bound gRPC listener.
pub struct ServiceHost {
    config: ServiceConfig,
    pool: PgPool,
    nats: async_nats::Client,
    listener: TcpListener,
    faults: Faults,
}

impl ServiceHost {
    /// Connects to the database (bounded wait), migrates, seeds demo data when
    /// `SEED_DEMO_DATA` is set, connects to NATS and binds the gRPC port.
    ///
    /// `demo_data` is idempotent SQL: loading it twice changes nothing.
    ///
    /// # Errors
    /// If any step fails; the error names the step and the setting to check.
    pub async fn start(
        name: &'static str,
        config: ServiceConfig,
        migrator: &Migrator,
        demo_data: &'static str,
    ) -> Result<Self, ServiceError> {
        // Bind first: a port that is taken fails the start at once, naming it,
        // before any database work.
        let listener = crate::grpc::bind(config.grpc_listen_addr).await?;
        let pool = crate::db::connect(
            &config.database_url,
            config.database_max_connections,
            config.database_connect_timeout,
        )
        .await?;
        crate::metrics::observe(name, &pool);
        // Schema changes as the owner, over a connection of their own that is
        // closed before serving; the pool serves as the runtime role.
        let owner = match &config.migration_database_url {
            Some(url) => Some(crate::db::connect(url, 1, config.database_connect_timeout).await?),
            None => None,
        };
        let setup = owner.as_ref().unwrap_or(&pool);
        crate::db::migrate(setup, migrator).await?;
        if config.seed_demo_data {
            sqlx::raw_sql(demo_data)
                .execute(setup)
                .await
                .map_err(ServiceError::Seed)?;
            tracing::info!("demo data loaded");
        }
        if let Some(owner) = owner {
            owner.close().await;
        }
        let nats = crate::messaging::connect(&config.nats_url, name).await?;
        let faults = Faults::new(name);
        if let Err(error) = faults.refresh(&pool).await {
            tracing::warn!(%error, "could not read the fault flags yet");
        }
        Ok(Self {
            config,
            pool,
            nats,
            listener,
            faults,
        })
    }

    /// The service's fault flags (docs/scenarios.md).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The service's database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The service's NATS client.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The address the gRPC server is bound to.
    ///
    /// # Errors
    /// If the OS cannot tell (it always can for a bound TCP socket).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// JetStream over the service's NATS connection.
    pub fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.nats.clone())
    }

    /// A durable consumer of `filter_subject` on `stream`, with the configured
    /// redelivery budget and ack wait.
    pub fn consumer_spec(
        &self,
        stream: &'static str,
        durable: &'static str,
        filter_subject: &'static str,
    ) -> ConsumerSpec {
        ConsumerSpec {
            stream,
            durable,
            filter_subject,
            max_deliver: self.config.messaging.consumer_max_deliver,
            ack_wait: self.config.messaging.consumer_ack_wait,
            concurrency: self.config.messaging.consumer_concurrency,
        }
    }

    /// A task that consumes `spec` with `handler` until shutdown.
    pub fn consumer_task<H: MessageHandler>(
        &self,
        spec: ConsumerSpec,
        handler: H,
        shutdown: &Shutdown,
    ) -> BackgroundTask {
        let name = spec.durable;
        BackgroundTask::new(
            name,
            run_consumer(
                self.jetstream(),
                self.pool.clone(),
                spec,
                handler,
                self.faults.clone(),
                shutdown.clone(),
            ),
        )
    }

    /// Serves health, reflection and the API added by `add_api` (whose gRPC
    /// service names are `api_services`), relays the outbox and runs `tasks`
    /// (consumers, timers) until `shutdown`. If any task stops on its own, the
    /// whole service stops and says which: a supervisor restarts it whole rather
    /// than leaving it half alive. On the way out in-flight calls may finish
    /// within the grace period, then NATS is flushed and the pool closed.
    ///
    /// # Errors
    /// If the gRPC server fails or a task stops unexpectedly.
    pub async fn serve(
        self,
        api_services: &[&'static str],
        add_api: impl FnOnce(ServiceRouter, GrpcLimits) -> ServiceRouter,
        tasks: Vec<BackgroundTask>,
        shutdown: Shutdown,
    ) -> Result<(), ServiceError> {
        let admin = FaultAdmin::new(self.pool.clone(), self.faults.clone());
        let layer = FaultLayer::new(self.faults.clone());
        let limits = self.config.grpc_limits;
        let tls = match &self.config.grpc_tls {
            Some(files) => Some(
                files
                    .server_config()
                    .map_err(|error| ServiceError::Startup(error_chain(&error)))?,
            ),
            None => None,
        };
        let (reporter, router) =
            crate::grpc::router_with_health_and_reflection(admin, layer, limits, tls)?;
        let probe = DependencyProbe {
            reporter,
            grpc_services: api_services.to_vec(),
            pool: self.pool.clone(),
            nats: self.nats.clone(),
            faults: self.faults.clone(),
            interval: self.config.health_probe_interval,
        };
        probe.report_not_serving_yet().await;
        let relay = OutboxRelay {
            pool: self.pool.clone(),
            jetstream: self.jetstream(),
            settings: self.config.messaging.relay,
        };
        let mut running = tokio::task::JoinSet::new();
        let all_tasks = [
            BackgroundTask::new("health probe", probe.run(shutdown.clone())),
            BackgroundTask::new("outbox relay", relay.run(shutdown.clone())),
            BackgroundTask::new(
                "fault flag watcher",
                self.faults
                    .clone()
                    .watch(self.pool.clone(), shutdown.clone()),
            ),
        ]
        .into_iter()
        .chain(tasks);
        for task in all_tasks {
            let name = task.name;
            running.spawn(async move {
                task.future.await;
                name
            });
        }
        tracing::info!(addr = %self.config.grpc_listen_addr, "serving gRPC");
        let server = crate::grpc::serve(
            add_api(router, limits),
            self.listener,
            shutdown.clone(),
            self.config.shutdown_grace,
        );
        tokio::pin!(server);
        let mut failure = None;
        tokio::select! {
            served = &mut server => failure = served.err().map(ServiceError::from),
            Some(stopped) = running.join_next() => {
                let name = stopped.unwrap_or("a task that panicked");
                if !shutdown.is_triggered() {
                    tracing::error!(task = name, "a background task stopped unexpectedly; stopping the service");
                    failure = Some(ServiceError::TaskStopped(name));
                }
                shutdown.trigger();
                if let Err(error) = server.await {
                    failure.get_or_insert(error.into());
                }
            }
        }
        // Whatever ended the server, the rest of the process stops with it.
        shutdown.trigger();
        while let Some(stopped) = running.join_next().await {
            if let Err(error) = stopped {
                tracing::warn!(%error, "a background task ended abnormally");
            }
        }
        if let Err(error) = self.nats.flush().await {
            tracing::warn!(%error, "could not flush NATS on shutdown");
        }
        self.pool.close().await;
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// A named piece of work that runs beside the gRPC server until shutdown.
pub struct BackgroundTask {
    name: &'static str,
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl BackgroundTask {
    /// A task called `name` (in logs) running `future`, which should return only
    /// once shutdown is triggered.
    pub fn new(name: &'static str, future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            name,
            future: Box::pin(future),
        }
    }
}
