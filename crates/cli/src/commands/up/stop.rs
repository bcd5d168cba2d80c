//! Stopping the stack: the reverse of starting it, each part given time to finish.
//!
//! Order first, since it calls the others; then inventory and billing together; then
//! NATS and PostgreSQL, once nothing uses them. Services get SIGTERM and as long as
//! their own `SHUTDOWN_GRACE_MS` plus a margin to finish in-flight calls; PostgreSQL
//! gets a fast shutdown (checkpoint, so the next start needs no recovery) and NATS a
//! graceful stop (the JetStream store closed cleanly). Whatever misses its bound is
//! killed, so in every case nothing is left running.

use std::time::Duration;

use microcosm_platform::service::{CLOSE_BOUND, TELEMETRY_FLUSH_BOUND};
use microcosm_testkit::{ServiceKind, ServiceProcess, Stack};

/// A service's grace period when its environment does not set one (the services'
/// own default for `SHUTDOWN_GRACE_MS`).
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Time on top of the grace period for the process to close its connections,
/// flush its telemetry and exit. A service bounds the first two itself, so Ctrl-C
/// ends `up` within the grace period and this margin (2 s), whatever state NATS
/// and PostgreSQL are in.
const EXIT_MARGIN: Duration = CLOSE_BOUND
    .saturating_add(TELEMETRY_FLUSH_BOUND)
    .saturating_add(Duration::from_millis(750));

/// Stops everything gracefully. Returns whether every part stopped in time; those that
/// did not were killed and are named on stderr.
pub(crate) async fn stop_gracefully(stack: &mut Stack) -> bool {
    let order = stop_service(&mut stack.order).await;
    let (inventory, billing) = tokio::join!(
        stop_service(&mut stack.inventory),
        stop_service(&mut stack.billing)
    );

    // Someone may have frozen a server with `kill -STOP` while experimenting; a frozen
    // process cannot act on a shutdown signal. (An error only means it is not running.)
    let _ = stack.nats.resume();
    // `up` runs one PostgreSQL server for the three databases.
    let postgres = stack.postgres_mut(ServiceKind::Order);
    let _ = postgres.resume();
    let postgres = stopped_cleanly("PostgreSQL", postgres.stop().await);
    let nats = stopped_cleanly("nats-server", stack.nats.stop().await);
    order && inventory && billing && nats && postgres
}

/// Whether a server's stop succeeded; if not, says so (the kit has killed it then).
fn stopped_cleanly(name: &str, stopped: anyhow::Result<()>) -> bool {
    match stopped {
        Ok(()) => true,
        Err(error) => {
            eprintln!("{name} did not stop cleanly and was killed: {error:#}");
            false
        }
    }
}

/// Stops everything at once, for a second Ctrl-C during a graceful stop: services are
/// killed, PostgreSQL gets an immediate shutdown (its next start replays the WAL).
pub(crate) async fn stop_at_once(stack: &mut Stack) {
    for kind in ServiceKind::all() {
        if let Err(error) = stack.service_mut(kind).kill() {
            eprintln!("could not kill {}: {error:#}", kind.binary_name());
        }
    }
    if let Err(error) = stack.nats.kill() {
        eprintln!("could not kill nats-server: {error:#}");
    }
    if let Err(error) = stack.postgres_mut(ServiceKind::Order).kill().await {
        eprintln!("could not kill PostgreSQL: {error:#}");
    }
}

/// SIGTERM, bounded by the service's grace period; killed if it does not exit in time.
async fn stop_service(service: &mut ServiceProcess) -> bool {
    let name = service.kind().binary_name();
    // As above: a frozen service would not see SIGTERM. An error only means it is not
    // running (it may have crashed earlier, and was reported then).
    let _ = service.resume();
    let bound = shutdown_bound(service.env());
    match service.terminate(bound).await {
        Ok(_) => true,
        Err(error) => {
            eprintln!("{name} did not stop within {bound:?} of SIGTERM, killing it: {error:#}");
            if let Err(error) = service.kill() {
                eprintln!("could not kill {name}: {error:#}");
            }
            false
        }
    }
}

/// How long a service may take to exit after SIGTERM: its `SHUTDOWN_GRACE_MS` (from the
/// environment it was started with) plus a margin.
fn shutdown_bound(env: &[(String, String)]) -> Duration {
    let grace = env
        .iter()
        .find(|(name, _)| name == "SHUTDOWN_GRACE_MS")
        .and_then(|(_, value)| value.parse().ok())
        .map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_millis);
    grace + EXIT_MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_gets_its_own_grace_period_plus_a_margin() {
        let env = vec![("SHUTDOWN_GRACE_MS".to_owned(), "2500".to_owned())];
        assert_eq!(
            shutdown_bound(&env),
            Duration::from_millis(2500) + EXIT_MARGIN
        );
    }

    #[test]
    fn without_a_grace_period_the_services_default_applies() {
        assert_eq!(shutdown_bound(&[]), DEFAULT_SHUTDOWN_GRACE + EXIT_MARGIN);
    }
}
