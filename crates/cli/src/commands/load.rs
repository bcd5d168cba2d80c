//! `microcosm load`: steady load on a running system — the local stack, the compose
//! sandbox (its `loadgen` profile runs this) or a cluster — so that there is always
//! something to watch in Jaeger, `order list` or the fault scenarios.
//!
//! It places the same mix of orders as `microcosm chaos` (mostly orders that
//! confirm, plus a share of each way an order can be cancelled) at a fixed rate,
//! with the same careful client (deadlines, retries with the same idempotency
//! key), in batches of [`BATCH`]. Before each batch it restocks the demo catalogue
//! and funds the demo customers through the public APIs, so it can run for days.
//! Unlike `microcosm bench`, which starts a private system to measure it, this
//! loads the system you point it at and measures nothing.

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Args;

use super::chaos::workload::{self, ClientCounters};
use crate::endpoints::{Endpoints, ServiceName};

/// Orders per batch (each batch is provisioned first).
const BATCH: u64 = 1_000;

/// Arguments of `microcosm load`.
#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Orders started per second.
    #[arg(long, value_name = "ORDERS_PER_SEC", default_value_t = 5.0, value_parser = super::chaos::parse_rate)]
    rate: f64,
    /// Orders to place in all; without it, orders are placed until the process is stopped.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    orders: Option<u64>,
    /// Calls in flight at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
}

/// Places orders until `--orders` are placed (or forever); exit 1 if an order
/// could not be placed at all.
pub(crate) async fn run(endpoints: &Endpoints, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let order = endpoints.connect(ServiceName::Order).await?;
    let inventory = endpoints.connect(ServiceName::Inventory).await?;
    let billing = endpoints.connect(ServiceName::Billing).await?;
    // Keys are unique per run: a second `load` never meets the first one's keys.
    let run: u64 = rand::random();
    let counters = ClientCounters::default();
    let mut left = args.orders;
    let mut batch = 0_u64;
    eprintln!(
        "load: placing orders at {}/s on {} (Ctrl-C to stop)",
        args.rate,
        endpoints.url(ServiceName::Order)
    );
    while left != Some(0) {
        let size = left.map_or(BATCH, |left| left.min(BATCH));
        workload::provision(
            inventory.channel(),
            billing.channel(),
            usize::try_from(size)?,
        )
        .await?;
        let orders = workload::orders(usize::try_from(size)?, run.wrapping_add(batch), "load");
        workload::place_all(
            order.channel(),
            orders,
            args.rate,
            usize::try_from(args.concurrency)?,
            &counters,
        )
        .await;
        eprintln!(
            "load: {} placed, {} retried, {} could not be placed",
            counters.placed.load(Ordering::Relaxed),
            counters.retries.load(Ordering::Relaxed),
            counters.not_placed.load(Ordering::Relaxed)
        );
        left = left.map(|left| left - size);
        batch += 1;
    }
    if counters.not_placed.load(Ordering::Relaxed) > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
