//! "Order X moved": a process-wide broadcast.
//!
//! WatchOrder streams and PlaceOrder calls that wait for a final state
//! subscribe here instead of polling the database. The code that moves a saga
//! announces the move itself, once its transaction committed ([`OrderUpdates::moved`]).
//! A saga that *ends* also sends `NOTIFY order_status` from its transaction, so
//! that waiters on the other replicas of the order service hear the end too
//! (they catch intermediate moves made elsewhere at their next re-read). One
//! notification per order, not one per move: in PostgreSQL up to 17 a
//! transaction that notified holds a cluster-wide lock across its commit.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

use microcosm_platform::shutdown::Shutdown;

/// Subscribers that fall this far behind skip to the newest notifications (and
/// re-read the order anyway).
const CAPACITY: usize = 4096;

/// The broadcast of moved orders.
#[derive(Debug, Clone)]
pub struct OrderUpdates {
    sender: broadcast::Sender<Uuid>,
}

impl Default for OrderUpdates {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderUpdates {
    /// A broadcast with no listener yet.
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Announces that `order_id` moved (call after the commit).
    pub fn moved(&self, order_id: Uuid) {
        // No subscriber is fine: nobody is watching.
        let _ = self.sender.send(order_id);
    }

    /// Receives the ids of orders that move from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.sender.subscribe()
    }

    /// Listens for `order_status` notifications until shutdown, reconnecting
    /// after a lost connection.
    pub async fn listen(self, pool: PgPool, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let listening = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen("order_status").await?;
                loop {
                    let notification = listener.recv().await?;
                    if let Ok(order_id) = Uuid::parse_str(notification.payload()) {
                        // No subscriber is fine: nobody is watching.
                        let _ = self.sender.send(order_id);
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                result = listening => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "order_status listener lost; reconnecting");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        () = shutdown.triggered() => return,
                    }
                }
                () = shutdown.triggered() => return,
            }
        }
    }
}
