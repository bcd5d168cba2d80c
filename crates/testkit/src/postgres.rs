//! A private PostgreSQL server on a free loopback port.
//!
//! Tests get a whole cluster of their own (not a database on the machine's shared
//! server on 5432), because failure tests stop, crash and freeze it. `fsync` stays on:
//! a test that kills the server and expects committed rows back must be able to rely
//! on the same durability as production.
//!
//! Directory layout (a temp dir, or a given one that survives for `microcosm up`):
//!
//! ```text
//! <dir>/data/          the cluster, created by initdb on first start
//! <dir>/socket/        the server's Unix socket (never the system-wide one)
//! <dir>/postgres.log   server output; initdb.log beside it
//! ```

mod provision;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, bail};
use nix::sys::signal::Signal;
use sqlx::{Connection as _, PgConnection};
use tempfile::TempDir;

use crate::binaries;
use crate::ports::free_port;
use crate::process::{ManagedProcess, running};
use crate::readiness::wait_until_ready;
use crate::run_as::RunAs;
use crate::service::ServiceDatabase;

/// The superuser initdb creates; tests use it for setup and assertions only.
const SUPERUSER: &str = "postgres";
/// The superuser's password (scram-sha-256 auth everywhere, as in production).
const SUPERUSER_PASSWORD: &str = "postgres";

/// Generous, because the first start of a cluster on a busy CI machine is slow.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// initdb writes (and fsyncs) a whole cluster.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// A fast shutdown writes a checkpoint first.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// An immediate shutdown only waits for backends to exit.
const CRASH_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or deliberately stopped) PostgreSQL server owned by the test.
///
/// Dropping it stops the server (falling back to SIGKILL if it hangs); a temp
/// directory is then deleted.
#[derive(Debug)]
pub struct Postgres {
    server: Option<ManagedProcess>,
    bin_dir: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    /// Declared last so that it is deleted after the server is gone.
    temp_dir: Option<TempDir>,
}

impl Postgres {
    /// Starts a fresh cluster in a new temp dir on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let temp_dir = tempfile::Builder::new()
            .prefix("microcosm-postgres-")
            .tempdir()
            .context("could not create a temp dir for PostgreSQL")?;
        // A port that looked free can be taken before the server binds it
        // (another test process picked it too): then try another one.
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            let dir = temp_dir.path().to_path_buf();
            match Self::launch(dir, port, None).await {
                Ok(mut postgres) => {
                    postgres.temp_dir = Some(temp_dir);
                    return Ok(postgres);
                }
                Err(error) if attempt < 3 => {
                    tracing::warn!(
                        "PostgreSQL did not start on port {port}, trying another: {error:#}"
                    );
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Starts the cluster kept in `dir` on `port`, running initdb only if `dir` holds
    /// no cluster yet. The directory is left in place when the handle drops.
    pub async fn start_in(dir: PathBuf, port: u16) -> anyhow::Result<Self> {
        fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("could not resolve {}", dir.display()))?;
        Self::launch(dir, port, None).await
    }

    async fn launch(dir: PathBuf, port: u16, temp_dir: Option<TempDir>) -> anyhow::Result<Self> {
        // Built before anything can fail, so that Drop cleans up whatever got started.
        let mut postgres = Self {
            server: None,
            bin_dir: binaries::postgres_bin_dir()?,
            dir,
            port,
            run_as: RunAs::postgres_if_root()?,
            temp_dir,
        };
        postgres.prepare_directories()?;
        if !postgres.data_dir().join("PG_VERSION").is_file() {
            postgres.initdb().await?;
        }
        postgres.start_server().await?;
        Ok(postgres)
    }

    /// The TCP port the server listens on (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster, socket and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::process::read_log_tail(&self.log_path(), lines)
    }

    /// The postmaster's pid, or `None` while the server is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(ManagedProcess::pid)
    }

    /// A superuser connection URL for database `db`: for setup and assertions, never
    /// for a service.
    pub fn superuser_url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{SUPERUSER_PASSWORD}@127.0.0.1:{}/{}",
            self.port,
            provision::url_encode(db)
        )
    }

    /// The URL a service serves with (`DATABASE_URL`): its runtime role, its own
    /// database.
    pub fn service_url(&self, database: &ServiceDatabase) -> String {
        self.service_url_on_port(database, self.port)
    }

    /// [`Postgres::service_url`] with another port: that of a proxy in front of the
    /// server (see [`crate::FaultProxy`]).
    pub fn service_url_on_port(&self, database: &ServiceDatabase, port: u16) -> String {
        url(
            &database.app_role,
            &database.app_password,
            port,
            &database.database,
        )
    }

    /// The URL a service migrates with (`MIGRATION_DATABASE_URL`): the owner role.
    pub fn owner_url(&self, database: &ServiceDatabase) -> String {
        self.owner_url_on_port(database, self.port)
    }

    /// [`Postgres::owner_url`] with another port, e.g. a proxy's.
    pub fn owner_url_on_port(&self, database: &ServiceDatabase, port: u16) -> String {
        url(&database.role, &database.password, port, &database.database)
    }

    /// Creates the service's owner and runtime roles and its database, reachable by
    /// those roles only; the runtime role gets DML on every table the owner creates
    /// (now or in later migrations) and nothing else. Safe to call again: what
    /// exists is kept.
    pub async fn provision(&self, database: &ServiceDatabase) -> anyhow::Result<()> {
        provision::provision_at(
            &self.superuser_url("postgres"),
            &self.superuser_url(&database.database),
            database,
        )
        .await
    }

    /// Stops the server with a fast shutdown (SIGINT: roll back open transactions,
    /// checkpoint, exit), as an orderly restart would. Does nothing if already stopped.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take() {
            server
                .shut_down_with(Signal::SIGINT, STOP_TIMEOUT)
                .await
                .context("PostgreSQL did not finish a fast shutdown")?;
        }
        Ok(())
    }

    /// Crashes the server: an immediate shutdown (SIGQUIT), which skips the checkpoint
    /// so the next start runs crash recovery from the WAL. Falls back to SIGKILL if the
    /// server does not exit in time.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.server.take()
            && let Err(error) = server.shut_down_with(Signal::SIGQUIT, CRASH_TIMEOUT).await
        {
            tracing::warn!("PostgreSQL ignored SIGQUIT, killing it: {error:#}");
            server.kill()?;
        }
        Ok(())
    }

    /// Freezes the postmaster and every backend (SIGSTOP): connections stay open but
    /// nothing answers, like a database host that stopped responding.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.running_server()?.pause()
    }

    /// Lets a paused server run again; queries sent meanwhile are then answered.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.running_server()?.resume()
    }

    /// Starts the server again on the same port and data directory and waits until it
    /// accepts logins; a server still running is stopped first.
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
            None => bail!("PostgreSQL on port {} is not running", self.port),
        }
    }

    fn running_server(&mut self) -> anyhow::Result<&mut ManagedProcess> {
        let description = format!("PostgreSQL on port {} is not running", self.port);
        running(&mut self.server, &description)
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    /// Creates the socket directory and, under root, hands everything to `postgres`.
    fn prepare_directories(&self) -> anyhow::Result<()> {
        let socket_dir = self.socket_dir();
        fs::create_dir_all(&socket_dir)
            .with_context(|| format!("could not create {}", socket_dir.display()))?;
        if let Some(run_as) = &self.run_as {
            run_as.ensure_can_reach(&self.dir)?;
            run_as.give(&self.dir)?;
            run_as.give(&socket_dir)?;
        }
        Ok(())
    }

    /// A command for one of the server programs, as the right user, in the kit's dir
    /// (root's home may be closed to the `postgres` user).
    fn server_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command.current_dir(&self.dir);
        if let Some(run_as) = &self.run_as {
            run_as.apply(&mut command);
        }
        command
    }

    async fn initdb(&mut self) -> anyhow::Result<()> {
        let password_file = self.dir.join("superuser-password");
        fs::write(&password_file, format!("{SUPERUSER_PASSWORD}\n"))
            .with_context(|| format!("could not write {}", password_file.display()))?;
        fs::set_permissions(&password_file, fs::Permissions::from_mode(0o600))?;
        if let Some(run_as) = &self.run_as {
            run_as.give(&password_file)?;
        }

        let mut command = self.server_command("initdb");
        command
            .arg("--pgdata")
            .arg(self.data_dir())
            .args(["--username", SUPERUSER, "--auth=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display()))
            .args(["--encoding=UTF8", "--locale=C"]);
        let mut initdb = ManagedProcess::spawn(command, self.dir.join("initdb.log"))?;
        let finished = initdb.wait_for_exit(INITDB_TIMEOUT).await;
        let _ = fs::remove_file(&password_file);
        let status = finished.context("initdb did not finish")?;
        if !status.success() {
            bail!("initdb failed ({status})\n{}", initdb.diagnostics());
        }
        Ok(())
    }

    async fn start_server(&mut self) -> anyhow::Result<()> {
        let mut command = self.server_command("postgres");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir().display()
            ))
            .args(["-c", "max_connections=200"])
            // Statement counts per database, for the bench and the test that pins
            // the work per order (see crate::work); also handy when debugging.
            .args(["-c", "shared_preload_libraries=pg_stat_statements"]);
        let url = self.superuser_url("postgres");
        let ours = fs::canonicalize(self.data_dir()).unwrap_or_else(|_| self.data_dir());
        let server = self
            .server
            .insert(ManagedProcess::spawn(command, self.log_path())?);
        // The answer must come from *this* server: when two test processes pick
        // the same free port, the loser's probe would otherwise reach the
        // winner's server (same superuser password) and share its databases.
        wait_until_ready(server, "PostgreSQL", READY_TIMEOUT, || async {
            let mut connection = PgConnection::connect(&url).await?;
            let serving: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
                .fetch_one(&mut connection)
                .await?;
            connection.close().await?;
            let serving = fs::canonicalize(&serving).unwrap_or_else(|_| PathBuf::from(&serving));
            anyhow::ensure!(
                serving == ours,
                "another PostgreSQL ({}) answers on this port",
                serving.display()
            );
            Ok(())
        })
        .await
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // Let the postmaster stop its own children: it reaps them, whereas a
            // SIGKILL would orphan them to pid 1, which in a container may never reap.
            // Kept data gets a clean (fast) shutdown so its next start needs no
            // recovery; throwaway data only needs an immediate one.
            let signal = if self.temp_dir.is_some() {
                Signal::SIGQUIT
            } else {
                Signal::SIGINT
            };
            server.shut_down_blocking(signal, STOP_TIMEOUT);
        }
    }
}

/// A loopback PostgreSQL URL for `role` on `database`.
fn url(role: &str, password: &str, port: u16, database: &str) -> String {
    format!(
        "postgres://{}:{}@127.0.0.1:{port}/{}",
        provision::url_encode(role),
        provision::url_encode(password),
        provision::url_encode(database)
    )
}
