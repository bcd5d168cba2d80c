//! One child process the kit owns from spawn to reap.
//!
//! Every server the kit starts (PostgreSQL, nats-server, a Microcosm service, even a
//! short-lived `initdb`) goes through [`ManagedProcess`], so they all share the same
//! guarantees:
//!
//! - **Nothing outlives the test.** `Drop` kills and reaps the process, and the kernel
//!   kills it too (`PR_SET_PDEATHSIG`) if the test process dies without unwinding.
//! - **Signals reach the whole server.** Pause, resume and kill go to the child's
//!   process group (it leads its own) and to every descendant, so pausing PostgreSQL
//!   freezes its backends as well, not only the postmaster.
//! - **Failures explain themselves.** stdout and stderr go to a log file, and
//!   [`ManagedProcess::diagnostics`] puts the command line and the log's last lines into
//!   every startup error.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::process_tree;

/// How many log lines a startup error quotes: enough for PostgreSQL's or a Rust
/// service's complaint plus its context, short enough to read in a test failure.
pub const DIAGNOSTIC_LOG_LINES: usize = 40;

/// How long `kill` waits for SIGKILLed descendants to be gone; they die within
/// milliseconds unless the machine is badly overloaded.
const DESCENDANT_DEATH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often waits look at a process again. Short, because tests wait on this often.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A child process with its output in a log file, killed and reaped on drop.
///
/// Waits are async polls of `try_wait` rather than a blocking `wait()`, so a test can
/// bound them with a deadline and keep its runtime free while a server shuts down.
#[derive(Debug)]
pub struct ManagedProcess {
    child: Child,
    command_line: String,
    log_path: PathBuf,
    paused: bool,
    exit_status: Option<ExitStatus>,
}

impl ManagedProcess {
    /// Spawns `command` with stdin closed and stdout and stderr appended to `log_path`.
    ///
    /// The log is appended to, not truncated, so a server restarted on the same log
    /// keeps its whole history; a `--- starting` line marks each start.
    ///
    /// Spawn from async code or a thread that lives as long as the process should:
    /// `PR_SET_PDEATHSIG` fires when the spawning *thread* exits, not the process, so a
    /// child spawned inside `spawn_blocking` dies when tokio retires that pool thread.
    pub fn spawn(mut command: Command, log_path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let log_path = log_path.into();
        let command_line = format!("{command:?}");
        let mut log = open_log(&log_path)?;
        writeln!(log, "--- starting: {command_line}")
            .with_context(|| format!("could not write to {}", log_path.display()))?;
        let stderr_log = log
            .try_clone()
            .with_context(|| format!("could not duplicate the handle of {}", log_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr_log)
            .process_group(0);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("could not start {command_line}"))?;
        Ok(Self {
            child,
            command_line,
            log_path,
            paused: false,
            exit_status: None,
        })
    }

    /// The process id, which is also the id of the process group it leads.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line as spawned, for error messages.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// The file that receives the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log (fewer if the log is shorter).
    pub fn log_tail(&self, lines: usize) -> String {
        read_log_tail(&self.log_path, lines)
    }

    /// The command line and the log's last lines: the context every startup error
    /// carries, so a failed test says why a server did not come up.
    pub fn diagnostics(&self) -> String {
        format!(
            "command: {}\nlast {} lines of {}:\n{}",
            self.command_line,
            DIAGNOSTIC_LOG_LINES,
            self.log_path.display(),
            self.log_tail(DIAGNOSTIC_LOG_LINES)
        )
    }

    /// Sends `signal` to the process itself (not its group), the way a supervisor asks
    /// a server to shut down: PostgreSQL, for one, relays it to its backends itself.
    pub fn signal(&mut self, signal: Signal) -> anyhow::Result<()> {
        if self.try_exit_status()?.is_some() {
            return Ok(());
        }
        match kill(self.nix_pid(), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(errno)
                .with_context(|| format!("could not send {signal} to {}", self.command_line)),
        }
    }

    /// Kills the process and everything it forked with SIGKILL and reaps it: a crash,
    /// with no chance to clean up. Returns at once if it has already exited.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_exit_status()? {
            return Ok(status);
        }
        let killed = self.signal_tree(Signal::SIGKILL)?;
        self.paused = false;
        let status = self
            .child
            .wait()
            .with_context(|| format!("could not reap {}", self.command_line))?;
        self.exit_status = Some(status);
        // A signalled process dies when next scheduled, not at once; wait for that, so
        // that once `kill` returns nothing of the server runs (or writes) any more.
        if !process_tree::wait_until_dead(&killed, DESCENDANT_DEATH_TIMEOUT) {
            tracing::warn!(command = %self.command_line, "children survived SIGKILL for {DESCENDANT_DEATH_TIMEOUT:?}");
        }
        Ok(status)
    }

    /// Freezes the process and everything it forked with SIGSTOP: it keeps its sockets
    /// but answers nothing, like a server stuck in a long GC pause or a hung VM.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal_tree(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// Lets a paused process and its descendants run again with SIGCONT.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal_tree(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// Whether [`pause`](Self::pause) froze the process and nothing resumed it since.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Asks the process to stop with SIGTERM (resuming it first if paused, or the
    /// signal would wait) and waits up to `timeout` for it to exit.
    ///
    /// Fails if it is still running then; it is left running for the caller to
    /// inspect, and `Drop` kills it.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.shut_down_with(Signal::SIGTERM, timeout).await
    }

    /// Asks the process to stop the way Ctrl-C in a terminal does (SIGINT) and waits
    /// up to `timeout` for it to exit: how tests stop a foreground command such as
    /// `microcosm up`.
    pub async fn interrupt(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.shut_down_with(Signal::SIGINT, timeout).await
    }

    /// Sends `signal` to the process (after resuming it if paused) and waits up to
    /// `timeout` for it to exit: the shape of every graceful stop the kit performs.
    pub async fn shut_down_with(
        &mut self,
        signal: Signal,
        timeout: Duration,
    ) -> anyhow::Result<ExitStatus> {
        if self.paused {
            self.resume()?;
        }
        self.signal(signal)?;
        self.wait_for_exit(timeout)
            .await
            .with_context(|| format!("the process did not stop after {signal}"))
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("still running after {timeout:?}\n{}", self.diagnostics());
            }
            tokio::time::sleep(EXIT_POLL_INTERVAL).await;
        }
    }

    /// Like [`shut_down_with`](Self::shut_down_with) but blocking, for `Drop` impls
    /// that want a graceful stop (a persistent data directory should not need crash
    /// recovery on its next start); falls back to SIGKILL after `grace`.
    pub(crate) fn shut_down_blocking(&mut self, signal: Signal, grace: Duration) {
        let deadline = Instant::now() + grace;
        let asked = if self.paused { self.resume() } else { Ok(()) };
        if asked.and_then(|()| self.signal(signal)).is_ok() {
            while Instant::now() < deadline {
                match self.try_exit_status() {
                    Ok(Some(_)) => return,
                    Ok(None) => std::thread::sleep(EXIT_POLL_INTERVAL),
                    Err(_) => break,
                }
            }
        }
        tracing::warn!(command = %self.command_line, "no exit {grace:?} after {signal}: killing it");
        if let Err(error) = self.kill() {
            tracing::warn!(command = %self.command_line, "could not kill a test process: {error:#}");
        }
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_exit_status(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .with_context(|| format!("could not check on {}", self.command_line))?;
        }
        Ok(self.exit_status)
    }

    /// Whether the process is still running (a paused process counts as running).
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_exit_status(), Ok(None))
    }

    fn nix_pid(&self) -> Pid {
        // Linux pids fit in i32 (pid_max is at most 2^22), so this never wraps.
        Pid::from_raw(self.child.id() as i32)
    }

    /// Signals every descendant (including those that left the process group, see
    /// [`crate::process_tree`]) and then the process group. Returns the descendants.
    ///
    /// Except when waking it, the group is frozen first: a process that cannot run
    /// cannot fork a child between the listing and the signal. And descendants are
    /// listed before the leader dies, because its orphans are then re-parented to
    /// pid 1 and no longer look like its descendants.
    ///
    /// Only while the process is unreaped: until then its pid, and so the group id,
    /// cannot be reused by an unrelated process.
    fn signal_tree(&mut self, signal: Signal) -> anyhow::Result<Vec<u32>> {
        if self.try_exit_status()?.is_some() {
            return Ok(Vec::new());
        }
        if signal != Signal::SIGCONT {
            self.signal_group(Signal::SIGSTOP)?;
        }
        let descendants = process_tree::descendants(self.pid());
        for &descendant in &descendants {
            // A descendant may exit meanwhile; nothing is left to signal then.
            let _ = kill(Pid::from_raw(descendant as i32), signal);
        }
        self.signal_group(signal)?;
        Ok(descendants)
    }

    fn signal_group(&self, signal: Signal) -> anyhow::Result<()> {
        match killpg(self.nix_pid(), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(errno).with_context(|| {
                format!(
                    "could not send {signal} to the group of {}",
                    self.command_line
                )
            }),
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if self.paused {
            let _ = self.resume();
        }
        if let Err(error) = self.kill() {
            tracing::warn!(command = %self.command_line, "could not kill a test process: {error:#}");
        }
    }
}

/// The process in `slot` if it is running, else an error saying `description` (e.g.
/// "PostgreSQL on port 5000 is not running"): for operations that need a live server.
pub(crate) fn running<'a>(
    slot: &'a mut Option<ManagedProcess>,
    description: &str,
) -> anyhow::Result<&'a mut ManagedProcess> {
    let is_running = slot.as_mut().is_some_and(ManagedProcess::is_running);
    match slot {
        Some(process) if is_running => Ok(process),
        _ => bail!("{description}"),
    }
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("could not open the log file {}", path.display()))
}

/// The last `lines` lines of a log file, or a note saying why it could not be read.
pub(crate) fn read_log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(could not read {}: {error})", path.display()),
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it exits, so a test
/// process that dies without unwinding (SIGKILL, abort, OOM) leaves no servers behind.
///
/// std runs `pre_exec` closures after it has switched uid and gid, which matters: a
/// credential change clears the parent-death signal, so setting it any earlier would
/// be silently undone for PostgreSQL, which runs as the `postgres` user under root.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is allowed. It makes two plain syscalls (prctl, getppid)
    // and builds an io::Error from a raw errno; nothing allocates or takes a lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died between fork and prctl; then nobody would
            // send the signal, so refuse to run at all.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
}
