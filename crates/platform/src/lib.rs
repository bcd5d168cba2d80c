//! What every Microcosm service shares, written once: configuration from the
//! environment, logging, the database pool and migrations, the gRPC bootstrap
//! (health and reflection), dependency health probes, field validation and
//! pagination for the public APIs, and graceful shutdown.
//!
//! Business rules never live here: each service owns its domain. This crate holds
//! only the mechanics that would otherwise be copied into all three.

pub mod config;
pub mod db;
pub mod faults;
pub mod grpc;
pub mod health;
pub mod healthcheck;
pub mod ids;
pub mod metrics;
pub mod pagination;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod validation;

/// The static (musl) builds of the container images allocate with mimalloc:
/// musl's own malloc serialises threads, which a multi-threaded tokio service
/// feels at once. Native (glibc) builds keep the system allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The fault-flag table every service has (the messaging tables come from
/// `microcosm_messaging::MIGRATOR`), applied together with the service's own.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[cfg(test)]
mod properties;
