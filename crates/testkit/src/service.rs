//! The three Microcosm services, run as the real binaries a deployment would run.
//!
//! Tests start `order-service`, `inventory-service` and `billing-service` as separate
//! processes, so that killing one is a real crash of one service and nothing in the
//! test shares memory with it. A service is ready when the standard gRPC health check
//! for the whole server (service name `""`) reports `SERVING`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::binaries;
use crate::ports::free_port;
use crate::process::{DIAGNOSTIC_LOG_LINES, ManagedProcess, running};
use crate::readiness::wait_until_ready;

/// A service runs its migrations and connects to NATS before it reports SERVING.
const SERVING_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a single health check or connection attempt may take (a paused service
/// never answers).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// A graceful restart lets in-flight work finish; services shut down within seconds.
const RESTART_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Variables a service inherits from the test's environment. Everything else is
/// cleared, so a `DATABASE_URL` in a developer's shell can never point a test service
/// at a real database: the service sees exactly the configuration the test gave it.
const INHERITED_ENV: &[&str] = &["PATH", "HOME", "TMPDIR", "LANG", "RUST_BACKTRACE"];

/// One of the three services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// Places orders and drives the order saga.
    Order,
    /// Owns stock and reservations.
    Inventory,
    /// Owns customer balances and payments.
    Billing,
}

impl ServiceKind {
    /// All services, in the order a stack starts them (order depends on the others).
    pub fn all() -> [ServiceKind; 3] {
        [
            ServiceKind::Inventory,
            ServiceKind::Billing,
            ServiceKind::Order,
        ]
    }

    /// The short name: `order`, `inventory`, `billing`.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Order => "order",
            ServiceKind::Inventory => "inventory",
            ServiceKind::Billing => "billing",
        }
    }

    /// The executable's file name, e.g. `order-service`.
    pub fn binary_name(self) -> &'static str {
        match self {
            ServiceKind::Order => "order-service",
            ServiceKind::Inventory => "inventory-service",
            ServiceKind::Billing => "billing-service",
        }
    }

    /// The database and roles this service owns, e.g. database and owner role
    /// `microcosm_order` (password `microcosm_order_pw`) and runtime role
    /// `microcosm_order_app` (password `microcosm_order_app_pw`).
    pub fn database(self) -> ServiceDatabase {
        let name = format!("microcosm_{}", self.name());
        ServiceDatabase {
            password: format!("{name}_pw"),
            app_role: format!("{name}_app"),
            app_password: format!("{name}_app_pw"),
            role: name.clone(),
            database: name,
        }
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A service's private database and its two login roles: the owner, which runs
/// the migrations, and the runtime role the service serves with, which may only
/// read and write the rows of the owner's tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDatabase {
    /// The database name.
    pub database: String,
    /// The login role that owns the database and its tables (migrations).
    pub role: String,
    /// The owner's password.
    pub password: String,
    /// The runtime login role: SELECT, INSERT, UPDATE, DELETE on the owner's
    /// tables, nothing else (no DDL, no TRUNCATE, no other database).
    pub app_role: String,
    /// The runtime role's password.
    pub app_password: String,
}

/// Choices beyond the defaults of [`ServiceProcess::start`], mostly for `microcosm up`.
#[derive(Clone, Debug, Default)]
pub struct ServiceOptions {
    /// The executable to run instead of the workspace build of the service.
    pub binary: Option<PathBuf>,
    /// A directory for the log that outlives the process handle (default: a temp dir).
    pub dir: Option<PathBuf>,
    /// The gRPC port (default: a free one).
    pub port: Option<u16>,
    /// Return as soon as the process is spawned instead of waiting for SERVING:
    /// for tests of a service whose database or NATS is down on purpose (they
    /// wait for a line of its log with [`ServiceProcess::wait_for_log`] instead).
    pub spawn_only: bool,
}

/// A running service binary, listening for gRPC on a loopback port.
///
/// Restarts reuse the port and environment, so clients and the other services keep
/// their configured address. Dropping it kills the process and deletes a temp dir.
#[derive(Debug)]
pub struct ServiceProcess {
    kind: ServiceKind,
    process: Option<ManagedProcess>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    port: u16,
    dir: PathBuf,
    /// Held only to delete the log's temp dir on drop; declared last so that this
    /// happens after the process is gone.
    _temp_dir: Option<TempDir>,
}

impl ServiceProcess {
    /// Starts the workspace build of `kind` on a free port with `env` added to its
    /// defaults (`GRPC_LISTEN_ADDR`, `LOG_FORMAT=json`, `RUST_LOG=info`; `env` wins)
    /// and waits until it reports SERVING.
    pub async fn start(kind: ServiceKind, env: Vec<(String, String)>) -> anyhow::Result<Self> {
        Self::start_with(kind, env, ServiceOptions::default()).await
    }

    /// Like [`start`](Self::start), with a chosen binary, log directory or port.
    pub async fn start_with(
        kind: ServiceKind,
        env: Vec<(String, String)>,
        options: ServiceOptions,
    ) -> anyhow::Result<Self> {
        let binary = match options.binary {
            Some(binary) => binary,
            None => binaries::service_binary(kind)?,
        };
        let (dir, temp_dir) = match options.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("could not create {}", dir.display()))?;
                (dir, None)
            }
            None => {
                let temp_dir = tempfile::Builder::new()
                    .prefix(&format!("microcosm-{}-", kind.name()))
                    .tempdir()
                    .context("could not create a temp dir for a service")?;
                (temp_dir.path().to_path_buf(), Some(temp_dir))
            }
        };
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut service = Self {
            kind,
            process: None,
            binary,
            env,
            port,
            dir,
            _temp_dir: temp_dir,
        };
        if options.spawn_only {
            service.spawn()?;
        } else {
            service.spawn_and_wait().await?;
        }
        Ok(service)
    }

    /// Which service this is.
    pub fn kind(&self) -> ServiceKind {
        self.kind
    }

    /// The environment it was started with, beyond the kit's defaults.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The gRPC address, `127.0.0.1:PORT`.
    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The gRPC endpoint as clients configure it, `http://127.0.0.1:PORT`, or
    /// `https://` when the service runs with TLS (`GRPC_TLS_CERT` in its environment).
    pub fn endpoint(&self) -> String {
        let scheme = if self.env_value("GRPC_TLS_CERT").is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.grpc_addr())
    }

    /// A connected gRPC channel to the service, for building typed clients. Over
    /// TLS the kit verifies the service against its `GRPC_TLS_CA` and presents the
    /// service's own certificate, so it passes mutual TLS like a peer service.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        connect(self.endpoint(), self.client_tls()?).await
    }

    fn env_value(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }

    /// How to reach the service over TLS, if it runs with TLS.
    fn client_tls(&self) -> anyhow::Result<Option<ClientTlsConfig>> {
        let (Some(cert), Some(key)) = (
            self.env_value("GRPC_TLS_CERT"),
            self.env_value("GRPC_TLS_KEY"),
        ) else {
            return Ok(None);
        };
        let ca = self
            .env_value("GRPC_TLS_CA")
            .context("the kit verifies a TLS service against its GRPC_TLS_CA, which is not set")?;
        let read =
            |path: &str| std::fs::read(path).with_context(|| format!("could not read {path}"));
        Ok(Some(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(ca)?))
                .identity(Identity::from_pem(read(cert)?, read(key)?)),
        ))
    }

    /// The process id, or `None` after a kill or terminate.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ManagedProcess::pid)
    }

    /// The log file with the service's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.kind.binary_name()))
    }

    /// The last lines of the service log (as many as startup errors quote).
    pub fn log_tail(&self) -> String {
        crate::process::read_log_tail(&self.log_path(), DIAGNOSTIC_LOG_LINES)
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Crashes the service with SIGKILL: no shutdown hooks, no flushing.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.kill()?;
        }
        Ok(())
    }

    /// Sends `signal` to the service, as a supervisor or a person at a terminal
    /// would (SIGTERM, SIGINT, ...), without waiting for anything.
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        self.running_process()?.signal(signal)
    }

    /// Freezes the service (SIGSTOP): its port stays open but calls hang.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.running_process()?.pause()
    }

    /// Lets a paused service run again.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.running_process()?.resume()
    }

    /// Asks the service to shut down (SIGTERM) and waits up to `timeout` for it to
    /// exit, returning how it exited: tests of graceful shutdown assert on it.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut process) = self.process.take() else {
            bail!("{} is not running", self.kind.binary_name());
        };
        let status = process.terminate(timeout).await;
        if status.is_err() {
            // Keep it so the caller can still inspect or kill it.
            self.process = Some(process);
        }
        status
    }

    /// How the service exited, if it exited on its own (reaping it); `None` while it
    /// runs. For supervisors such as `microcosm up`, which report a service that died.
    /// Fails if the kit itself stopped it ([`kill`](Self::kill), [`terminate`](Self::terminate)).
    pub fn try_exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.process.as_mut() {
            Some(process) => process.try_exit_status(),
            None => bail!("{} is not running", self.kind.binary_name()),
        }
    }

    /// Waits up to `timeout` for the process to exit on its own (a crash, say).
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match self.process.as_mut() {
            // An exited process still answers with its status.
            Some(process) => process.wait_for_exit(timeout).await,
            None => bail!("{} was never started", self.kind.binary_name()),
        }
    }

    /// Starts the service again with the same port and environment and waits until it
    /// reports SERVING; a service still running is terminated first.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self
            .process
            .as_mut()
            .is_some_and(ManagedProcess::is_running)
        {
            self.terminate(RESTART_STOP_TIMEOUT).await?;
        }
        self.process = None;
        self.spawn_and_wait().await
    }

    /// Waits up to `timeout` until the health check reports SERVING for the whole
    /// server; fails early, with the log tail, if the process exits.
    pub async fn wait_serving(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let endpoint = self.endpoint();
        let tls = self.client_tls()?;
        let what = self.kind.binary_name();
        let Some(process) = self.process.as_mut() else {
            bail!("{what} is not running");
        };
        wait_until_ready(process, what, timeout, || {
            let endpoint = endpoint.clone();
            let tls = tls.clone();
            async move {
                match check_health(endpoint, tls, String::new()).await? {
                    ServingStatus::Serving => Ok(()),
                    status => bail!("health check reports {status:?}"),
                }
            }
        })
        .await
    }

    /// One health check of `service_name` (`""` for the whole server), bounded so a
    /// paused service yields an error rather than a hang.
    pub async fn health(&self, service_name: &str) -> anyhow::Result<ServingStatus> {
        tokio::time::timeout(
            CALL_TIMEOUT,
            check_health(self.endpoint(), self.client_tls()?, service_name.to_owned()),
        )
        .await
        .with_context(|| {
            format!(
                "no health answer from {} within {CALL_TIMEOUT:?}",
                self.endpoint()
            )
        })?
    }

    fn running_process(&mut self) -> anyhow::Result<&mut ManagedProcess> {
        let description = format!("{} is not running", self.kind.binary_name());
        running(&mut self.process, &description)
    }

    /// Waits up to `timeout` until a line of the service's log contains `needle`
    /// (a message, or a field as it appears in the JSON, e.g. `"cannot consume yet"`);
    /// fails early, with the log tail, if the process exits first.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("{} logging {needle:?}", self.kind.binary_name());
        let log_path = self.log_path();
        let Some(process) = self.process.as_mut() else {
            bail!("{} is not running", self.kind.binary_name());
        };
        wait_until_ready(process, &what, timeout, || {
            let log_path = log_path.clone();
            async move {
                let log = std::fs::read_to_string(&log_path)
                    .with_context(|| format!("could not read {}", log_path.display()))?;
                if log.contains(needle) {
                    Ok(())
                } else {
                    bail!("not in the log yet")
                }
            }
        })
        .await
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.spawn()?;
        self.wait_serving(SERVING_TIMEOUT).await
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command.env_clear().current_dir(&self.dir);
        for name in INHERITED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("GRPC_LISTEN_ADDR", self.grpc_addr().to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        self.process = Some(ManagedProcess::spawn(command, self.log_path())?);
        Ok(())
    }
}

async fn connect(endpoint: String, tls: Option<ClientTlsConfig>) -> anyhow::Result<Channel> {
    let mut configured = Endpoint::from_shared(endpoint.clone())
        .with_context(|| format!("{endpoint} is not a valid endpoint"))?
        .connect_timeout(CALL_TIMEOUT);
    if let Some(tls) = tls {
        configured = configured
            .tls_config(tls)
            .with_context(|| format!("TLS settings for {endpoint}"))?;
    }
    let channel = configured
        .connect()
        .await
        .with_context(|| format!("could not connect to {endpoint}"))?;
    Ok(channel)
}

async fn check_health(
    endpoint: String,
    tls: Option<ClientTlsConfig>,
    service: String,
) -> anyhow::Result<ServingStatus> {
    let mut client = HealthClient::new(connect(endpoint, tls).await?);
    let response = client.check(HealthCheckRequest { service }).await?;
    Ok(ServingStatus::try_from(response.into_inner().status)?)
}
