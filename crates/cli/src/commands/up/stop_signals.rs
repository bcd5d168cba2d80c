//! Ctrl-C (SIGINT) and SIGTERM, the two ways to ask `microcosm up` to stop.
//!
//! Both are caught from the very start, before anything is spawned: left to their
//! default action they would kill `up` at once, and the kernel would then SIGKILL
//! every server it started (the test kit's parent-death signal) instead of letting
//! PostgreSQL and NATS close their data cleanly. The children run in process groups
//! of their own, so a Ctrl-C in the terminal reaches `up` only, and `up` decides the
//! order in which they stop.

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Listens for SIGINT and SIGTERM from the moment it is installed.
#[derive(Debug)]
pub(crate) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Installs the handlers: from now on neither signal kills the process.
    pub(crate) fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("could not catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("could not catch SIGTERM")?,
        })
    }

    /// Waits for the next stop request and says which it was ("Ctrl-C" or "SIGTERM").
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
