//! The verdict of a chaos run: what happened to every order, which faults were
//! injected, how long the system took to drain, and whether it passed.
//!
//! A run passes only if every order was placed, none was lost (accepted, then
//! missing from the order database), none was doubled (a re-sent order answered
//! with a second order, or a charge or refund applied twice), none is stuck
//! (still PENDING when the drain timed out), and the audit across the three
//! databases is clean.

use std::fmt::Write as _;
use std::time::Duration;

use microcosm_audit::AuditReport;
use microcosm_audit::checks::{AT_MOST_ONE_CHARGE_PER_ORDER, AT_MOST_ONE_REFUND_PER_ORDER};
use microcosm_testkit::ServiceKind;
use serde_json::{Value, json};

use super::faults::FaultCounts;
use crate::commands::audit::report_json;

/// Everything a run found.
#[derive(Debug)]
pub(crate) struct ChaosReport {
    /// The seed that replays the run's orders and fault schedule.
    pub(crate) seed: u64,
    /// Orders the run set out to place.
    pub(crate) orders: u64,
    /// Orders accepted by PlaceOrder.
    pub(crate) placed: u64,
    /// Orders the client gave up on after failing to place them for minutes.
    pub(crate) not_placed: u64,
    /// Accepted orders missing from the order database afterwards.
    pub(crate) lost: u64,
    /// Re-sent orders answered with a different order than the first.
    pub(crate) doubled_orders: u64,
    /// PlaceOrder and CancelOrder calls sent again after failing in transit.
    pub(crate) retries: u64,
    /// Orders re-sent after they were accepted.
    pub(crate) resent: u64,
    /// Cancellations the order service accepted.
    pub(crate) cancels: u64,
    /// The faults injected.
    pub(crate) faults: FaultCounts,
    /// From the first order to the last one placed (and the monkey stopped).
    pub(crate) placing: Duration,
    /// From then until no order was PENDING (or the drain timed out).
    pub(crate) drain: Duration,
    /// Orders still PENDING when the drain timed out.
    pub(crate) stuck: u64,
    /// The audit across the three databases, after the drain.
    pub(crate) audit: AuditReport,
}

impl ChaosReport {
    /// Effects applied twice, as the audit found them: a second charge or refund.
    pub(crate) fn double_effects(&self) -> u64 {
        let doubled = self.audit.violations.iter().filter(|violation| {
            [AT_MOST_ONE_CHARGE_PER_ORDER, AT_MOST_ONE_REFUND_PER_ORDER].contains(&violation.check)
        });
        doubled.count() as u64
    }

    /// Orders doubled in any way: a second order for one key, or an effect twice.
    pub(crate) fn doubled(&self) -> u64 {
        self.doubled_orders + self.double_effects()
    }

    /// Whether the run passed: everything placed, 0 lost, 0 doubled, 0 stuck, audit clean.
    pub(crate) fn passed(&self) -> bool {
        self.not_placed == 0
            && self.lost == 0
            && self.doubled() == 0
            && self.stuck == 0
            && self.audit.is_clean()
    }

    /// The report as text: orders, faults, time, verdict.
    pub(crate) fn to_table(&self) -> String {
        let mut out = String::new();
        let counts = &self.audit.orders;
        let _ = writeln!(
            out,
            "Microcosm chaos: {} orders, seed {} (replay with --seed {})\n",
            self.orders, self.seed, self.seed
        );
        // An empty label separates sections with a blank line.
        let mut row = |label: &str, value: String| {
            if label.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {label:<40}{value:>10}");
            }
        };
        row("orders placed", self.placed.to_string());
        row("confirmed", counts.confirmed.to_string());
        row("cancelled", counts.cancelled().to_string());
        for (reason, count) in &counts.cancelled_by_reason {
            row(&format!("  {reason}"), count.to_string());
        }
        row("lost", self.lost.to_string());
        row("doubled", self.doubled().to_string());
        row("stuck", self.stuck.to_string());
        row("not placed", self.not_placed.to_string());
        row("", String::new());
        for kind in [
            ServiceKind::Order,
            ServiceKind::Inventory,
            ServiceKind::Billing,
        ] {
            let kills = self.faults.kills.get(&kind).copied().unwrap_or(0);
            row(
                &format!("SIGKILL {}", kind.binary_name()),
                kills.to_string(),
            );
        }
        row(
            "NATS crash + restart",
            self.faults.nats_restarts.to_string(),
        );
        for (kind, restarts) in &self.faults.database_restarts {
            row(
                &format!("PostgreSQL crash + restart ({kind})"),
                restarts.to_string(),
            );
        }
        row("faults injected", self.faults.total().to_string());
        row("", String::new());
        row(
            "client retries (failed in transit)",
            self.retries.to_string(),
        );
        row("orders re-sent after acceptance", self.resent.to_string());
        row("cancellations accepted", self.cancels.to_string());
        row(
            "dead letters (order/inventory/billing)",
            format!(
                "{}/{}/{}",
                count_or_dash(self.audit.dead_letters.order),
                count_or_dash(self.audit.dead_letters.inventory),
                count_or_dash(self.audit.dead_letters.billing)
            ),
        );
        row("", String::new());
        row("placing, under faults (s)", seconds(self.placing));
        row("time to drain (s)", seconds(self.drain));
        out.push('\n');
        if self.audit.is_clean() {
            out.push_str("audit: clean\n");
        } else {
            let _ = writeln!(out, "{}", self.audit);
        }
        let _ = write!(out, "{}", self.verdict());
        out
    }

    /// One line: PASS, or FAIL with what failed.
    pub(crate) fn verdict(&self) -> String {
        if self.passed() {
            return format!(
                "PASS: 0 lost, 0 doubled, 0 stuck, audit clean after {} faults",
                self.faults.total()
            );
        }
        let mut failed = Vec::new();
        for (count, what) in [
            (self.lost, "lost"),
            (self.doubled(), "doubled"),
            (self.stuck, "stuck"),
            (self.not_placed, "not placed"),
        ] {
            if count > 0 {
                failed.push(format!("{count} {what}"));
            }
        }
        if !self.audit.is_clean() {
            failed.push(format!("{} audit violations", self.audit.violations.len()));
        }
        format!("FAIL: {}", failed.join(", "))
    }

    /// The report as JSON, the same figures as the table.
    pub(crate) fn to_json(&self) -> Value {
        let kills: serde_json::Map<String, Value> = ServiceKind::all()
            .into_iter()
            .map(|kind| {
                let kills = self.faults.kills.get(&kind).copied().unwrap_or(0);
                (kind.name().to_owned(), json!(kills))
            })
            .collect();
        let database_restarts: serde_json::Map<String, Value> = self
            .faults
            .database_restarts
            .iter()
            .map(|(kind, restarts)| (kind.name().to_owned(), json!(restarts)))
            .collect();
        json!({
            "passed": self.passed(),
            "verdict": self.verdict(),
            "seed": self.seed,
            "orders": {
                "requested": self.orders,
                "placed": self.placed,
                "confirmed": self.audit.orders.confirmed,
                "cancelled": self.audit.orders.cancelled(),
                "cancelled_by_reason": self.audit.orders.cancelled_by_reason,
                "lost": self.lost,
                "doubled": self.doubled(),
                "stuck": self.stuck,
                "not_placed": self.not_placed,
            },
            "faults": {
                "total": self.faults.total(),
                "kills": kills,
                "nats_restarts": self.faults.nats_restarts,
                "database_restarts": database_restarts,
            },
            "client": {
                "retries": self.retries,
                "resent": self.resent,
                "cancels": self.cancels,
            },
            "placing_ms": self.placing.as_millis(),
            "drain_ms": self.drain.as_millis(),
            "audit": report_json(&self.audit),
        })
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64())
}

fn count_or_dash(count: Option<u64>) -> String {
    count.map_or_else(|| "-".to_owned(), |count| count.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use microcosm_audit::{DeadLetterCounts, OrderCounts, Violation};

    use super::*;

    fn clean_report() -> ChaosReport {
        ChaosReport {
            seed: 7,
            orders: 10,
            placed: 10,
            not_placed: 0,
            lost: 0,
            doubled_orders: 0,
            retries: 3,
            resent: 1,
            cancels: 1,
            faults: FaultCounts {
                kills: BTreeMap::from([(ServiceKind::Billing, 2)]),
                nats_restarts: 1,
                database_restarts: BTreeMap::from([(ServiceKind::Inventory, 1)]),
            },
            placing: Duration::from_secs(3),
            drain: Duration::from_millis(1500),
            stuck: 0,
            audit: AuditReport {
                audited_at: Utc::now(),
                orders: OrderCounts {
                    total: 10,
                    pending: 0,
                    in_flight: 0,
                    confirmed: 8,
                    cancelled_by_reason: BTreeMap::from([("out_of_stock".to_owned(), 2)]),
                },
                dead_letters: DeadLetterCounts {
                    order: Some(0),
                    inventory: Some(0),
                    billing: Some(0),
                },
                violations: Vec::new(),
            },
        }
    }

    #[test]
    fn a_clean_run_passes_and_its_table_shows_outcomes_faults_and_drain() {
        let report = clean_report();
        assert!(report.passed());
        let table = report.to_table();
        for expected in [
            "seed 7",
            "out_of_stock",
            "SIGKILL billing-service",
            "NATS crash + restart",
            "PostgreSQL crash + restart (inventory)",
            "time to drain (s)",
            "PASS: 0 lost, 0 doubled, 0 stuck, audit clean after 4 faults",
        ] {
            assert!(
                table.contains(expected),
                "{expected:?} missing from\n{table}"
            );
        }
        assert_eq!(report.to_json()["passed"], json!(true));
        assert_eq!(report.to_json()["faults"]["total"], json!(4));
    }

    #[test]
    fn anything_lost_doubled_stuck_unplaced_or_inconsistent_fails_the_run() {
        type Spoil = fn(&mut ChaosReport);
        let failing: [(&str, Spoil); 6] = [
            ("1 lost", |r| r.lost = 1),
            ("1 doubled", |r| r.doubled_orders = 1),
            ("2 stuck", |r| r.stuck = 2),
            ("1 not placed", |r| r.not_placed = 1),
            ("1 doubled", |r| {
                r.audit.violations.push(Violation {
                    check: AT_MOST_ONE_CHARGE_PER_ORDER,
                    order_id: None,
                    detail: "charged twice".into(),
                });
            }),
            ("1 audit violations", |r| {
                r.audit.violations.push(Violation {
                    check: "stock_is_not_negative",
                    order_id: None,
                    detail: "-1".into(),
                });
            }),
        ];
        for (expected, spoil) in failing {
            let mut report = clean_report();
            spoil(&mut report);
            assert!(!report.passed(), "{expected}");
            let verdict = report.verdict();
            assert!(verdict.starts_with("FAIL: "), "{verdict}");
            assert!(
                verdict.contains(expected),
                "{expected:?} not in {verdict:?}"
            );
            assert_eq!(report.to_json()["passed"], json!(false));
        }
    }
}
