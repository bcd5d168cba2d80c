//! The inventory service's configuration: the shared service settings (see
//! README.md, "Configuration"), with gRPC on port 50052 by default.

use microcosm_platform::config::{ConfigError, EnvSource, ServiceConfig};

/// Default gRPC port of the inventory service.
pub const DEFAULT_GRPC_PORT: u16 = 50052;

/// Everything the inventory service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database, NATS, gRPC, telemetry and shutdown settings.
    pub common: ServiceConfig,
}

impl Config {
    /// Reads the configuration, naming every missing or malformed variable.
    ///
    /// # Errors
    /// A [`ConfigError`] listing the problems.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let common = ServiceConfig::from_env(env, "inventory", DEFAULT_GRPC_PORT)?;
        Ok(Self { common })
    }
}
