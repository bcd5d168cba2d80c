//! The chaos monkey: while orders are being placed, it SIGKILLs a random service
//! at random intervals and restarts it after a random outage; once in the run
//! it crashes NATS (SIGKILL, restarted with its store) and once the PostgreSQL
//! server of a random service (an immediate shutdown, so the restart replays the
//! WAL). Faults come one at a time: a restarted part is SERVING again before the
//! next fault, so every outage is the one the table says it was.
//!
//! Every choice comes from the run's seed, so `--seed` replays the same schedule
//! (the moments differ with the machine's speed, the sequence does not).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use microcosm_testkit::{ServiceKind, ServingStatus, Stack};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;

/// How long the system may take to report SERVING everywhere after a fault healed.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);

/// How the monkey behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FaultPlan {
    /// Mean time between two faults (each gap is drawn from half to one and a half times it).
    pub(crate) mean_interval: Duration,
    /// Longest outage of a killed part (each is drawn from a tenth of it up to it).
    pub(crate) max_outage: Duration,
}

/// What the monkey did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultCounts {
    /// SIGKILLs of each service (each followed by a restart).
    pub(crate) kills: BTreeMap<ServiceKind, u32>,
    /// NATS crashes (SIGKILL, then a restart with its store).
    pub(crate) nats_restarts: u32,
    /// PostgreSQL crashes (immediate shutdown, then a restart), by whose database it was.
    pub(crate) database_restarts: BTreeMap<ServiceKind, u32>,
}

impl FaultCounts {
    /// Every fault injected.
    pub(crate) fn total(&self) -> u32 {
        self.kills.values().sum::<u32>()
            + self.nats_restarts
            + self.database_restarts.values().sum::<u32>()
    }
}

/// One fault, for the run's log.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillService(ServiceKind),
    CrashNats,
    CrashDatabase(ServiceKind),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::KillService(kind) => write!(f, "SIGKILL {}", kind.binary_name()),
            Fault::CrashNats => f.write_str("SIGKILL nats-server"),
            Fault::CrashDatabase(kind) => write!(f, "crash {kind}'s PostgreSQL"),
        }
    }
}

/// Injects faults until `placing_done` turns true, then makes sure the run got its
/// one NATS crash and one database crash. Reports each fault through `log`.
///
/// `progress` says what share of the orders has been placed (0 to 1); the NATS
/// and database crashes happen at a seeded point between 30–50 % and 60–80 %.
pub(crate) async fn inject(
    stack: &mut Stack,
    plan: FaultPlan,
    seed: u64,
    progress: impl Fn() -> f64,
    mut placing_done: watch::Receiver<bool>,
    log: impl Fn(String),
) -> anyhow::Result<FaultCounts> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC4A0_5EED);
    let nats_at = rng.random_range(0.3..0.5);
    let database_at = rng.random_range(0.6..0.8);
    let database_of = random_service(&mut rng);
    let started = Instant::now();
    let mut counts = FaultCounts::default();
    let (mut nats_done, mut database_done) = (false, false);

    loop {
        let gap = plan.mean_interval.mul_f64(rng.random_range(0.5..1.5));
        tokio::select! {
            () = tokio::time::sleep(gap) => {}
            _ = placing_done.wait_for(|done| *done) => break,
        }
        let fault = if !nats_done && progress() >= nats_at {
            nats_done = true;
            Fault::CrashNats
        } else if !database_done && progress() >= database_at {
            database_done = true;
            Fault::CrashDatabase(database_of)
        } else {
            Fault::KillService(random_service(&mut rng))
        };
        let outage = outage(&mut rng, plan.max_outage);
        inject_one(stack, fault, outage, &mut counts, started, &log).await?;
    }
    // A short run may end before the thresholds: the run still gets one of each.
    if !nats_done {
        let outage = outage(&mut rng, plan.max_outage);
        inject_one(stack, Fault::CrashNats, outage, &mut counts, started, &log).await?;
    }
    if !database_done {
        let outage = outage(&mut rng, plan.max_outage);
        let fault = Fault::CrashDatabase(database_of);
        inject_one(stack, fault, outage, &mut counts, started, &log).await?;
    }
    Ok(counts)
}

fn random_service(rng: &mut StdRng) -> ServiceKind {
    ServiceKind::all()[rng.random_range(0..3)]
}

fn outage(rng: &mut StdRng, max_outage: Duration) -> Duration {
    max_outage.mul_f64(rng.random_range(0.1..=1.0))
}

async fn inject_one(
    stack: &mut Stack,
    fault: Fault,
    outage: Duration,
    counts: &mut FaultCounts,
    started: Instant,
    log: &impl Fn(String),
) -> anyhow::Result<()> {
    log(format!(
        "{:>7.1} s  {fault}, down for {} ms",
        started.elapsed().as_secs_f64(),
        outage.as_millis()
    ));
    match fault {
        Fault::KillService(kind) => {
            let service = stack.service_mut(kind);
            service
                .kill()
                .with_context(|| format!("could not SIGKILL {kind}"))?;
            tokio::time::sleep(outage).await;
            service
                .restart()
                .await
                .with_context(|| format!("{kind} did not come back after its SIGKILL"))?;
            *counts.kills.entry(kind).or_default() += 1;
        }
        Fault::CrashNats => {
            stack.nats.kill().context("could not SIGKILL nats-server")?;
            tokio::time::sleep(outage).await;
            stack
                .nats
                .restart()
                .await
                .context("nats-server did not come back after its SIGKILL")?;
            counts.nats_restarts += 1;
        }
        Fault::CrashDatabase(kind) => {
            let postgres = stack.postgres_mut(kind);
            postgres
                .kill()
                .await
                .with_context(|| format!("could not crash {kind}'s PostgreSQL"))?;
            tokio::time::sleep(outage).await;
            postgres
                .restart()
                .await
                .with_context(|| format!("{kind}'s PostgreSQL did not come back"))?;
            *counts.database_restarts.entry(kind).or_default() += 1;
        }
    }
    wait_until_all_serving(stack).await
}

/// Waits until every service reports SERVING again (they reconnect to a restarted
/// NATS or database on their own), so that the next fault starts from a healthy system.
async fn wait_until_all_serving(stack: &Stack) -> anyhow::Result<()> {
    let deadline = Instant::now() + HEAL_TIMEOUT;
    for kind in ServiceKind::all() {
        while stack.service(kind).health("").await.ok() != Some(ServingStatus::Serving) {
            if Instant::now() > deadline {
                bail!(
                    "{kind} did not report SERVING within {HEAL_TIMEOUT:?} after the fault; \
                     its log ends with:\n{}",
                    stack.service(kind).log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
