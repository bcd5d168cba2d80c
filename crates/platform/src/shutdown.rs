//! Graceful shutdown as one small type handed to every task.
//!
//! A [`Shutdown`] is a cancellation token: the signal handler (or a failing task,
//! or a test) raises it once, and every task that holds a clone sees it and stops.
//! The gRPC server stops accepting connections and lets in-flight calls end;
//! background loops stop between iterations, and every wait inside them (a retry
//! backoff, a query to a database that stopped answering, a JetStream request to a
//! NATS that is gone) is raced against it with [`Shutdown::unless_triggered`].
//!
//! Shutdown is bounded: whatever is still running when the grace period is over is
//! cut short, and the token remembers what ([`Shutdown::cut_short`]) so the last log
//! line can say so. A dependency that is down must never keep a process alive that
//! its supervisor asked to stop: a rollout during a NATS outage would otherwise wait
//! out every pod's whole termination grace period.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Exit code after a second SIGINT: 128 + 2, as a shell reports an interrupted command.
pub const EXIT_INTERRUPTED: i32 = 130;
/// Exit code after a second SIGTERM: 128 + 15.
pub const EXIT_TERMINATED: i32 = 143;

/// A shared "please stop" flag that also records how the stop went.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    record: Arc<Record>,
}

/// When stopping began, and what had to be abandoned on the way.
#[derive(Debug, Default)]
struct Record {
    started: OnceLock<Instant>,
    cut_short: Mutex<Vec<String>>,
}

impl Shutdown {
    /// A flag that nothing has raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop. The first call starts the clock of the grace
    /// period; later calls change nothing.
    pub fn trigger(&self) {
        self.record.started.get_or_init(Instant::now);
        self.token.cancel();
    }

    /// The cancellation token behind the flag, for code that knows no more than
    /// tokio-util (the messaging crate).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Whether stopping has been asked for.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once stopping has been asked for.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Runs `work` unless (or until) stopping is asked for: `None` if shutdown
    /// came first, and `work` is dropped where it stood. Only for work that is
    /// safe to abandon — every database transaction here rolls back when dropped,
    /// and every message is acknowledged only after its effect committed.
    pub async fn unless_triggered<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            output = work => Some(output),
            () = self.token.cancelled() => None,
        }
    }

    /// The moment by which in-flight work must be done: `grace` after stopping
    /// was asked for (or after now, if it has not been yet).
    pub fn deadline(&self, grace: Duration) -> Instant {
        self.record
            .started
            .get()
            .copied()
            .unwrap_or_else(Instant::now)
            + grace
    }

    /// How long ago stopping was asked for (zero if it has not been).
    pub fn elapsed(&self) -> Duration {
        self.record
            .started
            .get()
            .map_or(Duration::ZERO, Instant::elapsed)
    }

    /// Notes that `what` was abandoned to keep within the bound: reported in the
    /// line that ends the shutdown.
    pub fn cut_short(&self, what: impl Into<String>) {
        let what = what.into();
        tracing::warn!(cut_short = %what, "shutdown: not finished in time; abandoned");
        self.record
            .cut_short
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(what);
    }

    /// Everything noted with [`cut_short`](Self::cut_short), in order.
    pub fn what_was_cut_short(&self) -> Vec<String> {
        self.record
            .cut_short
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A flag that is raised on the first SIGTERM or SIGINT. A second one while
    /// the first is being honoured ends the process at once, with exit code 143
    /// (SIGTERM) or 130 (SIGINT), as people expect of a command they interrupt
    /// twice.
    ///
    /// # Errors
    /// If the signal handlers cannot be installed.
    pub fn on_signals() -> std::io::Result<Self> {
        let shutdown = Self::new();
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let flag = shutdown.clone();
        tokio::spawn(async move {
            let first = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(
                signal = first,
                "shutdown started: finishing in-flight work (signal again to stop at once)"
            );
            flag.trigger();
            let (second, code) = tokio::select! {
                _ = terminate.recv() => ("SIGTERM", EXIT_TERMINATED),
                _ = interrupt.recv() => ("SIGINT", EXIT_INTERRUPTED),
            };
            tracing::warn!(
                signal = second,
                after_ms = flag.elapsed().as_millis(),
                "second signal during shutdown: exiting at once"
            );
            std::process::exit(code);
        });
        Ok(shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_is_abandoned_once_shutdown_is_triggered() {
        let shutdown = Shutdown::new();
        assert_eq!(shutdown.unless_triggered(async { 7 }).await, Some(7));
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stopper.trigger();
        });
        let never = std::future::pending::<()>();
        assert_eq!(shutdown.unless_triggered(never).await, None);
        assert!(shutdown.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_first_trigger() {
        let shutdown = Shutdown::new();
        let grace = Duration::from_secs(5);
        shutdown.trigger();
        let deadline = shutdown.deadline(grace);
        tokio::time::advance(Duration::from_secs(2)).await;
        shutdown.trigger();
        assert_eq!(shutdown.deadline(grace), deadline);
        assert_eq!(shutdown.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn what_was_cut_short_is_remembered_in_order() {
        let shutdown = Shutdown::new();
        shutdown.cut_short("outbox relay");
        shutdown.clone().cut_short("telemetry flush");
        assert_eq!(
            shutdown.what_was_cut_short(),
            ["outbox relay", "telemetry flush"]
        );
    }
}
