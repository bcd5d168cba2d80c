//! `microcosm up` as a child process, and what a test needs around it: a scratch
//! directory, three free consecutive ports, a wait for the services to be SERVING,
//! and a look at which processes a run left behind.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use microcosm_proto::order::order_service_client::OrderServiceClient;
use microcosm_testkit::{ManagedProcess, ServiceKind, ServingStatus};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The first start runs initdb, migrations and the demo data on a busy 2-core machine.
const SERVING_TIMEOUT: Duration = Duration::from_secs(120);
/// The bound for Ctrl-C to stop everything.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// A run that refuses to start does so before starting anything.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);
/// `up` checks on its processes twice a second.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two polls of the health checks.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest one health check may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Base ports are drawn below Linux's ephemeral range (32768–60999), where the test
/// kit's free ports for other tests' servers come from, so they cannot collide.
const BASE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The services in the order `up` gives them ports.
const SERVICES: [ServiceKind; 3] = [
    ServiceKind::Order,
    ServiceKind::Inventory,
    ServiceKind::Billing,
];

/// A directory under the system temp dir, deleted on drop; world-searchable so that
/// PostgreSQL, which runs as the `postgres` user under root, can enter it.
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a new, uniquely named directory.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("microcosm-up-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { path })
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Three consecutive loopback ports that are free right now: the base for `--ports-from`.
pub(crate) fn free_base_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let span = u128::from(BASE_PORTS.end - BASE_PORTS.start);
        let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span)?;
        let base = BASE_PORTS.start + offset;
        let all_free =
            (base..base + 3).all(|port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
        if all_free {
            return Ok(base);
        }
    }
    bail!("found no three free consecutive ports in {BASE_PORTS:?}")
}

/// The gRPC URL `up` gives `kind` when started with `--ports-from base`.
fn service_url(base: u16, kind: ServiceKind) -> String {
    let port = match kind {
        ServiceKind::Order => base,
        ServiceKind::Inventory => base + 1,
        ServiceKind::Billing => base + 2,
    };
    format!("http://127.0.0.1:{port}")
}

/// One run of `microcosm up` with its output in a log file beside the state directory.
pub(crate) struct UpRun {
    process: ManagedProcess,
    base_port: u16,
}

impl UpRun {
    /// Starts `microcosm up --dir <scratch>/state --ports-from base_port` plus `extra_args`;
    /// `run` numbers the output file.
    pub(crate) fn spawn(
        scratch: &ScratchDir,
        run: &str,
        base_port: u16,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let binary =
            microcosm_testkit::service_binary(ServiceKind::Order)?.with_file_name("microcosm");
        let mut command = Command::new(binary);
        command
            .arg("up")
            .arg("--dir")
            .arg(state_dir(scratch))
            .arg("--ports-from")
            .arg(base_port.to_string())
            .args(extra_args)
            .envs(extra_env.iter().copied());
        let process = ManagedProcess::spawn(command, scratch.path().join(format!("up-{run}.log")))?;
        Ok(Self { process, base_port })
    }

    /// Waits until all three services report SERVING; fails early, with `up`'s output,
    /// if `up` exits first.
    pub(crate) async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SERVING_TIMEOUT;
        loop {
            if let Some(status) = self.process.try_exit_status()? {
                bail!(
                    "microcosm up exited ({status}) before serving\n{}",
                    self.output()
                );
            }
            let mut all_serving = true;
            for kind in SERVICES {
                all_serving &= is_serving(self.base_port, kind).await;
            }
            if all_serving {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "not all services SERVING after {SERVING_TIMEOUT:?}\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A client of this run's order service.
    pub(crate) async fn orders(&self) -> anyhow::Result<OrderServiceClient<Channel>> {
        let channel = Endpoint::from_shared(service_url(self.base_port, ServiceKind::Order))?
            .connect()
            .await?;
        Ok(OrderServiceClient::new(channel))
    }

    /// Presses Ctrl-C: SIGINT, then waits (bounded) for `up` to exit.
    pub(crate) async fn interrupt(&mut self) -> anyhow::Result<ExitStatus> {
        self.process.interrupt(STOP_TIMEOUT).await
    }

    /// Waits for a run that should refuse to start to exit on its own.
    pub(crate) async fn wait_for_refusal(&mut self) -> anyhow::Result<ExitStatus> {
        self.process.wait_for_exit(REFUSAL_TIMEOUT).await
    }

    /// Waits (bounded) until `up` has printed `text`, e.g. a crash report.
    pub(crate) async fn wait_for_output(&self, text: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + REPORT_TIMEOUT;
        while !self.output().contains(text) {
            if Instant::now() >= deadline {
                bail!("no {text:?} within {REPORT_TIMEOUT:?}\n{}", self.output());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(())
    }

    /// Everything `up` printed so far.
    pub(crate) fn output(&self) -> String {
        self.process.log_tail(usize::MAX)
    }
}

/// The `--dir` of every run in `scratch`.
pub(crate) fn state_dir(scratch: &ScratchDir) -> PathBuf {
    scratch.path().join("state")
}

/// The gRPC health of the server at `url`, or `None` if it does not answer.
async fn health(url: &str) -> Option<ServingStatus> {
    let check = async {
        let channel = Endpoint::from_shared(url.to_owned())
            .ok()?
            .connect()
            .await
            .ok()?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .ok()?;
        ServingStatus::try_from(response.into_inner().status).ok()
    };
    tokio::time::timeout(CALL_TIMEOUT, check)
        .await
        .ok()
        .flatten()
}

/// The last `count` lines of a log file (empty if it cannot be read).
pub(crate) fn last_lines(path: &Path, count: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The ports of `base`'s three services that still accept connections.
pub(crate) fn listening_ports(base: u16) -> Vec<u16> {
    (base..base + 3)
        .filter(|&port| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok())
        .collect()
}

/// Every process whose working directory or command line lies inside `dir`, as pid
/// and command line: the servers and services of a run (PostgreSQL's backends work in
/// its data directory, the services in their log directories).
pub(crate) fn processes_inside(dir: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let dir_text = dir.display().to_string();
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let inside = cwd.is_some_and(|cwd| cwd.starts_with(dir)) || cmdline.contains(&dir_text);
            inside.then_some((pid, cmdline))
        })
        .collect()
}

/// Crashes the process of `kind` that a run in `dir` started, with SIGKILL.
pub(crate) fn kill_service(dir: &Path, kind: ServiceKind) -> anyhow::Result<()> {
    let (pid, _) = processes_inside(dir)
        .into_iter()
        .find(|(_, cmdline)| cmdline.contains(kind.binary_name()))
        .with_context(|| format!("no {} process in {}", kind.binary_name(), dir.display()))?;
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -KILL {pid} failed ({status})");
    }
    Ok(())
}

/// Whether the service of `kind` answers SERVING right now.
pub(crate) async fn is_serving(base: u16, kind: ServiceKind) -> bool {
    health(&service_url(base, kind)).await == Some(ServingStatus::Serving)
}
