//! Following an order until it is final: WatchOrder, and PlaceOrder's wait.
//!
//! Both subscribe to the order updates (`saga::updates`) *before* reading the order, so a
//! transition that commits between the read and the wait is never missed, and
//! both re-read at least once a second in case a notification was lost.

use std::time::Duration;

use microcosm_proto::order as pb;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tonic::Status;
use uuid::Uuid;

use super::ApiError;
use super::encode::encode_order;
use crate::db::{orders, sagas};
use crate::domain::{Order, OrderId, OrderStatus};

/// How often a waiter re-reads the order even without a notification.
const RECHECK: Duration = Duration::from_secs(1);

/// The order and its saga history.
pub(super) async fn read_order(
    pool: &PgPool,
    order_id: OrderId,
) -> Result<(Order, Vec<sagas::HistoryEntry>), ApiError> {
    let order = orders::get_order(pool, order_id)
        .await?
        .ok_or(ApiError::UnknownOrder(order_id))?;
    let history = sagas::saga_history(pool, order_id.as_uuid()).await?;
    Ok((order, history))
}

/// Waits up to `wait` for the order to be CONFIRMED or CANCELLED, starting from
/// `current` (the order as last read or written) and re-reading it whenever
/// `moves` (subscribed before `current` was read) says it moved; returns it as
/// it is then, final or not.
pub(super) async fn wait_until_final(
    pool: &PgPool,
    mut moves: broadcast::Receiver<Uuid>,
    current: (Order, Vec<sagas::HistoryEntry>),
    wait: Duration,
) -> Result<(Order, Vec<sagas::HistoryEntry>), ApiError> {
    let deadline = Instant::now() + wait;
    let order_id = current.0.order_id;
    let mut current = current;
    loop {
        let now = Instant::now();
        if current.0.status != OrderStatus::Pending || now >= deadline {
            return Ok(current);
        }
        let _ = tokio::time::timeout(
            (deadline - now).min(RECHECK),
            next_move_of(&mut moves, order_id.as_uuid()),
        )
        .await;
        current = read_order(pool, order_id).await?;
    }
}

/// Streams the order each time its saga moves, until it is final or the client
/// goes away. The first update is `initial`, the order as it was read when the
/// watch began (after subscribing to `moves`, so no later move is missed).
pub(super) fn watch(
    pool: PgPool,
    mut moves: broadcast::Receiver<Uuid>,
    initial: (Order, Vec<sagas::HistoryEntry>),
) -> mpsc::Receiver<Result<pb::WatchOrderResponse, Status>> {
    let (sender, receiver) = mpsc::channel(16);
    let order_id = initial.0.order_id;
    tokio::spawn(async move {
        let mut sent_transitions = None;
        let mut next = Some(initial);
        loop {
            let (order, history) = match next.take() {
                Some(read) => read,
                None => match read_order(&pool, order_id).await {
                    Ok(read) => read,
                    Err(error) => {
                        let _ = sender.send(Err(error.into())).await;
                        return;
                    }
                },
            };
            let finished = order.status != OrderStatus::Pending;
            // The order and its history are read one after the other, so a
            // transition can show in one before the other: send whenever either
            // moved, and always the final state.
            let seen = (history.len(), order.status, order.saga_state.clone());
            if sent_transitions.as_ref() != Some(&seen) {
                sent_transitions = Some(seen);
                let update = pb::WatchOrderResponse {
                    order: Some(encode_order(order, history)),
                };
                if sender.send(Ok(update)).await.is_err() {
                    return; // the client went away
                }
            }
            if finished {
                return;
            }
            tokio::select! {
                _ = tokio::time::timeout(RECHECK, next_move_of(&mut moves, order_id.as_uuid())) => {}
                () = sender.closed() => return,
            }
        }
    });
    receiver
}

/// Completes when `order_id` moves (or notifications were missed and the order
/// should be re-read anyway).
async fn next_move_of(moved: &mut broadcast::Receiver<Uuid>, order_id: Uuid) {
    loop {
        match moved.recv().await {
            Ok(id) if id == order_id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
