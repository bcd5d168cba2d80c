//! The fault flags on the message path, as a wrapper around a service's
//! message handler (what [`super::layer::FaultLayer`] is for gRPC): the consumer
//! loop itself knows nothing of them.

use std::time::Duration;

use microcosm_messaging::consumer::{
    AfterHandling, Delivery, Handled, HandlingError, MessageHandler,
};
use sqlx::PgPool;

use super::Faults;
use crate::shutdown::Shutdown;

/// Wraps `H`, misbehaving as the service's fault flags say: while `unavailable`,
/// holds each message unhandled (extending its ack deadline); waits
/// `added_latency_ms` first; exits on an owed crash (`crash_on_next_messages`)
/// before handling; and after handling, leaves the ack out
/// (`drop_ack_percent`) or loses the replies and the ack (`lose_next_replies`).
#[derive(Debug, Clone)]
pub struct FaultyHandler<H> {
    inner: H,
    faults: Faults,
    pool: PgPool,
    shutdown: Shutdown,
}

impl<H> FaultyHandler<H> {
    /// `inner`, under the flags in `faults` (counted ones are taken from `pool`).
    pub fn new(inner: H, faults: Faults, pool: PgPool, shutdown: Shutdown) -> Self {
        Self {
            inner,
            faults,
            pool,
            shutdown,
        }
    }
}

/// How often a held message's ack deadline is extended at most.
const HOLD_TICK: Duration = Duration::from_millis(500);

impl<H: MessageHandler> MessageHandler for FaultyHandler<H> {
    async fn handle(&self, delivery: &Delivery) -> Result<Handled, HandlingError> {
        while self.faults.is_unavailable() {
            delivery.extend_ack_deadline().await;
            tokio::select! {
                () = tokio::time::sleep(HOLD_TICK) => {}
                // Shutting down: unacknowledged, so redelivered to whoever runs next.
                () = self.shutdown.triggered() => return Ok(Handled {
                    dispatch: Vec::new(),
                    after: AfterHandling::PublishWithoutAck,
                }),
            }
        }
        let latency = self.faults.added_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.faults.crash_if_owed(&self.pool).await;
        let mut handled = self.inner.handle(delivery).await?;
        if self.faults.take_lost_replies(&self.pool).await {
            handled.after = AfterHandling::LoseRepliesUnacked;
        } else if self
            .faults
            .should_drop_ack(delivery.stream_sequence.unwrap_or(0), delivery.attempt)
        {
            tracing::warn!(consumer = delivery.consumer, subject = %delivery.subject, "dropping the ack (fault flag drop_ack_percent); JetStream will redeliver");
            handled.after = AfterHandling::PublishWithoutAck;
        }
        Ok(handled)
    }
}
