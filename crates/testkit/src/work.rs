//! The work a load costs, counted in figures that do not move with a noisy
//! machine: CPU time of every process involved (from `/proc`), database
//! transactions and statements (from PostgreSQL's own statistics), and messages
//! stored by JetStream.
//!
//! Rates on a shared two-core machine move by a third from run to run; how much
//! CPU, how many statements and how many commits one order takes do not. The
//! bench reports these per completed saga, and a test pins them so that a
//! regression in the work per order fails CI.
//!
//! Read a [`WorkReading`] before and after the load and take the difference with
//! [`WorkReading::since`]. Two counters need care:
//!
//! - `pg_stat_database` (transactions per database) is flushed by each backend
//!   at most once a second while busy, and by an idle backend only after ten
//!   seconds ([`STATS_FLUSH_DELAY`]): read it that long after the load.
//! - `pg_stat_statements` (statements per database) and the transaction id
//!   counter (writing transactions, cluster-wide) are exact at any moment.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::{Nats, Postgres};

/// How long after the last transaction `pg_stat_database` is sure to count it:
/// PostgreSQL 15 flushes an idle backend's statistics after 10 s.
pub const STATS_FLUSH_DELAY: Duration = Duration::from_millis(11_000);

/// The kernel's clock ticks per second in `/proc/PID/stat` (`USER_HZ`, which is
/// 100 on every Linux ABI).
const TICKS_PER_SECOND: u64 = 100;

/// A process (or a server with the processes it forked) whose CPU time is counted.
#[derive(Debug, Clone)]
pub struct MeteredProcess {
    /// A name for the report: `order`, `postgres`, `nats`...
    pub name: String,
    /// Its pid (for a tree: the root, e.g. the postmaster).
    pub pid: u32,
    /// Count every descendant too, living or ended (PostgreSQL's backends).
    pub with_descendants: bool,
}

/// Reads the counters of one private stack.
#[derive(Debug)]
pub struct WorkMeter {
    processes: Vec<MeteredProcess>,
    databases: Vec<String>,
    postgres: PgPool,
    jetstream: Option<async_nats::jetstream::Context>,
}

/// Transactions and statements of one database.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DatabaseWork {
    /// Commits and rollbacks (`pg_stat_database`, see [`STATS_FLUSH_DELAY`]).
    pub transactions: f64,
    /// Statements executed, `BEGIN` and `COMMIT` included (`pg_stat_statements`).
    pub statements: f64,
    /// `COMMIT`s of explicit transactions (`pg_stat_statements`; exact at once,
    /// unlike `transactions`, but blind to single-statement transactions).
    pub commits: f64,
}

/// The counters at one moment, or (after [`WorkReading::since`]) what a load added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkReading {
    /// CPU time (user + system) per metered process, in seconds.
    pub cpu_seconds: BTreeMap<String, f64>,
    /// Per database.
    pub databases: BTreeMap<String, DatabaseWork>,
    /// Transactions that wrote (were given a transaction id), all databases.
    pub writing_transactions: f64,
    /// Messages JetStream stored, all streams.
    pub jetstream_messages: f64,
}

impl WorkMeter {
    /// A meter over `postgres` (whose `pg_stat_statements` it enables), the
    /// `databases` on it, `processes`, and the streams of `nats` (if given).
    ///
    /// # Errors
    /// If PostgreSQL or NATS cannot be reached.
    pub async fn new(
        postgres: &Postgres,
        databases: &[&str],
        processes: Vec<MeteredProcess>,
        nats: Option<&Nats>,
    ) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&postgres.superuser_url("postgres"))
            .await
            .context("could not connect to PostgreSQL to read its statistics")?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&pool)
            .await
            .context("could not enable pg_stat_statements")?;
        let jetstream = match nats {
            Some(nats) => Some(async_nats::jetstream::new(nats.client().await?)),
            None => None,
        };
        Ok(Self {
            processes,
            databases: databases.iter().map(|name| (*name).to_owned()).collect(),
            postgres: pool,
            jetstream,
        })
    }

    /// The counters now.
    ///
    /// # Errors
    /// If PostgreSQL's or JetStream's statistics cannot be read.
    pub async fn read(&self) -> anyhow::Result<WorkReading> {
        let cpu_seconds = self
            .processes
            .iter()
            .map(|process| (process.name.clone(), cpu_seconds(process)))
            .collect();
        let transactions: Vec<(String, i64)> = sqlx::query_as(
            "SELECT datname::text, xact_commit + xact_rollback
               FROM pg_stat_database WHERE datname = ANY($1)",
        )
        .bind(&self.databases)
        .fetch_all(&self.postgres)
        .await
        .context("could not read pg_stat_database")?;
        let statements: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT d.datname::text, sum(s.calls)::bigint,
                    coalesce(sum(s.calls) FILTER (WHERE s.query = 'COMMIT'), 0)::bigint
               FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
              WHERE d.datname = ANY($1) GROUP BY d.datname",
        )
        .bind(&self.databases)
        .fetch_all(&self.postgres)
        .await
        .context("could not read pg_stat_statements")?;
        let mut databases: BTreeMap<String, DatabaseWork> = self
            .databases
            .iter()
            .map(|name| (name.clone(), DatabaseWork::default()))
            .collect();
        for (name, count) in transactions {
            databases.entry(name).or_default().transactions = count as f64;
        }
        for (name, count, commits) in statements {
            let work = databases.entry(name).or_default();
            work.statements = count as f64;
            work.commits = commits as f64;
        }
        // The next transaction id, read without taking one.
        let next_xid: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
                .fetch_one(&self.postgres)
                .await
                .context("could not read the transaction id counter")?;
        let mut jetstream_messages = 0;
        if let Some(jetstream) = &self.jetstream {
            for name in ["ORDER", "INVENTORY", "BILLING"] {
                if let Ok(mut stream) = jetstream.get_stream(name).await {
                    let info = stream.info().await.context("could not read a stream")?;
                    jetstream_messages += info.state.last_sequence;
                }
            }
        }
        Ok(WorkReading {
            cpu_seconds,
            databases,
            writing_transactions: next_xid as f64,
            jetstream_messages: jetstream_messages as f64,
        })
    }
}

impl WorkReading {
    /// What was added since `before`.
    pub fn since(&self, before: &WorkReading) -> WorkReading {
        let minus = |now: f64, then: f64| (now - then).max(0.0);
        WorkReading {
            cpu_seconds: self
                .cpu_seconds
                .iter()
                .map(|(name, now)| {
                    let then = before.cpu_seconds.get(name).copied().unwrap_or(0.0);
                    (name.clone(), minus(*now, then))
                })
                .collect(),
            databases: self
                .databases
                .iter()
                .map(|(name, now)| {
                    let then = before.databases.get(name).copied().unwrap_or_default();
                    let work = DatabaseWork {
                        transactions: minus(now.transactions, then.transactions),
                        statements: minus(now.statements, then.statements),
                        commits: minus(now.commits, then.commits),
                    };
                    (name.clone(), work)
                })
                .collect(),
            writing_transactions: minus(self.writing_transactions, before.writing_transactions),
            jetstream_messages: minus(self.jetstream_messages, before.jetstream_messages),
        }
    }

    /// Every figure divided by `count` (e.g. per completed saga).
    pub fn per(&self, count: u64) -> WorkReading {
        let divisor = count.max(1) as f64;
        WorkReading {
            cpu_seconds: self
                .cpu_seconds
                .iter()
                .map(|(name, seconds)| (name.clone(), seconds / divisor))
                .collect(),
            databases: self
                .databases
                .iter()
                .map(|(name, work)| {
                    let work = DatabaseWork {
                        transactions: work.transactions / divisor,
                        statements: work.statements / divisor,
                        commits: work.commits / divisor,
                    };
                    (name.clone(), work)
                })
                .collect(),
            writing_transactions: self.writing_transactions / divisor,
            jetstream_messages: self.jetstream_messages / divisor,
        }
    }

    /// CPU seconds of every process together.
    pub fn total_cpu_seconds(&self) -> f64 {
        self.cpu_seconds.values().sum()
    }

    /// Transactions of every database together.
    pub fn total_transactions(&self) -> f64 {
        self.databases.values().map(|work| work.transactions).sum()
    }

    /// Statements of every database together.
    pub fn total_statements(&self) -> f64 {
        self.databases.values().map(|work| work.statements).sum()
    }
}

/// User + system CPU time of a process, in seconds; with its descendants, also
/// theirs, living (from their own stat) or ended and reaped (the root's
/// `cutime`/`cstime`). 0 for a process that is gone.
fn cpu_seconds(process: &MeteredProcess) -> f64 {
    let mut ticks = stat_ticks(process.pid, process.with_descendants);
    if process.with_descendants {
        for child in crate::process_tree::descendants(process.pid) {
            ticks += stat_ticks(child, false);
        }
    }
    ticks as f64 / TICKS_PER_SECOND as f64
}

/// utime + stime (+ cutime + cstime with `reaped_children`) of `pid`, in ticks.
fn stat_ticks(pid: u32, reaped_children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    parse_stat_ticks(&stat, reaped_children).unwrap_or(0)
}

/// Fields 14–17 of a `/proc/PID/stat` line, counted after the last `)` since the
/// command name may contain spaces.
fn parse_stat_ticks(stat: &str, reaped_children: bool) -> Option<u64> {
    let (_, fields) = stat.rsplit_once(')')?;
    // After ')': state(3) ppid(4) ... utime is field 14, i.e. index 11 here.
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let field = |index: usize| fields.get(index)?.parse::<u64>().ok();
    let own = field(11)? + field(12)?;
    if reaped_children {
        Some(own + field(13)? + field(14)?)
    } else {
        Some(own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "42 (postgres: a (b)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat, false), Some(300));
        assert_eq!(parse_stat_ticks(stat, true), Some(310));
    }

    #[test]
    fn this_process_stat_is_readable() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("own stat");
        assert!(parse_stat_ticks(&stat, true).is_some(), "{stat}");
    }
}
