//! Building and running the billing service.

use microcosm_messaging::streams::BILLING_STREAM;
use microcosm_platform::config::{ConfigError, EnvSource, ServiceConfig};
use microcosm_platform::service::{Microservice, ServiceError, ServiceHost};
use microcosm_platform::shutdown::Shutdown;
use microcosm_proto::billing::billing_service_server::{BillingServiceServer, SERVICE_NAME};

use crate::api::BillingApi;
use crate::config::Config;
use crate::messaging::BillingCommands;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
const DEMO_DATA: &str = include_str!("../seed/demo.sql");

/// A connected, migrated billing service, ready to serve.
pub struct Service {
    host: ServiceHost,
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
        let host =
            ServiceHost::start("billing", config.common, &MIGRATOR, DEMO_DATA, shutdown).await?;
        Ok(Self { host })
    }

    async fn run_until(self, shutdown: Shutdown) -> Result<(), ServiceError> {
        let api = BillingApi::new(self.host.pool().clone(), self.host.dispatcher().clone());
        let commands = self.host.consumer_task(
            self.host
                .consumer_spec(BILLING_STREAM.name, "billing-commands", "billing.cmd.>"),
            BillingCommands::new(self.host.pool().clone(), self.host.faults().clone()),
            &shutdown,
        );
        self.host
            .serve(
                &[SERVICE_NAME],
                |router, limits| {
                    router.add_service(
                        BillingServiceServer::new(api)
                            .max_decoding_message_size(limits.max_message_bytes),
                    )
                },
                vec![commands],
                shutdown,
            )
            .await
    }
}
