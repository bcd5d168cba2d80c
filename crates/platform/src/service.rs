//! The life of a service process, written once for all three.
//!
//! [`ServiceHost::start`] does what every service does before it can serve:
//! connect to its database (waiting for it, bounded), apply its migrations, load
//! demo data if asked, connect to NATS and bind the gRPC port. [`ServiceHost::serve`]
//! then runs the gRPC server and the dependency probe until shutdown, and closes
//! the pool and the NATS connection on the way out. [`main`] is the whole body of
//! each service's `main.rs`.
//!
//! A shutdown always ends within `SHUTDOWN_GRACE_MS` plus [`CLOSE_BOUND`] and
//! [`TELEMETRY_FLUSH_BOUND`], whatever state the database and NATS are in and
//! whichever start-up step the service is at: every step of the start races the
//! shutdown signal, background tasks still running at the end of the grace period
//! are abandoned, and closing the pool, flushing NATS and flushing telemetry each
//! have a bound of their own. What had to be abandoned is named in the last line
//! the service logs.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::config::{ConfigError, EnvSource, ProcessEnv, ServiceConfig};
use crate::db::DatabaseError;
use crate::faults::layer::FaultLayer;
use crate::faults::{FaultAdmin, Faults};
use crate::grpc::{GrpcError, GrpcLimits, ServiceRouter};
use crate::health::DependencyProbe;
use microcosm_messaging::NatsConnectError;
use microcosm_messaging::consumer::{ConsumerContext, MessageHandler, run_consumer};
use microcosm_messaging::outbox::{Dispatcher, Sweeper};
use microcosm_messaging::streams::ConsumerSpec;

use crate::faults::FaultyHandler;
use crate::shutdown::Shutdown;
use crate::telemetry::init_telemetry;

/// Exit code for a configuration error (`EX_CONFIG` from sysexits.h), so a
/// supervisor can tell "fix the environment" from "crashed".
pub const EXIT_CONFIG: u8 = 78;

/// Exit code for an unknown command-line argument (`EX_USAGE` from sysexits.h).
pub const EXIT_USAGE: u8 = 64;

/// How long closing the connections may take once the grace period is over:
/// flushing NATS (skipped while it is disconnected) and closing the pool, whose
/// server may be gone or frozen.
pub const CLOSE_BOUND: Duration = Duration::from_millis(500);

/// How long the last spans and metrics may take to reach the collector on the
/// way out; an unreachable collector costs no more than this.
pub const TELEMETRY_FLUSH_BOUND: Duration = Duration::from_millis(750);

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
    /// Shutdown was asked for before start-up finished; not a failure.
    #[error("shut down during start-up ({0})")]
    Interrupted(&'static str),
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

    /// Connects, migrates and binds; ready to serve. Gives up with
    /// [`ServiceError::Interrupted`] as soon as `shutdown` is triggered.
    fn build(
        config: Self::Config,
        shutdown: &Shutdown,
    ) -> impl Future<Output = Result<Self, ServiceError>> + Send;

    /// Serves until `shutdown`, then drains and closes.
    fn run_until(self, shutdown: Shutdown)
    -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// The body of every service's `main`: configuration (exit 78 naming each bad
/// variable), telemetry, build, run until SIGTERM/SIGINT, and one line saying how
/// the shutdown went. With the argument `healthcheck` it checks a running instance
/// instead (see [`crate::healthcheck`]).
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
    // Signals are caught before anything else, so SIGTERM is honoured at every
    // step of the start-up too (waiting for the database, migrating, ...).
    let shutdown = match Shutdown::on_signals() {
        Ok(shutdown) => shutdown,
        Err(error) => {
            let error = ServiceError::Signals(error);
            tracing::error!(error = %error_chain(&error), "could not start");
            return ExitCode::FAILURE;
        }
    };
    let result = match S::build(config, &shutdown).await {
        Ok(service) => service.run_until(shutdown.clone()).await,
        Err(error) => Err(error),
    };
    let result = match result {
        Err(ServiceError::Interrupted(step)) => {
            shutdown.cut_short(format!("start-up ({step})"));
            Ok(())
        }
        other => other,
    };
    if !telemetry.shutdown(TELEMETRY_FLUSH_BOUND).await {
        shutdown.cut_short("telemetry flush (is the collector reachable?)");
    }
    let took_ms = u64::try_from(shutdown.elapsed().as_millis()).unwrap_or(u64::MAX);
    let cut_short = shutdown.what_was_cut_short();
    match result {
        Ok(()) => {
            tracing::info!(took_ms, ?cut_short, "shutdown finished; stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(took_ms, ?cut_short, error = %error_chain(&error), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// Runs one start-up step unless shutdown is asked for first, in which case the
/// step is abandoned (a half-applied migration rolls back with its connection)
/// and start-up ends with [`ServiceError::Interrupted`] naming it.
async fn start_up_step<T, E: Into<ServiceError>>(
    shutdown: &Shutdown,
    step: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, ServiceError> {
    match shutdown.unless_triggered(work).await {
        Some(result) => result.map_err(Into::into),
        None => Err(ServiceError::Interrupted(step)),
    }
}

pub use microcosm_messaging::error_chain;

/// What a service needs once it is connected: its pool, its NATS client and its
/// bound gRPC listener.
pub struct ServiceHost {
    config: ServiceConfig,
    pool: PgPool,
    nats: async_nats::Client,
    listener: TcpListener,
    faults: Faults,
    dispatcher: Dispatcher,
}

impl ServiceHost {
    /// Connects to the database (bounded wait), migrates, seeds demo data when
    /// `SEED_DEMO_DATA` is set, connects to NATS and binds the gRPC port.
    ///
    /// `demo_data` is idempotent SQL: loading it twice changes nothing. Each step
    /// gives up as soon as `shutdown` is triggered.
    ///
    /// # Errors
    /// If any step fails; the error names the step and the setting to check.
    /// [`ServiceError::Interrupted`] if shutdown came first.
    pub async fn start(
        name: &'static str,
        config: ServiceConfig,
        migrator: &Migrator,
        demo_data: &'static str,
        shutdown: &Shutdown,
    ) -> Result<Self, ServiceError> {
        // Bind first: a port that is taken fails the start at once, naming it,
        // before any database work.
        let listener = crate::grpc::bind(config.grpc_listen_addr).await?;
        let pool = start_up_step(
            shutdown,
            "waiting for the database",
            crate::db::connect(
                &config.database_url,
                config.database_max_connections,
                config.database_connect_timeout,
            ),
        )
        .await?;
        crate::metrics::observe(name, &pool);
        let migrating = async {
            // Schema changes as the owner, over a connection of their own that is
            // closed before serving; the pool serves as the runtime role.
            let owner = match &config.migration_database_url {
                Some(url) => {
                    Some(crate::db::connect(url, 1, config.database_connect_timeout).await?)
                }
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
            Ok::<_, ServiceError>(())
        };
        start_up_step(shutdown, "migrating and loading demo data", migrating).await?;
        let nats = start_up_step(
            shutdown,
            "connecting to NATS",
            microcosm_messaging::connect(&config.nats_url, name),
        )
        .await?;
        let faults = Faults::new(name);
        match shutdown.unless_triggered(faults.refresh(&pool)).await {
            Some(Ok(())) => {}
            Some(Err(error)) => tracing::warn!(%error, "could not read the fault flags yet"),
            None => return Err(ServiceError::Interrupted("reading the fault flags")),
        }
        let dispatcher = Dispatcher::new(
            async_nats::jetstream::new(nats.clone()),
            config.messaging.sweep.ack_timeout,
        );
        Ok(Self {
            config,
            pool,
            nats,
            listener,
            faults,
            dispatcher,
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

    /// Publishes what the service stored in its outbox, right after the commit.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
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

    /// A task that consumes `spec` with `handler` until shutdown, under the
    /// service's fault flags.
    pub fn consumer_task<H: MessageHandler>(
        &self,
        spec: ConsumerSpec,
        handler: H,
        shutdown: &Shutdown,
    ) -> BackgroundTask {
        let name = spec.durable;
        let context = ConsumerContext {
            jetstream: self.jetstream(),
            pool: self.pool.clone(),
            dispatcher: self.dispatcher.clone(),
        };
        let handler = FaultyHandler::new(
            handler,
            self.faults.clone(),
            self.pool.clone(),
            shutdown.clone(),
        );
        BackgroundTask::new(name, run_consumer(context, spec, handler, shutdown.token()))
    }

    /// Serves health, reflection and the API added by `add_api` (whose gRPC
    /// service names are `api_services`), relays the outbox and runs `tasks`
    /// (consumers, timers) until `shutdown`. If any task stops on its own, the
    /// whole service stops and says which: a supervisor restarts it whole rather
    /// than leaving it half alive. On the way out in-flight calls and tasks may
    /// finish within the grace period (what is still running then is abandoned
    /// and named), then NATS is flushed and the pool closed within [`CLOSE_BOUND`].
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
        let sweeper = Sweeper {
            pool: self.pool.clone(),
            dispatcher: self.dispatcher.clone(),
            settings: self.config.messaging.sweep,
        };
        let mut running = tokio::task::JoinSet::new();
        let mut still_running = BTreeSet::new();
        let all_tasks = [
            BackgroundTask::new("health probe", probe.run(shutdown.clone())),
            BackgroundTask::new("outbox relay", sweeper.run(shutdown.token())),
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
            still_running.insert(name);
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
                let name = match stopped {
                    Ok(name) => {
                        still_running.remove(name);
                        name
                    }
                    Err(_) => "a task that panicked",
                };
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
        let deadline = shutdown.deadline(self.config.shutdown_grace);
        let joined = tokio::time::timeout_at(deadline, async {
            while let Some(stopped) = running.join_next().await {
                match stopped {
                    Ok(name) => {
                        still_running.remove(name);
                    }
                    Err(error) => tracing::warn!(%error, "a background task ended abnormally"),
                }
            }
        })
        .await;
        if joined.is_err() {
            // Dropping the set aborts them: each is cancel-safe (transactions roll
            // back, unacknowledged messages are redelivered).
            for name in &still_running {
                shutdown.cut_short(*name);
            }
            running.abort_all();
        }
        close_connections(&self.nats, &self.pool, &self.dispatcher, &shutdown).await;
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Marks what the consumers dispatched since the sweeper's last round as
/// published (else the next process publishes it again, to be dropped as a
/// duplicate), flushes what NATS still buffers (only while connected: a flush
/// waits for a connection that may never come back) and closes the pool (whose
/// server may be gone), together within [`CLOSE_BOUND`].
async fn close_connections(
    nats: &async_nats::Client,
    pool: &PgPool,
    dispatcher: &Dispatcher,
    shutdown: &Shutdown,
) {
    let deadline = tokio::time::Instant::now() + CLOSE_BOUND;
    // At most half the bound: rows left unmarked cost only a duplicate publish
    // (dropped by JetStream), so this never holds up the rest.
    let marking = tokio::time::timeout(CLOSE_BOUND / 2, dispatcher.mark_acknowledged(pool)).await;
    if !matches!(marking, Ok(Ok(()))) {
        tracing::debug!(
            "dispatched outbox rows left unmarked; the next sweep publishes them again"
        );
    }
    if microcosm_messaging::is_connected(nats) {
        match tokio::time::timeout_at(deadline, nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not flush NATS on shutdown"),
            Err(_) => shutdown.cut_short("NATS flush"),
        }
    }
    if tokio::time::timeout_at(deadline, pool.close())
        .await
        .is_err()
    {
        shutdown.cut_short("closing the database pool");
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
