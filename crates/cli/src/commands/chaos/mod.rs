//! `microcosm chaos`: a soak under faults that ends with a verdict.
//!
//! One run starts its own private system with the test kit (a PostgreSQL server
//! per service, NATS, and the three service binaries next to this executable,
//! on loopback only), then:
//!
//! 1. restocks the demo catalogue and funds the demo customers through the
//!    public APIs (`workload`);
//! 2. places N orders at a steady rate, with a careful client: deadlines, and
//!    retries with the same idempotency key (`workload`);
//! 3. meanwhile SIGKILLs a random service every few seconds and restarts it,
//!    crashes NATS once and one service's PostgreSQL once (`faults`);
//! 4. waits for every order to end, times that drain, checks that every
//!    accepted order exists, and audits the three databases;
//! 5. prints the table (`report`) and exits 0 only if nothing was lost,
//!    doubled or stuck and the audit is clean.
//!
//! Everything it started is torn down when it ends, also on error.

mod faults;
mod report;
pub(crate) mod workload;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use microcosm_audit::{AuditDatabases, AuditOptions};
use microcosm_testkit::{ServiceKind, Stack, StackOptions};
use sqlx::PgPool;
use tokio::sync::watch;

use self::faults::FaultPlan;
use self::report::ChaosReport;
use self::workload::ClientCounters;

/// `--quick`: enough orders for every fault to land among sagas in flight.
const QUICK_ORDERS: u64 = 400;
/// `--quick`: orders per second.
const QUICK_RATE: f64 = 40.0;
/// `--quick`: mean time between faults.
const QUICK_FAULT_INTERVAL: Duration = Duration::from_millis(1000);

/// How often the drain checks for orders still PENDING.
const DRAIN_POLL: Duration = Duration::from_millis(250);

/// Arguments of `microcosm chaos`.
#[derive(Debug, Args)]
pub(crate) struct ChaosArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    orders: u64,
    /// Orders started per second (fewer while the order service is down).
    #[arg(long, value_name = "ORDERS_PER_SEC", default_value_t = 100.0, value_parser = parse_rate)]
    rate: f64,
    /// Calls in flight at most.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Seed of the order mix and the fault schedule; a failed run prints it so
    /// that it can be replayed. Random by default.
    #[arg(long)]
    seed: Option<u64>,
    /// Mean time between two faults, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 4000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    fault_interval_ms: u64,
    /// Longest outage of a killed part, in milliseconds (each is random up to this).
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    max_outage_ms: u64,
    /// How long the orders may take to end once the faults stopped, in seconds;
    /// orders still PENDING then are reported as stuck.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    drain_timeout: u64,
    /// A short run for CI: 400 orders at 40 per second, a fault about every second.
    #[arg(long, conflicts_with_all = ["orders", "rate", "fault_interval_ms"])]
    quick: bool,
    /// The services' RUST_LOG (they log JSON to files in a temp dir).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    service_log: String,
}

pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 => Ok(rate),
        _ => Err(format!(
            "{text} is not a number of orders per second between 0 and 100000"
        )),
    }
}

/// Runs the soak and prints its report; exit 0 if it passed, 1 if not.
pub(crate) async fn run(args: ChaosArgs, json: bool) -> anyhow::Result<ExitCode> {
    let (orders, rate, fault_interval) = if args.quick {
        (QUICK_ORDERS, QUICK_RATE, QUICK_FAULT_INTERVAL)
    } else {
        (
            args.orders,
            args.rate,
            Duration::from_millis(args.fault_interval_ms),
        )
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let plan = FaultPlan {
        mean_interval: fault_interval,
        max_outage: Duration::from_millis(args.max_outage_ms),
    };
    eprintln!(
        "chaos: seed {seed}; starting a private system (a PostgreSQL per service, NATS, three services)"
    );
    let mut stack = start_stack(&args.service_log).await?;
    workload::provision(
        stack.inventory.channel().await?,
        stack.billing.channel().await?,
        usize::try_from(orders)?,
    )
    .await?;

    eprintln!("chaos: placing {orders} orders at {rate}/s under faults");
    let counters = ClientCounters::default();
    let bar = progress_bar(orders);
    let (placing_done, placing_done_rx) = watch::channel(false);
    let order_channel = stack.order.channel().await?;
    let started = Instant::now();
    let place = async {
        workload::place_all(
            order_channel,
            workload::orders(usize::try_from(orders)?, seed, "chaos"),
            rate,
            usize::try_from(args.concurrency)?,
            &counters,
        )
        .await;
        placing_done.send_replace(true);
        anyhow::Ok(())
    };
    let progress = || {
        let placed =
            counters.placed.load(Ordering::Relaxed) + counters.not_placed.load(Ordering::Relaxed);
        bar.set_position(placed);
        placed as f64 / orders as f64
    };
    let log = |line: String| {
        // The bar only draws on a terminal; elsewhere the lines go to stderr as they are.
        if bar.is_hidden() {
            eprintln!("chaos: {line}");
        } else {
            bar.println(line);
        }
    };
    let inject = faults::inject(&mut stack, plan, seed, progress, placing_done_rx, log);
    let (placed, faults) = tokio::join!(place, inject);
    placed?;
    let faults = faults?;
    let placing = started.elapsed();
    bar.finish_and_clear();

    eprintln!("chaos: faults over; waiting for every order to end");
    let pools = Pools::connect(&stack).await?;
    let drain_started = Instant::now();
    let stuck = drain(&pools.order, Duration::from_secs(args.drain_timeout)).await?;
    let drain = drain_started.elapsed();
    let lost = lost_orders(&pools.order, &counters).await?;
    let audit = microcosm_audit::audit(pools.databases(), &AuditOptions::default())
        .await
        .context("the audit could not read the databases")?;

    let report = ChaosReport {
        seed,
        orders,
        placed: counters.placed.load(Ordering::Relaxed),
        not_placed: counters.not_placed.load(Ordering::Relaxed),
        lost,
        doubled_orders: counters.doubled.load(Ordering::Relaxed),
        retries: counters.retries.load(Ordering::Relaxed),
        resent: counters.resent.load(Ordering::Relaxed),
        cancels: counters.cancels.load(Ordering::Relaxed),
        faults,
        placing,
        drain,
        stuck,
        audit,
    };
    if json {
        crate::output::print_json(&report.to_json());
    } else {
        println!("{}", report.to_table());
    }
    if report.passed() {
        return Ok(ExitCode::SUCCESS);
    }
    for kind in ServiceKind::all() {
        eprintln!(
            "\n{} log (last lines):\n{}",
            kind.binary_name(),
            stack.service(kind).log_tail()
        );
    }
    Ok(ExitCode::FAILURE)
}

/// The run's system: a PostgreSQL server per service (so a database crash hits
/// one service), demo data, and a short ack wait so that a message in the hands
/// of a killed consumer comes back within seconds.
async fn start_stack(service_log: &str) -> anyhow::Result<Stack> {
    let extra_env = ServiceKind::all()
        .into_iter()
        .flat_map(|kind| {
            [
                (kind, "CONSUMER_ACK_WAIT_MS".to_owned(), "2000".to_owned()),
                (kind, "RUST_LOG".to_owned(), service_log.to_owned()),
            ]
        })
        .collect();
    StackOptions {
        seed_demo_data: true,
        extra_env,
        postgres_per_service: true,
        fault_proxies: false,
    }
    .start()
    .await
    .context("could not start the chaos system")
}

fn progress_bar(orders: u64) -> ProgressBar {
    let bar = ProgressBar::new(orders);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} orders placed")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Superuser pools on the three databases, for the drain, the lost-order check
/// and the audit.
struct Pools {
    order: PgPool,
    inventory: PgPool,
    billing: PgPool,
}

impl Pools {
    async fn connect(stack: &Stack) -> anyhow::Result<Self> {
        Ok(Self {
            order: stack.superuser_pool(ServiceKind::Order).await?,
            inventory: stack.superuser_pool(ServiceKind::Inventory).await?,
            billing: stack.superuser_pool(ServiceKind::Billing).await?,
        })
    }

    fn databases(&self) -> AuditDatabases<'_> {
        AuditDatabases {
            order: &self.order,
            inventory: &self.inventory,
            billing: &self.billing,
        }
    }
}

/// Waits until no order is PENDING, for at most `timeout`; returns how many still are.
async fn drain(order_db: &PgPool, timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PENDING'")
                .fetch_one(order_db)
                .await
                .context("could not count the orders still PENDING")?;
        if pending == 0 || Instant::now() >= deadline {
            return Ok(u64::try_from(pending)?);
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Accepted orders that the order database does not hold under the id the client
/// was given.
async fn lost_orders(order_db: &PgPool, counters: &ClientCounters) -> anyhow::Result<u64> {
    let stored: BTreeSet<(String, String)> =
        sqlx::query_as("SELECT idempotency_key, order_id::text FROM orders")
            .fetch_all(order_db)
            .await
            .context("could not read the stored orders")?
            .into_iter()
            .collect();
    let lost = counters
        .accepted()
        .into_iter()
        .filter(|accepted| !stored.contains(accepted))
        .count();
    Ok(lost as u64)
}
