//! The load on the saga: orders placed over gRPC, their ends heard on NATS.
//!
//! Two shapes, because they answer different questions:
//!
//! - **Closed loop** (`--mode max`): N clients each place an order, wait until it
//!   has ended, and place the next. N sagas are always in flight, so the
//!   completed rate is the system's capacity at that concurrency. A client does
//!   not stop at PlaceOrder's answer: with `wait_ms = 0` that answer only means
//!   "stored", and a client that raced on would pile up a backlog of sagas
//!   without bound and measure the order table's insert rate, not the saga's.
//! - **Open loop** (`--mode rate`): orders start at fixed intervals whatever
//!   happens to earlier ones, as independent customers do. Each latency is
//!   measured from when the order was *due*, not from when a busy client got
//!   round to sending it, so time spent queueing counts (no coordinated
//!   omission: a stall shows up in the tail instead of silently thinning the
//!   samples).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{OrderLineRequest, PlaceOrderRequest};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::completions::{CompletionCounts, CompletionTracker, OrderEnds, Outcome};
use super::latency::{LatencyRecorder, LatencySummary};
use super::progress::{LoadFigures, ProgressTicker};
use super::workload::{BenchOrder, OrderGenerator};

/// Longest a PlaceOrder call may take before it counts as failed.
const PLACE_ORDER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a closed-loop client waits for its order's end before placing the
/// next one anyway (the order then counts as unfinished unless it ends later).
/// Past the saga's own deadlines: three 10 s step attempts and a compensation.
const END_WAIT: Duration = Duration::from_secs(60);
/// Longest the bench waits after the window for orders still in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the drain looks at what is still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// Pause after a failed call, so a broken service is not hammered in a hot loop.
const FAILURE_BACKOFF: Duration = Duration::from_millis(50);
/// Open loop: most PlaceOrder calls in flight at once. Beyond this the scheduler
/// waits, and the wait is counted in the latencies of the late orders.
const MAX_OUTSTANDING_CALLS: usize = 2_048;

/// How orders are offered to the saga.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LoadShape {
    /// `clients` clients, each placing its next order when the previous ended.
    ClosedLoop {
        /// Concurrent clients, so sagas in flight.
        clients: usize,
    },
    /// One order every `1 / per_second` seconds.
    OpenLoop {
        /// Orders started per second.
        per_second: f64,
    },
}

/// What one load on the saga achieved.
#[derive(Debug, Clone)]
pub(crate) struct SagaLoadResult {
    /// How the orders were offered.
    pub(crate) shape: LoadShape,
    /// How long orders were being placed.
    pub(crate) window: Duration,
    /// PlaceOrder calls answered with an order.
    pub(crate) placed: u64,
    /// PlaceOrder calls that failed.
    pub(crate) failed: u64,
    /// The first failure's gRPC status, to say why.
    pub(crate) first_failure: Option<String>,
    /// How long PlaceOrder took to answer (PENDING).
    pub(crate) ack: LatencySummary,
    /// How the placed orders ended, and how long that took.
    pub(crate) ends: CompletionCounts,
}

impl SagaLoadResult {
    /// Orders placed per second of the window.
    pub(crate) fn placed_per_second(&self) -> f64 {
        self.placed as f64 / self.window.as_secs_f64()
    }

    /// Orders that reached their end within the window, per second of it.
    pub(crate) fn completed_per_second(&self) -> f64 {
        self.ends.ended_in_window as f64 / self.window.as_secs_f64()
    }
}

/// Everything the clients of one load share.
#[derive(Debug)]
struct LoadContext {
    client: OrderServiceClient<Channel>,
    tracker: Arc<CompletionTracker>,
    start: Instant,
    window_end: Instant,
    next_key: AtomicU64,
    placed: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl LoadContext {
    /// Places `order` and, if the call succeeds, records its acknowledgement
    /// latency from `due` and registers it with the tracker.
    async fn place(
        &self,
        order: &BenchOrder,
        due: Instant,
        ack: &Mutex<LatencyRecorder>,
    ) -> Option<oneshot::Receiver<Outcome>> {
        let key = format!("bench-{}", self.next_key.fetch_add(1, Ordering::Relaxed));
        let mut request = tonic::Request::new(PlaceOrderRequest {
            customer_id: order.customer_id.clone(),
            lines: order
                .lines
                .iter()
                .map(|line| OrderLineRequest {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
            idempotency_key: key,
            wait_ms: 0,
        });
        request.set_timeout(PLACE_ORDER_TIMEOUT);
        let answer = self.client.clone().place_order(request).await;
        let acknowledged = Instant::now();
        match answer.map(|response| response.into_inner().order) {
            Ok(Some(placed)) => {
                ack.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(acknowledged.saturating_duration_since(due));
                self.placed.fetch_add(1, Ordering::Relaxed);
                Some(self.tracker.placed(placed.order_id, due))
            }
            Ok(None) => {
                self.fail("PlaceOrder answered without an order".to_owned());
                None
            }
            Err(status) => {
                self.fail(format!("{:?}: {}", status.code(), status.message()));
                None
            }
        }
    }

    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
    }

    fn figures(&self) -> LoadFigures {
        LoadFigures {
            placed: self.placed.load(Ordering::Relaxed),
            completed: self.tracker.ended_so_far(),
            in_flight: self.tracker.in_flight() as u64,
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Offers orders to the order service at `order_channel` in `shape` for
/// `duration`, then waits (bounded) for the orders still in flight, and reports.
pub(crate) async fn run_saga_load(
    order_channel: Channel,
    nats: async_nats::Client,
    shape: LoadShape,
    duration: Duration,
) -> anyhow::Result<SagaLoadResult> {
    let order_ends = OrderEnds::subscribe(&nats).await?;
    let start = Instant::now();
    let window_end = start + duration;
    let tracker = Arc::new(CompletionTracker::new(window_end)?);
    let follower = order_ends.feed(Arc::clone(&tracker));
    let context = Arc::new(LoadContext {
        client: OrderServiceClient::new(order_channel),
        tracker: Arc::clone(&tracker),
        start,
        window_end,
        next_key: AtomicU64::new(0),
        placed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_failure: Mutex::new(None),
    });
    let progress = ProgressTicker::start("saga", start, duration, {
        let context = Arc::clone(&context);
        move || context.figures()
    });
    let ack = Arc::new(Mutex::new(LatencyRecorder::new()?));
    let offered = match shape {
        LoadShape::ClosedLoop { clients } => {
            run_closed_loop(&context, clients, Arc::clone(&ack)).await
        }
        LoadShape::OpenLoop { per_second } => {
            run_open_loop(&context, per_second, Arc::clone(&ack)).await
        }
    };
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while tracker.in_flight() > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    progress.stop().await;
    follower.abort();
    offered?;
    let ack = ack.lock().unwrap_or_else(PoisonError::into_inner).summary();
    let first_failure = context
        .first_failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(SagaLoadResult {
        shape,
        window: duration,
        placed: context.placed.load(Ordering::Relaxed),
        failed: context.failed.load(Ordering::Relaxed),
        first_failure,
        ack,
        ends: tracker.counts(),
    })
}

/// `clients` tasks, each placing an order, waiting for its end, and repeating
/// until the window closes.
async fn run_closed_loop(
    context: &Arc<LoadContext>,
    clients: usize,
    ack: Arc<Mutex<LatencyRecorder>>,
) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let context = Arc::clone(context);
        let ack = Arc::clone(&ack);
        let mut orders = OrderGenerator::new(client as u64);
        tasks.spawn(async move {
            while Instant::now() < context.window_end {
                let order = orders.next_order();
                match context.place(&order, Instant::now(), &ack).await {
                    Some(ended) => {
                        // Bounded: an order that never ends is reported as unfinished.
                        let _ = tokio::time::timeout(END_WAIT, ended).await;
                    }
                    None => tokio::time::sleep(FAILURE_BACKOFF).await,
                }
            }
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished.context("a load client panicked")?;
    }
    Ok(())
}

/// One order due every `1 / per_second` seconds from the window's start, each
/// on its own task, until the window closes.
async fn run_open_loop(
    context: &Arc<LoadContext>,
    per_second: f64,
    ack: Arc<Mutex<LatencyRecorder>>,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let permits = Arc::new(Semaphore::new(MAX_OUTSTANDING_CALLS));
    let mut orders = OrderGenerator::new(0);
    let mut calls = JoinSet::new();
    for sequence in 0_u64.. {
        // Computed from the start, not by adding up intervals: no drift.
        let due = context.start + interval.mul_f64(sequence as f64);
        if due >= context.window_end {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .context("the call limit was closed")?;
        let order = orders.next_order();
        let context = Arc::clone(context);
        let ack = Arc::clone(&ack);
        calls.spawn(async move {
            let _permit = permit;
            // Nobody waits for the end here: the tracker times it all the same.
            let _ended = context.place(&order, due, &ack).await;
        });
        while let Some(finished) = calls.try_join_next() {
            finished.context("a PlaceOrder task panicked")?;
        }
    }
    while let Some(finished) = calls.join_next().await {
        finished.context("a PlaceOrder task panicked")?;
    }
    Ok(())
}
