//! The orders a chaos run places, and the client that places them the way a
//! careful client must when the service under it may die: every call has a
//! deadline, and a call that failed in transit is sent again with the same
//! idempotency key, which can never create a second order.
//!
//! The mix is mostly orders that should confirm, plus a share of each way an
//! order can end otherwise, so that the table shows compensation under fire
//! too: a customer who cannot pay, a customer with no account, a product that
//! sells out, and customers who cancel right after placing. A share of the
//! orders is also re-sent after it was accepted, as a client that never saw
//! the answer would: the service must return the first order, never a second.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use microcosm_proto::billing::DepositRequest;
use microcosm_proto::billing::billing_service_client::BillingServiceClient;
use microcosm_proto::inventory::RestockProductRequest;
use microcosm_proto::inventory::inventory_service_client::InventoryServiceClient;
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_proto::order::{CancelOrderRequest, OrderLineRequest, PlaceOrderRequest};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Well-stocked demo products the ordinary orders buy (restocked before the run).
const EVERYDAY_SKUS: [&str; 6] = [
    "USB-C-1M", "MOUSE-01", "STAND-01", "LAMP-01", "CAM-HD", "KB-01",
];
/// The demo product with one unit: every order for it after the first is out of stock.
const SCARCE_SKU: &str = "LAST-ONE";
/// The demo customer with 5.00 on her account: her orders are declined.
const BROKE_CUSTOMER: &str = "carol";
/// A customer id with no account: billing declines it as unknown.
const UNKNOWN_CUSTOMER: &str = "chaos-nobody";
/// Customers funded before the run for the ordinary orders.
const FUNDED_CUSTOMERS: [&str; 2] = ["alice", "bob"];
/// Minor units deposited per order on each funded customer's account: more than
/// the average order (two lines of two of the dearest product cost 356.00, the
/// average order about 100.00).
const FUNDS_PER_ORDER_MINOR: i64 = 12_000;
/// The largest single deposit billing accepts.
const MAX_DEPOSIT_MINOR: i64 = 100_000_000;
/// The largest single restock inventory accepts.
const MAX_RESTOCK: i64 = 1_000_000;

/// How long one call may take before it counts as failed in transit.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two attempts of one call.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long a client keeps retrying one order before it gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

/// Why an order is in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    /// A funded customer buying stocked products: should confirm.
    Ordinary,
    /// Declined: insufficient funds.
    Broke,
    /// Declined: no account.
    Unknown,
    /// Out of stock (all but possibly the first).
    Scarce,
    /// Cancelled by the customer right after placing (or confirmed, if the saga won).
    Cancelled,
}

/// One order of the run.
#[derive(Clone, Debug)]
pub(crate) struct ChaosOrder {
    /// Its idempotency key, unique in the run.
    pub(crate) key: String,
    pub(crate) intent: Intent,
    /// Whether the client sends it again after it was accepted.
    pub(crate) resend: bool,
    customer_id: String,
    lines: Vec<(String, i32)>,
}

/// The run's orders, decided by the seed alone, so that a run can be replayed.
/// Their idempotency keys are `<prefix>-<seed>-<number>`.
pub(crate) fn orders(count: usize, seed: u64, prefix: &str) -> Vec<ChaosOrder> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|number| {
            let roll = rng.random_range(0..100);
            let intent = match roll {
                0..3 => Intent::Broke,
                3..5 => Intent::Unknown,
                5..7 => Intent::Scarce,
                7..10 => Intent::Cancelled,
                _ => Intent::Ordinary,
            };
            let (customer_id, lines) = match intent {
                Intent::Broke => (BROKE_CUSTOMER.to_owned(), vec![("KB-01".to_owned(), 1)]),
                Intent::Unknown => (
                    UNKNOWN_CUSTOMER.to_owned(),
                    vec![("MOUSE-01".to_owned(), 1)],
                ),
                Intent::Scarce => (
                    FUNDED_CUSTOMERS[number % 2].to_owned(),
                    vec![(SCARCE_SKU.to_owned(), 1)],
                ),
                Intent::Ordinary | Intent::Cancelled => {
                    let first = rng.random_range(0..EVERYDAY_SKUS.len());
                    let mut lines =
                        vec![(EVERYDAY_SKUS[first].to_owned(), rng.random_range(1..=2))];
                    if rng.random_bool(0.5) {
                        let second = (first + rng.random_range(1..EVERYDAY_SKUS.len()))
                            % EVERYDAY_SKUS.len();
                        lines.push((EVERYDAY_SKUS[second].to_owned(), rng.random_range(1..=2)));
                    }
                    (FUNDED_CUSTOMERS[number % 2].to_owned(), lines)
                }
            };
            ChaosOrder {
                key: format!("{prefix}-{seed}-{number}"),
                intent,
                resend: rng.random_bool(0.05),
                customer_id,
                lines,
            }
        })
        .collect()
}

/// Restocks the everyday products and funds the paying customers for `orders`
/// orders, through the services' public APIs (so the ledger explains every cent).
pub(crate) async fn provision(
    inventory: Channel,
    billing: Channel,
    orders: usize,
) -> anyhow::Result<()> {
    let mut inventory = InventoryServiceClient::new(inventory);
    let units = i64::try_from(orders).unwrap_or(i64::MAX).saturating_mul(2);
    for sku in EVERYDAY_SKUS {
        for quantity in chunks(units, MAX_RESTOCK) {
            inventory
                .restock_product(RestockProductRequest {
                    sku: sku.to_owned(),
                    quantity,
                })
                .await
                .with_context(|| format!("could not restock {sku}"))?;
        }
    }
    let mut billing = BillingServiceClient::new(billing);
    let funds = i64::try_from(orders)
        .unwrap_or(i64::MAX)
        .saturating_mul(FUNDS_PER_ORDER_MINOR);
    for customer_id in FUNDED_CUSTOMERS {
        for amount_minor in chunks(funds, MAX_DEPOSIT_MINOR) {
            billing
                .deposit(DepositRequest {
                    customer_id: customer_id.to_owned(),
                    amount_minor,
                })
                .await
                .with_context(|| format!("could not fund {customer_id}"))?;
        }
    }
    Ok(())
}

/// `total` split into parts of at most `largest`.
fn chunks(total: i64, largest: i64) -> Vec<i64> {
    let mut parts = Vec::new();
    let mut left = total.max(1);
    while left > 0 {
        let part = left.min(largest);
        parts.push(part);
        left -= part;
    }
    parts
}

/// What the clients did, counted while they run (the progress bar reads it).
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    /// Orders accepted (PlaceOrder answered OK).
    pub(crate) placed: AtomicU64,
    /// Calls sent again after failing in transit.
    pub(crate) retries: AtomicU64,
    /// Orders given up on after [`GIVE_UP_AFTER`] of failures.
    pub(crate) not_placed: AtomicU64,
    /// Orders re-sent after they were accepted.
    pub(crate) resent: AtomicU64,
    /// Re-sent orders answered with a different order than the first: a double.
    pub(crate) doubled: AtomicU64,
    /// CancelOrder calls that were accepted.
    pub(crate) cancels: AtomicU64,
    /// The accepted orders: idempotency key to order id.
    accepted: Mutex<BTreeMap<String, String>>,
}

impl ClientCounters {
    /// The accepted orders so far: idempotency key to order id.
    pub(crate) fn accepted(&self) -> BTreeMap<String, String> {
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Places `orders` at `per_second` (pausing while every client is busy retrying),
/// with at most `concurrency` calls in flight.
pub(crate) async fn place_all(
    channel: Channel,
    orders: Vec<ChaosOrder>,
    per_second: f64,
    concurrency: usize,
    counters: &ClientCounters,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let paced = futures::stream::unfold(
        (orders.into_iter(), ticker),
        |(mut orders, mut ticker)| async move {
            let order = orders.next()?;
            ticker.tick().await;
            Some((order, (orders, ticker)))
        },
    );
    paced
        .map(|order| {
            let client = OrderServiceClient::new(channel.clone());
            async move { place_one(client, order, counters).await }
        })
        .buffer_unordered(concurrency)
        .collect::<()>()
        .await;
}

async fn place_one(
    client: OrderServiceClient<Channel>,
    order: ChaosOrder,
    counters: &ClientCounters,
) {
    let request = PlaceOrderRequest {
        customer_id: order.customer_id.clone(),
        lines: order
            .lines
            .iter()
            .map(|(sku, quantity)| OrderLineRequest {
                sku: sku.clone(),
                quantity: *quantity,
            })
            .collect(),
        idempotency_key: order.key.clone(),
        wait_ms: 0,
    };
    let place = |mut client: OrderServiceClient<Channel>| {
        let request = request.clone();
        async move {
            let response = client.place_order(with_timeout(request)).await?;
            response
                .into_inner()
                .order
                .map(|placed| placed.order_id)
                .ok_or_else(|| Status::internal("PlaceOrder answered without an order"))
        }
    };
    let Some(order_id) = retrying(counters, || place(client.clone())).await else {
        ClientCounters::count(&counters.not_placed);
        return;
    };
    ClientCounters::count(&counters.placed);
    counters
        .accepted
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(order.key.clone(), order_id.clone());

    if order.resend {
        ClientCounters::count(&counters.resent);
        if let Some(again) = retrying(counters, || place(client.clone())).await
            && again != order_id
        {
            ClientCounters::count(&counters.doubled);
        }
    }
    if order.intent == Intent::Cancelled {
        let cancelled = retrying(counters, || {
            let mut client = client.clone();
            let order_id = order_id.clone();
            async move {
                match client
                    .cancel_order(with_timeout(CancelOrderRequest { order_id }))
                    .await
                {
                    Ok(_) => Ok(true),
                    // Too late: the saga confirmed it first. That is an answer too.
                    Err(status) if status.code() == Code::FailedPrecondition => Ok(false),
                    Err(status) => Err(status),
                }
            }
        })
        .await;
        if cancelled == Some(true) {
            ClientCounters::count(&counters.cancels);
        }
    }
}

fn with_timeout<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Whether a failed call may have failed in transit (the service died, restarted,
/// or was too slow), so that sending it again is right.
fn failed_in_transit(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::Aborted
    )
}

/// Calls `call` until it succeeds, retrying failures in transit for up to
/// [`GIVE_UP_AFTER`]; `None` if it never succeeded or failed for another reason
/// (logged, since a chaos run should never see one).
async fn retrying<T, F, Fut>(counters: &ClientCounters, mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let give_up = tokio::time::Instant::now() + GIVE_UP_AFTER;
    loop {
        match call().await {
            Ok(value) => return Some(value),
            Err(status) if failed_in_transit(&status) && tokio::time::Instant::now() < give_up => {
                ClientCounters::count(&counters.retries);
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(status) => {
                eprintln!("chaos: a call failed for good: {status}");
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_alone_decides_the_orders() {
        let first: Vec<_> = orders(500, 7, "t")
            .into_iter()
            .map(|o| (o.key, o.lines))
            .collect();
        let again: Vec<_> = orders(500, 7, "t")
            .into_iter()
            .map(|o| (o.key, o.lines))
            .collect();
        let other: Vec<_> = orders(500, 8, "t")
            .into_iter()
            .map(|o| (o.key, o.lines))
            .collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn the_mix_holds_every_way_an_order_can_end_and_keys_are_unique() {
        let orders = orders(2_000, 42, "t");
        for intent in [
            Intent::Ordinary,
            Intent::Broke,
            Intent::Unknown,
            Intent::Scarce,
            Intent::Cancelled,
        ] {
            assert!(
                orders.iter().any(|order| order.intent == intent),
                "{intent:?}"
            );
        }
        assert!(orders.iter().any(|order| order.resend));
        let ordinary = orders
            .iter()
            .filter(|o| o.intent == Intent::Ordinary)
            .count();
        assert!(
            ordinary > orders.len() * 8 / 10,
            "mostly ordinary: {ordinary}"
        );
        let keys: std::collections::BTreeSet<_> = orders.iter().map(|o| &o.key).collect();
        assert_eq!(keys.len(), orders.len());
        for order in &orders {
            let skus: std::collections::BTreeSet<_> = order.lines.iter().map(|l| &l.0).collect();
            assert_eq!(skus.len(), order.lines.len(), "a sku once per order");
        }
    }

    #[test]
    fn amounts_are_split_into_parts_the_services_accept() {
        assert_eq!(chunks(250, 100), vec![100, 100, 50]);
        assert_eq!(chunks(100, 100), vec![100]);
        assert_eq!(chunks(0, 100), vec![1]);
    }
}
