//! The bench's findings, as a table to read and as JSON for scripts and tests.
//!
//! Times are shown in milliseconds and memory in MiB (2^20 bytes), the units
//! the goals in docs/BENCHMARKS.md are written in. The JSON carries the same
//! figures with the unit in each key's name, so a reader never has to guess.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use microcosm_testkit::nats::SyncInterval;
use microcosm_testkit::{ServiceKind, WorkReading};
use serde_json::{Value, json};

use super::cold_start::median;
use super::latency::LatencySummary;
use super::monolith::{MONOLITH_DATABASE, MonolithResult};
use super::resources::Machine;
use super::saga_load::{LoadShape, SagaLoadResult};

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// What was measured about one service process.
#[derive(Debug, Clone)]
pub(crate) struct ServiceFigures {
    /// Which service.
    pub(crate) kind: ServiceKind,
    /// The first start, from exec to SERVING, migrating an empty database.
    pub(crate) first_start: Duration,
    /// Later starts of the same configuration, from exec to SERVING.
    pub(crate) cold_starts: Vec<Duration>,
    /// RSS after start, before any load, in bytes.
    pub(crate) idle_rss: u64,
    /// Highest RSS seen during the saga load, in bytes.
    pub(crate) peak_rss: u64,
}

/// Whether the three databases agreed after the saga load.
#[derive(Debug, Clone)]
pub(crate) enum AuditVerdict {
    /// `microcosm audit` found these many violations (0: clean) over these orders.
    Ran {
        /// Inconsistencies found.
        violations: usize,
        /// Orders audited.
        orders: u64,
    },
    /// The audit could not run, for this reason.
    Failed(String),
}

/// Everything one `microcosm bench` run found.
#[derive(Debug, Clone)]
pub(crate) struct BenchReport {
    /// What the numbers were measured on.
    pub(crate) machine: Machine,
    /// Order, inventory and billing.
    pub(crate) services: Vec<ServiceFigures>,
    /// The load on the saga.
    pub(crate) saga: SagaLoadResult,
    /// The one-transaction baseline.
    pub(crate) monolith: MonolithResult,
    /// The audit after the saga load.
    pub(crate) audit: AuditVerdict,
    /// What the saga load cost, in total (from its start until every order ended).
    pub(crate) saga_work: WorkReading,
    /// What the monolith load cost, in total.
    pub(crate) monolith_work: WorkReading,
    /// JetStream's disk sync, if not the server's default.
    pub(crate) nats_sync_interval: Option<SyncInterval>,
    /// Whether the services exported spans and metrics over OTLP.
    pub(crate) otlp_export: bool,
}

/// The processes counted in "CPU per order": the load generator (the bench
/// itself) is shown beside it, not in it, for both systems.
const LOAD_GENERATOR: &str = "bench";

/// The work per order of one system, ready to print or serialise.
struct WorkPerOrder {
    /// CPU milliseconds per process, the load generator included.
    cpu_ms: Vec<(String, f64)>,
    /// Transactions and statements per database.
    databases: Vec<(String, f64, f64)>,
    writing_transactions: f64,
    jetstream_messages: f64,
}

impl WorkPerOrder {
    /// `work` divided by `orders`, keeping only the processes and databases named.
    fn of(work: &WorkReading, orders: u64, processes: &[&str], databases: &[String]) -> Self {
        let per = work.per(orders);
        Self {
            cpu_ms: processes
                .iter()
                .map(|name| {
                    let seconds = per.cpu_seconds.get(*name).copied().unwrap_or(0.0);
                    ((*name).to_owned(), seconds * 1_000.0)
                })
                .collect(),
            databases: databases
                .iter()
                .map(|name| {
                    let counted = per.databases.get(name).copied().unwrap_or_default();
                    (name.clone(), counted.transactions, counted.statements)
                })
                .collect(),
            writing_transactions: per.writing_transactions,
            jetstream_messages: per.jetstream_messages,
        }
    }

    /// CPU milliseconds of the system itself (the load generator excluded).
    fn cpu_total_ms(&self) -> f64 {
        self.cpu_ms
            .iter()
            .filter(|(name, _)| name != LOAD_GENERATOR)
            .map(|(_, ms)| ms)
            .sum()
    }

    fn transactions(&self) -> f64 {
        self.databases
            .iter()
            .map(|(_, transactions, _)| transactions)
            .sum()
    }

    fn statements(&self) -> f64 {
        self.databases
            .iter()
            .map(|(_, _, statements)| statements)
            .sum()
    }

    fn write_table(&self, out: &mut String) {
        let parts = |values: Vec<(String, f64)>| {
            values
                .iter()
                .map(|(name, value)| format!("{name} {value:.2}"))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let system: Vec<(String, f64)> = self
            .cpu_ms
            .iter()
            .filter(|(name, _)| name != LOAD_GENERATOR)
            .cloned()
            .collect();
        let generator = self
            .cpu_ms
            .iter()
            .find(|(name, _)| name == LOAD_GENERATOR)
            .map_or(0.0, |(_, ms)| *ms);
        let _ = writeln!(
            out,
            "  {:<22}{:.2} = {}   (load generator {generator:.2})",
            "CPU (ms)",
            self.cpu_total_ms(),
            parts(system)
        );
        let transactions = self
            .databases
            .iter()
            .map(|(name, transactions, _)| (name.clone(), *transactions))
            .collect();
        let _ = writeln!(
            out,
            "  {:<22}{:.1} = {}   (writing: {:.1})",
            "transactions",
            self.transactions(),
            parts(transactions),
            self.writing_transactions
        );
        let statements = self
            .databases
            .iter()
            .map(|(name, _, statements)| (name.clone(), *statements))
            .collect();
        let _ = writeln!(
            out,
            "  {:<22}{:.1} = {}",
            "statements",
            self.statements(),
            parts(statements)
        );
        let _ = writeln!(
            out,
            "  {:<22}{:.1}",
            "JetStream messages", self.jetstream_messages
        );
    }

    fn to_json(&self) -> Value {
        let cpu: serde_json::Map<String, Value> = self
            .cpu_ms
            .iter()
            .map(|(name, ms)| (name.clone(), json!(ms)))
            .collect();
        let databases: serde_json::Map<String, Value> = self
            .databases
            .iter()
            .map(|(name, transactions, statements)| {
                (
                    name.clone(),
                    json!({"transactions": transactions, "statements": statements}),
                )
            })
            .collect();
        json!({
            "cpu_ms": self.cpu_total_ms(),
            "cpu_ms_by_process": cpu,
            "transactions": self.transactions(),
            "writing_transactions": self.writing_transactions,
            "statements": self.statements(),
            "by_database": databases,
            "jetstream_messages": self.jetstream_messages,
        })
    }
}

impl BenchReport {
    /// The saga's work per completed order: every service, PostgreSQL, NATS.
    fn saga_work_per_order(&self) -> WorkPerOrder {
        let databases: Vec<String> = ServiceKind::all()
            .into_iter()
            .map(|kind| kind.database().database)
            .collect();
        WorkPerOrder::of(
            &self.saga_work,
            self.saga.ends.confirmed + self.saga.ends.cancelled,
            &[
                "order",
                "inventory",
                "billing",
                "postgres",
                "nats-server",
                LOAD_GENERATOR,
            ],
            &databases,
        )
    }

    /// The monolith's work per committed order: PostgreSQL and its database.
    fn monolith_work_per_order(&self) -> WorkPerOrder {
        WorkPerOrder::of(
            &self.monolith_work,
            self.monolith.committed,
            &["postgres", LOAD_GENERATOR],
            &[MONOLITH_DATABASE.to_owned()],
        )
    }

    /// Sagas completed per second over monolith orders per second: the share of
    /// the single-database ceiling the distributed design reaches.
    pub(crate) fn saga_to_monolith_ratio(&self) -> Option<f64> {
        let monolith = self.monolith.orders_per_second();
        (monolith > 0.0).then(|| self.saga.completed_per_second() / monolith)
    }

    /// The report as a table for a terminal.
    pub(crate) fn to_table(&self) -> String {
        let mut out = String::new();
        let memory = self
            .machine
            .memory_bytes
            .map(|bytes| format!(", {:.1} GiB RAM", bytes as f64 / MIB / 1024.0))
            .unwrap_or_default();
        let load = self
            .machine
            .load_average
            .map(|load| format!(", load average {load:.2} at the start"))
            .unwrap_or_default();
        let sync = self
            .nats_sync_interval
            .as_ref()
            .map_or_else(|| "default (2 min)".to_owned(), ToString::to_string);
        let _ = writeln!(
            out,
            "Microcosm bench: {} CPUs{memory}{load}; JetStream sync_interval {sync}; OTLP export {}\n",
            self.machine.cpus,
            if self.otlp_export { "on" } else { "off" }
        );

        let _ = writeln!(
            out,
            "{:<34}{:>12}{:>12}{:>12}",
            "Services", "order", "inventory", "billing"
        );
        let row = |out: &mut String, label: &str, value: &dyn Fn(&ServiceFigures) -> String| {
            let _ = write!(out, "  {label:<32}");
            for kind in [
                ServiceKind::Order,
                ServiceKind::Inventory,
                ServiceKind::Billing,
            ] {
                let cell = self
                    .services
                    .iter()
                    .find(|service| service.kind == kind)
                    .map_or_else(|| "-".to_owned(), value);
                let _ = write!(out, "{cell:>12}");
            }
            out.push('\n');
        };
        let samples = self.services.first().map_or(0, |s| s.cold_starts.len());
        row(&mut out, "first start, migrating (ms)", &|s| {
            millis(s.first_start)
        });
        row(
            &mut out,
            &format!("cold start, median of {samples} (ms)"),
            &|s| millis(median(&s.cold_starts)),
        );
        row(&mut out, "idle RSS (MiB)", &|s| mebibytes(s.idle_rss));
        row(&mut out, "peak RSS under load (MiB)", &|s| {
            mebibytes(s.peak_rss)
        });

        let saga = &self.saga;
        let shape = match saga.shape {
            LoadShape::ClosedLoop { clients } => format!("closed loop, {clients} clients"),
            LoadShape::OpenLoop { per_second } => {
                format!("open loop, {per_second:.0} orders/s offered")
            }
        };
        let _ = writeln!(out, "\nSaga ({shape}, {} s)", saga.window.as_secs_f64());
        let _ = writeln!(
            out,
            "  placed     {:>8}  {:>9.1}/s   failed {}",
            saga.placed,
            saga.placed_per_second(),
            saga.failed
        );
        let _ = writeln!(
            out,
            "  completed  {:>8}  {:>9.1}/s   ({} in the window; {} confirmed, {} cancelled, {} unfinished)",
            saga.ends.confirmed + saga.ends.cancelled,
            saga.completed_per_second(),
            saga.ends.ended_in_window,
            saga.ends.confirmed,
            saga.ends.cancelled,
            saga.ends.unfinished
        );
        let _ = writeln!(
            out,
            "  {:<22}{}",
            "PlaceOrder ack (ms)",
            percentiles(&saga.ack)
        );
        let _ = writeln!(
            out,
            "  {:<22}{}",
            "place -> end (ms)",
            percentiles(&saga.ends.place_to_end)
        );
        if let Some(failure) = &saga.first_failure {
            let _ = writeln!(out, "  first failure: {failure}");
        }

        let monolith = &self.monolith;
        let _ = writeln!(
            out,
            "\nMonolith (one transaction per order, {} clients, {} s)",
            monolith.clients,
            monolith.window.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  committed  {:>8}  {:>9.1}/s   failed {}",
            monolith.committed,
            monolith.orders_per_second(),
            monolith.failed
        );
        let _ = writeln!(
            out,
            "  {:<22}{}",
            "BEGIN..COMMIT (ms)",
            percentiles(&monolith.latency)
        );
        if let Some(failure) = &monolith.first_failure {
            let _ = writeln!(out, "  first failure: {failure}");
        }

        let _ = writeln!(
            out,
            "\nWork per completed saga (CPU from /proc; transactions from pg_stat_database; statements from pg_stat_statements)"
        );
        self.saga_work_per_order().write_table(&mut out);
        let _ = writeln!(out, "Work per monolith order");
        self.monolith_work_per_order().write_table(&mut out);

        let ratio = self
            .saga_to_monolith_ratio()
            .map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.3}"));
        let _ = writeln!(out, "\nSaga completed/s / monolith orders/s: {ratio}");
        let audit = match &self.audit {
            AuditVerdict::Ran {
                violations: 0,
                orders,
            } => format!("clean ({orders} orders)"),
            AuditVerdict::Ran { violations, orders } => {
                format!("{violations} VIOLATIONS over {orders} orders (run `microcosm audit`)")
            }
            AuditVerdict::Failed(why) => format!("could not run: {why}"),
        };
        let _ = writeln!(
            out,
            "Audit of the three databases after the saga load: {audit}"
        );
        out
    }

    /// The report as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let services: serde_json::Map<String, Value> = self
            .services
            .iter()
            .map(|service| {
                let figures = json!({
                    "first_start_ms": as_millis(service.first_start),
                    "cold_start_median_ms": as_millis(median(&service.cold_starts)),
                    "cold_start_samples_ms": service.cold_starts.iter().copied().map(as_millis).collect::<Vec<_>>(),
                    "idle_rss_mib": service.idle_rss as f64 / MIB,
                    "peak_rss_mib": service.peak_rss as f64 / MIB,
                });
                (service.kind.name().to_owned(), figures)
            })
            .collect();
        let saga = &self.saga;
        let (mode, clients, offered_per_second) = match saga.shape {
            LoadShape::ClosedLoop { clients } => ("max", Some(clients), None),
            LoadShape::OpenLoop { per_second } => ("rate", None, Some(per_second)),
        };
        let (audit_clean, audit_violations, audit_error) = match &self.audit {
            AuditVerdict::Ran { violations, .. } => {
                (Some(*violations == 0), Some(*violations), None)
            }
            AuditVerdict::Failed(why) => (None, None, Some(why.clone())),
        };
        json!({
            "machine": {
                "cpus": self.machine.cpus,
                "memory_mib": self.machine.memory_bytes.map(|bytes| bytes as f64 / MIB),
                "load_average_at_start": self.machine.load_average,
            },
            "nats_sync_interval": self.nats_sync_interval.as_ref().map(ToString::to_string),
            "otlp_export": self.otlp_export,
            "services": services,
            "saga": {
                "mode": mode,
                "clients": clients,
                "offered_per_second": offered_per_second,
                "window_s": saga.window.as_secs_f64(),
                "placed": saga.placed,
                "placed_per_second": saga.placed_per_second(),
                "failed": saga.failed,
                "first_failure": saga.first_failure,
                "completed": saga.ends.confirmed + saga.ends.cancelled,
                "completed_in_window": saga.ends.ended_in_window,
                "completed_per_second": saga.completed_per_second(),
                "confirmed": saga.ends.confirmed,
                "cancelled": saga.ends.cancelled,
                "unfinished": saga.ends.unfinished,
                "ack_latency_ms": latency_json(&saga.ack),
                "place_to_end_latency_ms": latency_json(&saga.ends.place_to_end),
                "work_per_order": self.saga_work_per_order().to_json(),
            },
            "monolith": {
                "clients": self.monolith.clients,
                "window_s": self.monolith.window.as_secs_f64(),
                "committed": self.monolith.committed,
                "orders_per_second": self.monolith.orders_per_second(),
                "failed": self.monolith.failed,
                "first_failure": self.monolith.first_failure,
                "latency_ms": latency_json(&self.monolith.latency),
                "work_per_order": self.monolith_work_per_order().to_json(),
            },
            "saga_to_monolith_ratio": self.saga_to_monolith_ratio(),
            "audit": {
                "clean": audit_clean,
                "violations": audit_violations,
                "error": audit_error,
            },
        })
    }

    /// Writes the JSON report to `path`.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json())?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("could not write the report to {}", path.display()))
    }
}

fn as_millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn millis(duration: Duration) -> String {
    format!("{:.1}", as_millis(duration))
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB)
}

fn percentiles(summary: &LatencySummary) -> String {
    format!(
        "p50 {:>8}  p95 {:>8}  p99 {:>8}  p99.9 {:>8}  max {:>8}",
        millis(summary.p50),
        millis(summary.p95),
        millis(summary.p99),
        millis(summary.p999),
        millis(summary.max)
    )
}

fn latency_json(summary: &LatencySummary) -> Value {
    json!({
        "count": summary.count,
        "p50": as_millis(summary.p50),
        "p95": as_millis(summary.p95),
        "p99": as_millis(summary.p99),
        "p99_9": as_millis(summary.p999),
        "max": as_millis(summary.max),
    })
}
