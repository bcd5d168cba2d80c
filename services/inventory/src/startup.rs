//! Building and running the inventory service.

use microcosm_messaging::streams::INVENTORY_STREAM;
use microcosm_platform::config::{ConfigError, EnvSource, ServiceConfig};
use microcosm_platform::service::{Microservice, ServiceError, ServiceHost};
use microcosm_platform::shutdown::Shutdown;
use microcosm_proto::inventory::inventory_service_server::{InventoryServiceServer, SERVICE_NAME};

use crate::api::InventoryApi;
use crate::config::Config;
use crate::messaging::InventoryCommands;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
const DEMO_DATA: &str = include_str!("../seed/demo.sql");

/// A connected, migrated inventory service, ready to serve.
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
            ServiceHost::start("inventory", config.common, &MIGRATOR, DEMO_DATA, shutdown).await?;
        Ok(Self { host })
    }

    async fn run_until(self, shutdown: Shutdown) -> Result<(), ServiceError> {
        let api = InventoryApi::new(self.host.pool().clone(), self.host.dispatcher().clone());
        let commands = self.host.consumer_task(
            self.host.consumer_spec(
                INVENTORY_STREAM.name,
                "inventory-commands",
                "inventory.cmd.>",
            ),
            InventoryCommands::new(self.host.pool().clone()),
            &shutdown,
        );
        self.host
            .serve(
                &[SERVICE_NAME],
                |router, limits| {
                    router.add_service(
                        InventoryServiceServer::new(api)
                            .max_decoding_message_size(limits.max_message_bytes),
                    )
                },
                vec![commands],
                shutdown,
            )
            .await
    }
}
