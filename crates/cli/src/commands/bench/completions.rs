//! When each order ends: the order service's domain events, matched to the
//! moment the bench placed the order.
//!
//! PlaceOrder with `wait_ms = 0` answers as soon as the order is stored, PENDING;
//! the saga then runs through inventory and billing. The order service announces
//! the end on `order.evt.confirmed` or `order.evt.cancelled`, so the bench
//! listens there with a plain core NATS subscription, as any downstream consumer
//! would, instead of polling the order service and adding load to what it
//! measures. The event can even overtake the PlaceOrder answer on a busy machine,
//! so the tracker accepts the two in either order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt as _;
use microcosm_messaging::envelope;
use microcosm_proto::messaging::envelope::Body;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::latency::{LatencyRecorder, LatencySummary};

/// The subjects on which the order service announces that an order ended.
const ORDER_END_SUBJECTS: [&str; 2] = ["order.evt.confirmed", "order.evt.cancelled"];

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stock committed and payment captured.
    Confirmed,
    /// Stopped, with everything undone.
    Cancelled,
}

/// Orders placed and not yet ended, and what is known about those that ended.
#[derive(Debug)]
pub(crate) struct CompletionTracker {
    /// Ends at or before this instant count towards the completed rate.
    window_end: Instant,
    state: Mutex<TrackerState>,
}

#[derive(Debug)]
struct TrackerState {
    /// Placed orders whose end has not been seen: when each was placed, and who
    /// wants to hear of its end.
    waiting: HashMap<String, Waiting>,
    /// Ends seen before their order's PlaceOrder answer.
    ended_early: HashMap<String, (Outcome, Instant)>,
    place_to_end: LatencyRecorder,
    confirmed: u64,
    cancelled: u64,
    ended_in_window: u64,
}

#[derive(Debug)]
struct Waiting {
    placed_at: Instant,
    notify: Option<oneshot::Sender<Outcome>>,
}

/// What the tracker saw, at the end of a run.
#[derive(Debug, Clone)]
pub(crate) struct CompletionCounts {
    /// Orders that ended CONFIRMED.
    pub(crate) confirmed: u64,
    /// Orders that ended CANCELLED.
    pub(crate) cancelled: u64,
    /// Orders that ended within the load window (for the completed rate).
    pub(crate) ended_in_window: u64,
    /// Placed orders whose end was never seen.
    pub(crate) unfinished: u64,
    /// From the start of PlaceOrder to the end event.
    pub(crate) place_to_end: LatencySummary,
}

impl CompletionTracker {
    /// An empty tracker for a load whose window closes at `window_end`.
    pub(crate) fn new(window_end: Instant) -> anyhow::Result<Self> {
        Ok(Self {
            window_end,
            state: Mutex::new(TrackerState {
                waiting: HashMap::new(),
                ended_early: HashMap::new(),
                place_to_end: LatencyRecorder::new()?,
                confirmed: 0,
                cancelled: 0,
                ended_in_window: 0,
            }),
        })
    }

    /// Notes that order `order_id` was placed at `placed_at` (when its PlaceOrder
    /// started, or was due to start); the receiver hears how it ends.
    pub(crate) fn placed(
        &self,
        order_id: String,
        placed_at: Instant,
    ) -> oneshot::Receiver<Outcome> {
        let (notify, ended) = oneshot::channel();
        let mut state = self.lock();
        match state.ended_early.remove(&order_id) {
            Some((outcome, ended_at)) => {
                state.count_end(outcome, placed_at, ended_at, self.window_end);
                // The receiver is ours and alive: sending cannot fail.
                let _ = notify.send(outcome);
            }
            None => {
                let waiting = Waiting {
                    placed_at,
                    notify: Some(notify),
                };
                state.waiting.insert(order_id, waiting);
            }
        }
        ended
    }

    /// Notes that order `order_id` ended with `outcome` at `ended_at`.
    pub(crate) fn ended(&self, order_id: String, outcome: Outcome, ended_at: Instant) {
        let mut state = self.lock();
        match state.waiting.remove(&order_id) {
            Some(mut waiting) => {
                state.count_end(outcome, waiting.placed_at, ended_at, self.window_end);
                if let Some(notify) = waiting.notify.take() {
                    // The client may have given up waiting; that is fine.
                    let _ = notify.send(outcome);
                }
            }
            None => {
                // Either its PlaceOrder answer is still on the way, or this is a
                // second copy of an event already counted (the outbox publishes
                // at least once); a copy stays here unmatched and harmless.
                state.ended_early.insert(order_id, (outcome, ended_at));
            }
        }
    }

    /// Orders placed whose end has not been seen yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Orders that ended so far, confirmed or cancelled.
    pub(crate) fn ended_so_far(&self) -> u64 {
        let state = self.lock();
        state.confirmed + state.cancelled
    }

    /// The counts and the place→end latencies.
    pub(crate) fn counts(&self) -> CompletionCounts {
        let state = self.lock();
        CompletionCounts {
            confirmed: state.confirmed,
            cancelled: state.cancelled,
            ended_in_window: state.ended_in_window,
            unfinished: state.waiting.len() as u64,
            place_to_end: state.place_to_end.summary(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TrackerState {
    fn count_end(
        &mut self,
        outcome: Outcome,
        placed_at: Instant,
        ended_at: Instant,
        window_end: Instant,
    ) {
        self.place_to_end
            .record(ended_at.saturating_duration_since(placed_at));
        match outcome {
            Outcome::Confirmed => self.confirmed += 1,
            Outcome::Cancelled => self.cancelled += 1,
        }
        if ended_at <= window_end {
            self.ended_in_window += 1;
        }
    }
}

/// The order service's order-end events, subscribed to and not yet read.
#[derive(Debug)]
pub(crate) struct OrderEnds {
    events: futures::stream::SelectAll<async_nats::Subscriber>,
}

impl OrderEnds {
    /// Subscribes to the order-end subjects. The server has confirmed the
    /// subscriptions when this returns, so no end of an order placed afterwards
    /// is missed; events wait in the subscription until [`feed`](Self::feed).
    pub(crate) async fn subscribe(nats: &async_nats::Client) -> anyhow::Result<Self> {
        let mut subscriptions = Vec::new();
        for subject in ORDER_END_SUBJECTS {
            let subscription = nats
                .subscribe(subject)
                .await
                .with_context(|| format!("could not subscribe to {subject}"))?;
            subscriptions.push(subscription);
        }
        nats.flush()
            .await
            .context("NATS did not confirm the subscriptions")?;
        Ok(Self {
            events: futures::stream::select_all(subscriptions),
        })
    }

    /// Feeds every end to `tracker`, in the background, until the returned task
    /// is aborted.
    pub(crate) fn feed(mut self, tracker: Arc<CompletionTracker>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(message) = self.events.next().await {
                let ended_at = Instant::now();
                if let Some((order_id, outcome)) = order_end(&message.payload) {
                    tracker.ended(order_id, outcome, ended_at);
                }
            }
        })
    }
}

/// The order and outcome an end event announces; `None` for anything else.
fn order_end(payload: &[u8]) -> Option<(String, Outcome)> {
    match envelope::decode(payload).ok()?.body {
        Body::OrderConfirmed(event) => Some((event.order_id, Outcome::Confirmed)),
        Body::OrderCancelled(event) => Some((event.order_id, Outcome::Cancelled)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_end_is_matched_to_its_order_whichever_arrives_first() {
        let start = Instant::now();
        let tracker = CompletionTracker::new(start + Duration::from_secs(60)).expect("tracker");

        let first = tracker.placed("first".into(), start);
        tracker.ended("first".into(), Outcome::Confirmed, Instant::now());
        assert_eq!(first.await.expect("notified"), Outcome::Confirmed);

        tracker.ended("second".into(), Outcome::Cancelled, Instant::now());
        let second = tracker.placed("second".into(), start);
        assert_eq!(second.await.expect("notified"), Outcome::Cancelled);

        let _third = tracker.placed("third".into(), start);
        let counts = tracker.counts();
        assert_eq!((counts.confirmed, counts.cancelled), (1, 1));
        assert_eq!((counts.ended_in_window, counts.unfinished), (2, 1));
        assert_eq!(counts.place_to_end.count, 2);
    }
}
