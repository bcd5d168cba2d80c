//! Runtime fault flags: switch a misbehaviour on while the system runs and
//! watch what the saga does about it (docs/scenarios.md lists each flag and the
//! outcome to expect).
//!
//! Flags live in the service's own database (`fault_flags`), so every replica
//! sees them and a service that crashes on purpose remembers, after its restart,
//! how many more crashes it owes. Each process keeps a copy in atomics
//! ([`Faults`]), refreshed on `NOTIFY fault_flags` and by polling, and consults it
//! where the misbehaviour happens: the gRPC layer ([`layer`]), the message
//! handler's wrapper ([`FaultyHandler`]),
//! the health probe, and billing's charge handler.

mod admin;
mod handler;
pub mod layer;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::PgPool;

pub use admin::FaultAdmin;
pub use handler::FaultyHandler;

use crate::shutdown::Shutdown;

/// One switchable misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultFlag {
    /// billing declines this share of charges (reason `payment_declined`).
    DeclineRatePercent,
    /// Every gRPC call and every message handled waits this long first.
    AddedLatencyMs,
    /// Health reports NOT_SERVING, the API answers UNAVAILABLE and no message is handled.
    Unavailable,
    /// This share of handled messages is not acknowledged, so JetStream redelivers them.
    DropAckPercent,
    /// The service crashes (exits at once) on each of its next N messages.
    CrashOnNextMessages,
    /// The next N messages handled lose their replies and their ack after the
    /// commit, as when JetStream acknowledged them and crashed before its disk sync.
    LoseNextReplies,
}

impl FaultFlag {
    /// Every flag.
    pub const ALL: [FaultFlag; 6] = [
        Self::DeclineRatePercent,
        Self::AddedLatencyMs,
        Self::Unavailable,
        Self::DropAckPercent,
        Self::CrashOnNextMessages,
        Self::LoseNextReplies,
    ];

    /// The stored and displayed name.
    pub fn name(self) -> &'static str {
        match self {
            Self::DeclineRatePercent => "decline_rate_percent",
            Self::AddedLatencyMs => "added_latency_ms",
            Self::Unavailable => "unavailable",
            Self::DropAckPercent => "drop_ack_percent",
            Self::CrashOnNextMessages => "crash_on_next_messages",
            Self::LoseNextReplies => "lose_next_replies",
        }
    }

    /// What the flag does.
    pub fn description(self) -> &'static str {
        match self {
            Self::DeclineRatePercent => {
                "billing declines this percentage of charges (orders end payment_declined)"
            }
            Self::AddedLatencyMs => {
                "every gRPC call and every message handled waits this many milliseconds first"
            }
            Self::Unavailable => {
                "1: health NOT_SERVING, the API answers UNAVAILABLE, messages wait unhandled"
            }
            Self::DropAckPercent => {
                "this percentage of handled messages is not acked, so JetStream redelivers them"
            }
            Self::CrashOnNextMessages => {
                "the process exits abruptly on each of its next N messages"
            }
            Self::LoseNextReplies => {
                "the next N messages handled lose their replies and their ack after the commit, \
                 as after a broker crash before its disk sync; the redelivery publishes them again"
            }
        }
    }

    /// The largest value the flag takes.
    pub fn max_value(self) -> u32 {
        match self {
            Self::DeclineRatePercent | Self::DropAckPercent => 100,
            Self::AddedLatencyMs => 60_000,
            Self::Unavailable => 1,
            Self::CrashOnNextMessages | Self::LoseNextReplies => 1_000,
        }
    }

    /// Whether `service` has this flag (only billing takes payments).
    pub fn applies_to(self, service: &str) -> bool {
        self != Self::DeclineRatePercent || service == "billing"
    }

    /// The flag called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|flag| flag.name() == name)
    }

    fn index(self) -> usize {
        match self {
            Self::DeclineRatePercent => 0,
            Self::AddedLatencyMs => 1,
            Self::Unavailable => 2,
            Self::DropAckPercent => 3,
            Self::CrashOnNextMessages => 4,
            Self::LoseNextReplies => 5,
        }
    }
}

/// Exit code of an injected crash, so logs and supervisors can tell it apart.
pub const INJECTED_CRASH_EXIT_CODE: i32 = 86;

/// This process's view of the flags.
#[derive(Debug, Clone)]
pub struct Faults {
    service: &'static str,
    values: Arc<[AtomicU32; 6]>,
}

impl Faults {
    /// All flags off, for `service`.
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            values: Arc::new(Default::default()),
        }
    }

    /// The service these flags belong to.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The current value of `flag`.
    pub fn value(&self, flag: FaultFlag) -> u32 {
        self.values[flag.index()].load(Ordering::Relaxed)
    }

    fn set_local(&self, flag: FaultFlag, value: u32) {
        self.values[flag.index()].store(value, Ordering::Relaxed);
    }

    /// Whether the `unavailable` flag is on.
    pub fn is_unavailable(&self) -> bool {
        self.value(FaultFlag::Unavailable) > 0
    }

    /// The latency to add before each call or message.
    pub fn added_latency(&self) -> Duration {
        Duration::from_millis(u64::from(self.value(FaultFlag::AddedLatencyMs)))
    }

    /// Whether to decline the charge for `order_id`. Decided by the order id, so a
    /// repeated command for one order gets the same answer.
    pub fn should_decline(&self, order_id: uuid::Uuid) -> bool {
        (order_id.as_u128() % 100) < u128::from(self.value(FaultFlag::DeclineRatePercent))
    }

    /// Whether to drop the ack of a message handled for the first time. Only first
    /// deliveries are dropped, so every message is acked at its second delivery.
    pub fn should_drop_ack(&self, stream_sequence: u64, attempt: i64) -> bool {
        let spread = stream_sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        attempt == 1 && spread % 100 < u64::from(self.value(FaultFlag::DropAckPercent))
    }

    /// If a crash is owed, records that it happened and ends the process at once,
    /// without acknowledging the message in hand or shutting down gracefully: the
    /// message is redelivered to the restarted service.
    pub async fn crash_if_owed(&self, pool: &PgPool) {
        if self.value(FaultFlag::CrashOnNextMessages) == 0 {
            return;
        }
        match store::take_one(pool, FaultFlag::CrashOnNextMessages).await {
            Ok(true) => {
                tracing::error!(
                    flag = FaultFlag::CrashOnNextMessages.name(),
                    "injected crash: exiting now"
                );
                std::process::exit(INJECTED_CRASH_EXIT_CODE);
            }
            Ok(false) => self.set_local(FaultFlag::CrashOnNextMessages, 0),
            Err(error) => tracing::warn!(%error, "could not take an injected crash; carrying on"),
        }
    }

    /// Whether the message just handled should lose its replies and its ack;
    /// counts one down if so (shared by every replica through the database).
    pub async fn take_lost_replies(&self, pool: &PgPool) -> bool {
        if self.value(FaultFlag::LoseNextReplies) == 0 {
            return false;
        }
        match store::take_one(pool, FaultFlag::LoseNextReplies).await {
            Ok(true) => true,
            Ok(false) => {
                self.set_local(FaultFlag::LoseNextReplies, 0);
                false
            }
            Err(error) => {
                tracing::warn!(%error, "could not take a lost reply; publishing as usual");
                false
            }
        }
    }

    /// Reads the stored flags into this process's copy.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn refresh(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let stored = store::load_flags(pool).await?;
        for flag in FaultFlag::ALL {
            let value = stored.get(flag.name()).copied().unwrap_or(0);
            let value = if flag.applies_to(self.service) {
                value
            } else {
                0
            };
            let previous = self.values[flag.index()].swap(value, Ordering::Relaxed);
            if previous != value {
                tracing::warn!(flag = flag.name(), value, "fault flag changed");
            }
        }
        Ok(())
    }

    /// Keeps the copy fresh until shutdown: on every `NOTIFY fault_flags`, and at
    /// least once a second in case a notification is lost.
    pub async fn watch(self, pool: PgPool, shutdown: Shutdown) {
        let mut listener = None;
        while !shutdown.is_triggered() {
            // A database that stopped answering must not hold up a shutdown.
            match shutdown.unless_triggered(self.refresh(&pool)).await {
                Some(Ok(())) => {}
                Some(Err(error)) => tracing::debug!(%error, "could not read fault flags"),
                None => return,
            }
            if listener.is_none() {
                let Some(listening) = shutdown.unless_triggered(store::listen(&pool)).await else {
                    return;
                };
                listener = listening.ok();
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listening) => listening.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = notified => if result.is_err() { listener = None },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.triggered() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_through_their_names_and_decline_applies_to_billing_only() {
        for flag in FaultFlag::ALL {
            assert_eq!(FaultFlag::from_name(flag.name()), Some(flag));
        }
        assert!(FaultFlag::DeclineRatePercent.applies_to("billing"));
        assert!(!FaultFlag::DeclineRatePercent.applies_to("inventory"));
        assert!(FaultFlag::Unavailable.applies_to("order"));
    }

    #[test]
    fn percentages_decide_the_share_and_drop_only_first_deliveries() {
        let faults = Faults::new("billing");
        faults.set_local(FaultFlag::DeclineRatePercent, 100);
        assert!(faults.should_decline(uuid::Uuid::now_v7()));
        faults.set_local(FaultFlag::DeclineRatePercent, 0);
        assert!(!faults.should_decline(uuid::Uuid::now_v7()));

        faults.set_local(FaultFlag::DropAckPercent, 100);
        assert!(faults.should_drop_ack(7, 1));
        assert!(
            !faults.should_drop_ack(7, 2),
            "a redelivery is always acked"
        );
        faults.set_local(FaultFlag::DropAckPercent, 30);
        let dropped = (0..10_000)
            .filter(|sequence| faults.should_drop_ack(*sequence, 1))
            .count();
        assert!((2_500..3_500).contains(&dropped), "about 30%: {dropped}");
    }
}
