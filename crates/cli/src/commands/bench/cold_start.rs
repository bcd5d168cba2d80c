//! Cold start: how long a service takes from `exec` to answering SERVING.
//!
//! This is what a restart after a crash, a scale-out or a rolling deploy costs
//! before the new process takes traffic. The bench starts extra processes of a
//! running service with its exact configuration (so the database is already
//! migrated, as for any restart) and probes the standard gRPC health check every
//! 2 ms, far finer than the kit's 25 ms readiness probe, so the number is
//! precise to a few milliseconds. Each extra process is shut down gracefully
//! before the next is started, so no two measurements overlap.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use microcosm_testkit::{ManagedProcess, ServiceProcess, ServingStatus, free_port, service_binary};
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Pause between two health probes of a starting process.
const PROBE_INTERVAL: Duration = Duration::from_millis(2);
/// Longest one probe may take (a half-started server may not answer at all).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A process that is not SERVING by then has failed to start.
const SERVING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a measured process may take to shut down after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `samples` fresh processes of `service`, one at a time, and returns how
/// long each took from exec to SERVING.
pub(crate) async fn measure_cold_starts(
    service: &ServiceProcess,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let kind = service.kind();
    let binary = service_binary(kind)?;
    let mut durations = Vec::with_capacity(samples);
    for sample in 0..samples {
        let port = free_port()?;
        let mut command = Command::new(&binary);
        // The kit's defaults for a service, then the service's own environment,
        // which wins: the same configuration the running service has.
        command
            .env_clear()
            .current_dir(service.dir())
            .env("GRPC_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(service.env().iter().map(|(name, value)| (name, value)));
        let log = service
            .dir()
            .join(format!("{}-cold-start-{sample}.log", kind.binary_name()));
        let exec = Instant::now();
        let mut process = ManagedProcess::spawn(command, log)?;
        let serving = wait_serving(&mut process, port, exec).await;
        process
            .terminate(STOP_TIMEOUT)
            .await
            .with_context(|| format!("a cold-start {kind} process did not stop"))?;
        durations.push(serving.with_context(|| format!("cold start {sample} of {kind}"))?);
    }
    Ok(durations)
}

/// The middle value of some durations (the upper middle for an even count).
pub(crate) fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Probes until the process on `port` reports SERVING, and returns the time since
/// `exec`; fails if the process exits or does not get there in time.
async fn wait_serving(
    process: &mut ManagedProcess,
    port: u16,
    exec: Instant,
) -> anyhow::Result<Duration> {
    let endpoint = format!("http://127.0.0.1:{port}");
    loop {
        if let Ok(Ok(ServingStatus::Serving)) =
            tokio::time::timeout(PROBE_TIMEOUT, health_of(&endpoint)).await
        {
            return Ok(exec.elapsed());
        }
        if let Some(status) = process.try_exit_status()? {
            bail!(
                "exited ({status}) before it was SERVING\n{}",
                process.diagnostics()
            );
        }
        if exec.elapsed() > SERVING_TIMEOUT {
            bail!(
                "not SERVING within {SERVING_TIMEOUT:?}\n{}",
                process.diagnostics()
            );
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// One health check on a fresh connection: before the port is bound it fails at
/// once with "connection refused", so probing costs the starting process nothing.
async fn health_of(endpoint: &str) -> anyhow::Result<ServingStatus> {
    let channel = Endpoint::from_shared(endpoint.to_owned())?
        .connect()
        .await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(ServingStatus::try_from(response.into_inner().status)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_sample() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(30), ms(10), ms(20)]), ms(20));
        assert_eq!(median(&[ms(10), ms(40)]), ms(40));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
