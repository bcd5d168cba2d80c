//! The order service's configuration: the shared service settings (see
//! README.md, "Configuration"), with gRPC on port 50051 by default, plus the
//! saga's timing and where the participants' gRPC APIs are.

use std::time::Duration;

use microcosm_platform::config::{ConfigError, ConfigReader, EnvSource, ServiceConfig};

use crate::saga::machine::RetryPolicy;

/// Default gRPC port of the order service.
pub const DEFAULT_GRPC_PORT: u16 = 50051;

/// Everything the order service reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database, NATS, gRPC, telemetry and shutdown settings.
    pub common: ServiceConfig,
    /// Deadlines and retries of the saga.
    pub saga: SagaConfig,
    /// The participants' gRPC APIs, for GetOrder with details.
    pub composition: CompositionConfig,
}

/// How patient the saga is.
#[derive(Debug, Clone, Copy)]
pub struct SagaConfig {
    /// `SAGA_STEP_TIMEOUT_MS` (default 10000): how long a step may wait for its reply.
    pub step_timeout: Duration,
    /// `SAGA_STEP_MAX_ATTEMPTS` (default 3): sends of a step's command before compensating.
    pub retry: RetryPolicy,
    /// `SAGA_SWEEP_INTERVAL_MS` (default 250): how often overdue steps are looked for.
    pub sweep_interval: Duration,
    /// `PLACE_ORDER_MAX_WAIT_MS` (default 30000): the longest `wait_ms` PlaceOrder honours.
    pub max_wait: Duration,
    /// `PLACE_ORDER_MAX_IN_FLIGHT` (default 64): PlaceOrder calls handled at once
    /// (waiting ones included); one more is refused with RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
}

/// Where inventory and billing are, and how long to wait for them.
#[derive(Debug, Clone)]
pub struct CompositionConfig {
    /// `INVENTORY_GRPC_URL` (default http://127.0.0.1:50052).
    pub inventory_url: String,
    /// `BILLING_GRPC_URL` (default http://127.0.0.1:50053).
    pub billing_url: String,
    /// `COMPOSITION_TIMEOUT_MS` (default 1000): the deadline of each call.
    pub timeout: Duration,
}

impl Config {
    /// Reads the configuration, naming every missing or malformed variable.
    ///
    /// # Errors
    /// A [`ConfigError`] listing the problems.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let mut reader = ConfigReader::new(env);
        let common = ServiceConfig::read(&mut reader, "order", DEFAULT_GRPC_PORT);
        let max_attempts = reader.optional(
            "SAGA_STEP_MAX_ATTEMPTS",
            3_u32,
            "a number of attempts such as 3",
        );
        if max_attempts == 0 {
            reader.problem("SAGA_STEP_MAX_ATTEMPTS", "must be at least 1".to_owned());
        }
        let saga = SagaConfig {
            step_timeout: reader.millis("SAGA_STEP_TIMEOUT_MS", Duration::from_secs(10)),
            retry: RetryPolicy { max_attempts },
            sweep_interval: reader.millis("SAGA_SWEEP_INTERVAL_MS", Duration::from_millis(250)),
            max_wait: reader.millis("PLACE_ORDER_MAX_WAIT_MS", Duration::from_secs(30)),
            max_in_flight: reader.optional(
                "PLACE_ORDER_MAX_IN_FLIGHT",
                64_usize,
                "a number of calls such as 64",
            ),
        };
        if saga.max_in_flight == 0 {
            reader.problem("PLACE_ORDER_MAX_IN_FLIGHT", "must be at least 1".to_owned());
        }
        let composition = CompositionConfig {
            inventory_url: url(&mut reader, "INVENTORY_GRPC_URL", "http://127.0.0.1:50052"),
            billing_url: url(&mut reader, "BILLING_GRPC_URL", "http://127.0.0.1:50053"),
            timeout: reader.millis("COMPOSITION_TIMEOUT_MS", Duration::from_secs(1)),
        };
        reader.finish()?;
        Ok(Self {
            common: common.ok_or_else(|| ConfigError {
                problems: Vec::new(),
            })?,
            saga,
            composition,
        })
    }
}

fn url(reader: &mut ConfigReader<'_>, name: &str, default: &str) -> String {
    let value: String = reader.optional(name, default.to_owned(), "an http:// URL");
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        reader.problem(
            name,
            format!("is {value:?}; expected an http:// or https:// URL"),
        );
    }
    value
}
