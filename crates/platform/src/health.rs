//! Health that tells the truth: a service is SERVING only while it can reach both
//! its database and NATS.
//!
//! A probe loop checks both dependencies and flips `grpc.health.v1` for the whole
//! server ("") and for each of the service's gRPC services. Orchestrators (compose
//! healthchecks, Kubernetes probes, the test kit) read that status, so a service
//! whose database is down is taken out of rotation instead of failing requests.
//! [`LIVENESS_SERVICE`] answers SERVING while the process runs, for liveness probes.

use std::time::Duration;

use sqlx::PgPool;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::faults::Faults;
use crate::shutdown::Shutdown;

/// A health "service" that is SERVING for as long as the process runs, whatever
/// its dependencies: for liveness probes, which must not restart a service just
/// because its database is down (readiness, on "", takes it out of rotation).
pub const LIVENESS_SERVICE: &str = "liveness";

/// What the probe checks and where it reports.
pub struct DependencyProbe {
    /// Sets the gRPC health status.
    pub reporter: HealthReporter,
    /// Fully qualified gRPC service names to report for, besides "" (the server).
    pub grpc_services: Vec<&'static str>,
    /// The service's database.
    pub pool: PgPool,
    /// The service's NATS connection.
    pub nats: async_nats::Client,
    /// The fault flags (`unavailable` reports NOT_SERVING on purpose).
    pub faults: Faults,
    /// How often to check.
    pub interval: Duration,
}

impl DependencyProbe {
    /// Checks the dependencies every `interval` until `shutdown`, then reports
    /// NOT_SERVING so that clients stop sending work while the service drains.
    pub async fn run(self, shutdown: Shutdown) {
        let mut reported: Option<bool> = None;
        loop {
            // While not healthy, look again soon: a service that found NATS still
            // connecting at start should not wait a whole interval to serve.
            let pause = match reported {
                None => Duration::ZERO,
                Some(true) => self.interval,
                Some(false) => self.interval.min(Duration::from_millis(100)),
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.triggered() => break,
            }
            let database_up =
                crate::db::is_reachable(&self.pool, self.interval.max(Duration::from_millis(500)))
                    .await;
            let nats_up = microcosm_messaging::is_connected(&self.nats);
            let unavailable_on_purpose = self.faults.is_unavailable();
            let healthy = database_up && nats_up && !unavailable_on_purpose;
            if reported != Some(healthy) {
                if healthy {
                    tracing::info!("database and NATS reachable: SERVING");
                } else {
                    tracing::warn!(database_up, nats_up, unavailable_on_purpose, "NOT_SERVING");
                }
                self.report(if healthy {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                })
                .await;
                reported = Some(healthy);
            }
        }
        self.report(ServingStatus::NotServing).await;
    }

    /// Reports NOT_SERVING until the first check: tonic-health starts every
    /// server as SERVING, which would let clients in before the dependencies
    /// were looked at.
    pub async fn report_not_serving_yet(&self) {
        self.report(ServingStatus::NotServing).await;
        self.reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
    }

    async fn report(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.grpc_services {
            self.reporter.set_service_status(*service, status).await;
        }
    }
}
