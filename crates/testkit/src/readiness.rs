//! Waiting for a freshly started server to be ready, with a deadline.
//!
//! Every server is "ready" in its own way (a SQL login, an HTTP health check, a gRPC
//! health check), but the wait around it is the same: try, and if it failed, give up
//! early when the process has exited, give up with the last error at the deadline,
//! and otherwise try again shortly. No fixed sleeps: a test waits exactly as long as
//! the server needs.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

use crate::process::ManagedProcess;

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// Longest a single probe may take: a probe against a half-started (or paused) server
/// can hang, and must not eat the whole deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `probe` until it succeeds, `process` exits, or `timeout` passes; `what` names
/// the server in the error, which also carries the process's command line and log tail.
pub(crate) async fn wait_until_ready<T, Probe, Attempt>(
    process: &mut ManagedProcess,
    what: &str,
    timeout: Duration,
    mut probe: Probe,
) -> anyhow::Result<T>
where
    Probe: FnMut() -> Attempt,
    Attempt: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let attempt_timeout = deadline
            .saturating_duration_since(Instant::now())
            .clamp(PROBE_INTERVAL, PROBE_TIMEOUT);
        let failure = match tokio::time::timeout(attempt_timeout, probe()).await {
            Ok(Ok(ready)) => return Ok(ready),
            Ok(Err(error)) => error,
            Err(_) => anyhow!("no answer within {attempt_timeout:?}"),
        };
        if let Some(status) = process.try_exit_status()? {
            bail!(
                "{what} exited ({status}) before it was ready\n{}",
                process.diagnostics()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "{what} was not ready within {timeout:?}; last attempt: {failure:#}\n{}",
                process.diagnostics()
            );
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
