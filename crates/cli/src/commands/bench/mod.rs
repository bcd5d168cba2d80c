//! `microcosm bench`: what the saga costs, measured against the monolith it
//! replaces, on this machine.
//!
//! One run starts its own private stack with the test kit (PostgreSQL, NATS and
//! the three service binaries next to this executable, on loopback only), then:
//!
//! 1. times each service's start from exec to gRPC SERVING (`cold_start`);
//! 2. reads each service's idle memory (`resources`);
//! 3. seeds a catalogue and customers rich enough that every order confirms
//!    (`stack`, `workload`);
//! 4. offers orders to the saga, closed or open loop, and times PlaceOrder's
//!    answer and each order's end, heard on NATS (`saga_load`, `completions`),
//!    while sampling peak memory; then audits the three databases;
//! 5. runs the same orders as one transaction each in a monolith database on
//!    the same PostgreSQL (`monolith`);
//! 6. prints the table, and writes JSON if asked (`report`).
//!
//! Every step is bounded, and everything it started is torn down when it ends,
//! also on error. docs/BENCHMARKS.md has the results and what they mean.

mod cold_start;
mod completions;
mod latency;
mod monolith;
mod progress;
mod report;
mod resources;
mod saga_load;
mod stack;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use microcosm_audit::{AuditDatabases, AuditOptions};
use microcosm_testkit::nats::SyncInterval;
use microcosm_testkit::work::STATS_FLUSH_DELAY;
use microcosm_testkit::{OtlpCollector, ServiceKind};

use self::report::{AuditVerdict, BenchReport, ServiceFigures};
use self::resources::{Machine, PeakRssSampler};
use self::saga_load::LoadShape;
use self::stack::BenchStack;

/// How long the services idle after the cold-start measurements before their
/// memory is read, so that start-up allocations that are freed soon are not
/// counted as idle memory.
const IDLE_SETTLE: Duration = Duration::from_secs(1);

/// How long after the monolith's connections closed its statistics are read.
const MONOLITH_STATS_SETTLE: Duration = Duration::from_millis(500);

/// `--quick`: long enough to exercise every step, short enough for a test.
const QUICK_DURATION: Duration = Duration::from_secs(3);
/// `--quick`: clients of each load.
const QUICK_CONCURRENCY: usize = 8;
/// `--quick`: cold starts per service.
const QUICK_COLD_STARTS: usize = 2;

/// How the saga is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Closed loop: `--concurrency` clients, each placing its next order as soon
    /// as the previous one ended. Finds the maximum completed rate.
    Max,
    /// Open loop: `--rate` orders started per second, on schedule whatever the
    /// system does. Finds the latency at a given load.
    Rate,
}

/// Arguments of `microcosm bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// How to load the saga.
    #[arg(long, value_enum, default_value_t = Mode::Max)]
    mode: Mode,
    /// Orders started per second (with --mode rate).
    #[arg(long, value_name = "ORDERS_PER_SEC", value_parser = parse_rate, required_if_eq("mode", "rate"))]
    rate: Option<f64>,
    /// Concurrent clients: sagas in flight in max mode, and the monolith's
    /// connections in both modes.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=150))]
    concurrency: u32,
    /// Seconds each load (saga, then monolith) runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Fresh starts of each service to time (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    cold_starts: u32,
    /// A short smoke run: 3 s loads, 8 clients, 2 cold starts per service.
    #[arg(long, conflicts_with_all = ["duration", "concurrency", "cold_starts"])]
    quick: bool,
    /// The services' RUST_LOG (they log JSON to files, as the test kit runs them).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    service_log: String,
    /// JetStream's disk sync in the bench's nats-server: `always`, or
    /// milliseconds (default: the server's, 2 minutes). Needs nats-server 2.10
    /// or later; see docs/failure-isolation.md for what each choice survives.
    #[arg(long, value_name = "always|MS")]
    nats_sync_interval: Option<SyncInterval>,
    /// Export the services' spans and metrics over OTLP to a collector the
    /// bench runs (as `microcosm up` does: every second), so that memory and
    /// CPU are measured with telemetry export on.
    #[arg(long)]
    otlp: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    report_json: Option<PathBuf>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text} is not a positive number of orders per second"
        )),
    }
}

/// The run the arguments ask for, with `--quick` applied.
#[derive(Debug)]
struct BenchPlan {
    shape: LoadShape,
    clients: usize,
    duration: Duration,
    cold_starts: usize,
}

impl BenchPlan {
    fn from_args(args: &BenchArgs) -> anyhow::Result<Self> {
        let (clients, duration, cold_starts) = if args.quick {
            (QUICK_CONCURRENCY, QUICK_DURATION, QUICK_COLD_STARTS)
        } else {
            (
                usize::try_from(args.concurrency)?,
                Duration::from_secs(args.duration),
                usize::try_from(args.cold_starts)?,
            )
        };
        let shape = match args.mode {
            Mode::Max => LoadShape::ClosedLoop { clients },
            Mode::Rate => LoadShape::OpenLoop {
                per_second: args.rate.context("--mode rate needs --rate")?,
            },
        };
        Ok(Self {
            shape,
            clients,
            duration,
            cold_starts,
        })
    }
}

/// Runs the whole bench and prints the report; exit 1 if either system
/// completed no order at all, since then nothing was measured.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let plan = BenchPlan::from_args(&args)?;
    let machine = Machine::describe();
    eprintln!("bench: starting a private PostgreSQL, NATS and the three services");
    let collector = match args.otlp {
        true => Some(OtlpCollector::start().await?),
        false => None,
    };
    let telemetry = collector.as_ref().map(OtlpCollector::endpoint);
    let stack = BenchStack::start(
        &args.service_log,
        args.nats_sync_interval.clone(),
        telemetry.as_deref(),
    )
    .await?;

    eprintln!(
        "bench: timing {} cold starts of each service",
        plan.cold_starts
    );
    let mut cold_starts = BTreeMap::new();
    for service in &stack.services {
        let durations = cold_start::measure_cold_starts(service, plan.cold_starts).await?;
        cold_starts.insert(service.kind(), durations);
    }
    tokio::time::sleep(IDLE_SETTLE).await;
    let pids = stack.pids()?;
    let idle = resources::resident_set_of_each(&pids)?;

    stack.seed_catalogue_and_customers().await?;
    let meter = stack.work_meter(monolith::MONOLITH_DATABASE).await?;
    let before_saga = meter.read().await?;
    eprintln!("bench: loading the saga for {:?}", plan.duration);
    let sampler = PeakRssSampler::start(pids);
    let order_channel = stack.service(ServiceKind::Order)?.channel().await?;
    let saga = saga_load::run_saga_load(
        order_channel,
        stack.nats.client().await?,
        plan.shape,
        plan.duration,
    )
    .await;
    let peaks = sampler.stop();
    let saga = saga?;
    eprintln!(
        "bench: waiting {:?} for PostgreSQL's statistics to count every transaction",
        STATS_FLUSH_DELAY
    );
    tokio::time::sleep(STATS_FLUSH_DELAY).await;
    let saga_work = meter.read().await?.since(&before_saga);
    let audit = audit_services(&stack).await;

    eprintln!("bench: loading the monolith for {:?}", plan.duration);
    let pool = monolith::prepare_monolith(&stack, plan.clients).await?;
    let before_monolith = meter.read().await?;
    let monolith = monolith::run_monolith_load(pool, plan.clients, plan.duration).await?;
    // The monolith's connections are closed: their statistics are counted.
    tokio::time::sleep(MONOLITH_STATS_SETTLE).await;
    let monolith_work = meter.read().await?.since(&before_monolith);

    let services = ServiceKind::all()
        .into_iter()
        .map(|kind| ServiceFigures {
            kind,
            first_start: stack.first_starts.get(&kind).copied().unwrap_or_default(),
            cold_starts: cold_starts.remove(&kind).unwrap_or_default(),
            idle_rss: idle.get(&kind).copied().unwrap_or_default(),
            peak_rss: peaks.get(&kind).copied().unwrap_or_default(),
        })
        .collect();
    let report = BenchReport {
        machine,
        services,
        saga,
        monolith,
        audit,
        saga_work,
        monolith_work,
        nats_sync_interval: args.nats_sync_interval.clone(),
        otlp_export: args.otlp,
    };
    println!("{}", report.to_table());
    if let Some(path) = &args.report_json {
        report.write_json(path)?;
        eprintln!("bench: report written to {}", path.display());
    }
    let measured = report.saga.ends.confirmed + report.saga.ends.cancelled > 0
        && report.monolith.committed > 0;
    Ok(if measured {
        ExitCode::SUCCESS
    } else {
        eprintln!("bench: a system completed no order, so nothing was measured");
        ExitCode::FAILURE
    })
}

/// Runs `microcosm audit`'s checks over the three service databases: the
/// numbers are only worth reading if the saga kept them consistent.
async fn audit_services(stack: &BenchStack) -> AuditVerdict {
    let audited = async {
        let order = stack
            .superuser_pool(&ServiceKind::Order.database().database, 2)
            .await?;
        let inventory = stack
            .superuser_pool(&ServiceKind::Inventory.database().database, 2)
            .await?;
        let billing = stack
            .superuser_pool(&ServiceKind::Billing.database().database, 2)
            .await?;
        let databases = AuditDatabases {
            order: &order,
            inventory: &inventory,
            billing: &billing,
        };
        let report = microcosm_audit::audit(databases, &AuditOptions::default()).await?;
        anyhow::Ok(AuditVerdict::Ran {
            violations: report.violations.len(),
            orders: report.orders.total,
        })
    };
    audited
        .await
        .unwrap_or_else(|error| AuditVerdict::Failed(format!("{error:#}")))
}
