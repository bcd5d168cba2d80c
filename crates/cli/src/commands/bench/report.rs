//! The bench's findings, as a table to read and as JSON for scripts and tests.
//!
//! Times are shown in milliseconds and memory in MiB (2^20 bytes), the units
//! the goals in docs/BENCHMARKS.md are written in. The JSON carries the same
//! figures with the unit in each key's name, so a reader never has to guess.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use microcosm_testkit::ServiceKind;
use serde_json::{Value, json};

use super::cold_start::median;
use super::latency::LatencySummary;
use super::monolith::MonolithResult;
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
}

impl BenchReport {
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
        let _ = writeln!(
            out,
            "Microcosm bench: {} CPUs{memory}{load}\n",
            self.machine.cpus
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
            },
            "monolith": {
                "clients": self.monolith.clients,
                "window_s": self.monolith.window.as_secs_f64(),
                "committed": self.monolith.committed,
                "orders_per_second": self.monolith.orders_per_second(),
                "failed": self.monolith.failed,
                "first_failure": self.monolith.first_failure,
                "latency_ms": latency_json(&self.monolith.latency),
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
