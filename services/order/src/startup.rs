//! Building and running the order service: its API, the consumers of the
//! participants' replies, the deadline sweeper and the order-update listener.

use microcosm_messaging::streams::{BILLING_STREAM, INVENTORY_STREAM};
use microcosm_platform::config::{ConfigError, EnvSource, ServiceConfig};
use microcosm_platform::service::{BackgroundTask, Microservice, ServiceError, ServiceHost};
use microcosm_platform::shutdown::Shutdown;
use microcosm_proto::order::order_service_server::{OrderServiceServer, SERVICE_NAME};

use crate::api::{OrderApi, Participants};
use crate::config::{Config, SagaConfig};
use crate::messaging::SagaReplies;
use crate::saga::deadlines::{DeadlineSweeper, run_deadline_sweeper};
use crate::saga::driver::SagaDriver;
use crate::saga::machine::CancelReason;
use crate::saga::updates::OrderUpdates;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
const DEMO_DATA: &str = include_str!("../seed/demo.sql");

/// A connected, migrated order service, ready to serve.
pub struct Service {
    host: ServiceHost,
    saga: SagaConfig,
    participants: Participants,
}

impl Service {
    /// The address its gRPC server is bound to.
    ///
    /// # Errors
    /// If the OS cannot report the bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.host.local_addr()
    }
}

impl Microservice for Service {
    type Config = Config;

    fn load_config(env: &dyn EnvSource) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn common(config: &Config) -> &ServiceConfig {
        &config.common
    }

    async fn build(config: Config, shutdown: &Shutdown) -> Result<Self, ServiceError> {
        // Over https the participants are verified against GRPC_TLS_CA, and order
        // presents its own certificate (mutual TLS).
        let tls = match &config.common.grpc_tls {
            Some(files) => Some(files.client_config().map_err(|error| {
                ServiceError::Startup(format!("TLS for calls to inventory and billing: {error}"))
            })?),
            None => None,
        };
        let participants =
            Participants::connect_lazy(&config.composition, tls).map_err(|error| {
                ServiceError::Startup(format!(
                    "invalid INVENTORY_GRPC_URL or BILLING_GRPC_URL: {error}"
                ))
            })?;
        let host =
            ServiceHost::start("order", config.common, &MIGRATOR, DEMO_DATA, shutdown).await?;
        // Every outcome exists from the start, at 0, so that a dashboard's
        // increase() sees the first order of each kind.
        microcosm_platform::metrics::saga_outcomes_known(
            std::iter::once(("confirmed", ""))
                .chain(CancelReason::ALL.map(|reason| ("cancelled", reason.as_str()))),
        );
        Ok(Self {
            host,
            saga: config.saga,
            participants,
        })
    }

    async fn run_until(self, shutdown: Shutdown) -> Result<(), ServiceError> {
        let host = self.host;
        let pool = host.pool().clone();
        let driver = SagaDriver {
            step_timeout: self.saga.step_timeout,
            retry: self.saga.retry,
        };
        let updates = OrderUpdates::new();
        let dispatcher = host.dispatcher().clone();
        let api = OrderApi::new(
            pool.clone(),
            driver,
            dispatcher.clone(),
            updates.clone(),
            self.participants,
            self.saga.max_wait,
            self.saga.max_in_flight,
        );
        let replies = SagaReplies::new(pool.clone(), driver, updates.clone());
        let sweeper = DeadlineSweeper {
            pool: pool.clone(),
            driver,
            dispatcher,
            updates: updates.clone(),
        };
        let tasks = vec![
            host.consumer_task(
                host.consumer_spec(
                    INVENTORY_STREAM.name,
                    "order-inventory-replies",
                    "inventory.evt.>",
                ),
                replies.clone(),
                &shutdown,
            ),
            host.consumer_task(
                host.consumer_spec(
                    BILLING_STREAM.name,
                    "order-billing-replies",
                    "billing.evt.>",
                ),
                replies,
                &shutdown,
            ),
            BackgroundTask::new(
                "saga deadline sweeper",
                run_deadline_sweeper(sweeper, self.saga.sweep_interval, shutdown.clone()),
            ),
            BackgroundTask::new(
                "order update listener",
                updates.listen(pool, shutdown.clone()),
            ),
        ];
        host.serve(
            &[SERVICE_NAME],
            |router, limits| {
                router.add_service(
                    OrderServiceServer::new(api)
                        .max_decoding_message_size(limits.max_message_bytes),
                )
            },
            tasks,
            shutdown,
        )
        .await
    }
}
