//! Graceful shutdown as one small type handed to every task.
//!
//! A [`Shutdown`] is a cancellation token: the signal handler (or a test) cancels
//! it once, and every task that holds a clone sees it and finishes its current
//! work before it returns. The gRPC server stops accepting connections and lets
//! in-flight calls end; background loops stop between iterations.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// A shared "please stop" flag.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A flag that nothing has raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether stopping has been asked for.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once stopping has been asked for.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// A flag that is raised on the first SIGTERM or SIGINT.
    ///
    /// # Errors
    /// If the signal handlers cannot be installed.
    pub fn on_signals() -> std::io::Result<Self> {
        let shutdown = Self::new();
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let flag = shutdown.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                "shutdown requested; finishing in-flight work"
            );
            flag.trigger();
        });
        Ok(shutdown)
    }
}
