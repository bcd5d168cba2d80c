//! Memory of the service processes, read from `/proc`, and the machine's size.
//!
//! Resident set size (VmRSS) is what a container's memory limit and an
//! orchestrator's bin packing care about: the pages of the process actually in
//! RAM, shared libraries included. It is read straight from the kernel, so the
//! bench needs no agent in the services.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use microcosm_testkit::ServiceKind;
use tokio::task::JoinHandle;

/// How often the peak sampler reads every process's RSS during a load.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The resident set size of process `pid`, in bytes.
pub(crate) fn resident_set_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("{path} has no readable VmRSS line"))
}

/// The `VmRSS:     12345 kB` line of a `/proc/PID/status`, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kibibytes * 1024)
}

/// The current RSS of every service, for the "idle" column.
pub(crate) fn resident_set_of_each(
    pids: &[(ServiceKind, u32)],
) -> anyhow::Result<BTreeMap<ServiceKind, u64>> {
    pids.iter()
        .map(|&(kind, pid)| Ok((kind, resident_set_bytes(pid)?)))
        .collect()
}

/// Records the highest RSS of each service while a load runs, in the background.
#[derive(Debug)]
pub(crate) struct PeakRssSampler {
    peaks: Arc<Mutex<BTreeMap<ServiceKind, u64>>>,
    task: JoinHandle<()>,
}

impl PeakRssSampler {
    /// Starts sampling every [`SAMPLE_INTERVAL`]. A process that cannot be read
    /// (it died) simply stops contributing: the load's own errors will say why.
    pub(crate) fn start(pids: Vec<(ServiceKind, u32)>) -> Self {
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let task = tokio::spawn({
            let peaks = Arc::clone(&peaks);
            async move {
                let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
                loop {
                    ticker.tick().await;
                    for &(kind, pid) in &pids {
                        if let Ok(rss) = resident_set_bytes(pid) {
                            let mut peaks = peaks.lock().unwrap_or_else(PoisonError::into_inner);
                            let peak = peaks.entry(kind).or_insert(0);
                            *peak = (*peak).max(rss);
                        }
                    }
                }
            }
        });
        Self { peaks, task }
    }

    /// Stops sampling and returns each service's peak, in bytes.
    pub(crate) fn stop(self) -> BTreeMap<ServiceKind, u64> {
        self.task.abort();
        let peaks = self.peaks.lock().unwrap_or_else(PoisonError::into_inner);
        peaks.clone()
    }
}

/// What the bench ran on: results from two cores and from sixty-four are not
/// comparable, so every report carries this.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// CPUs this process may run on.
    pub(crate) cpus: usize,
    /// Total RAM, in bytes, if `/proc/meminfo` could be read.
    pub(crate) memory_bytes: Option<u64>,
    /// The one-minute load average when the bench started: well above zero
    /// means something else was using the CPUs, and the numbers are pessimistic.
    pub(crate) load_average: Option<f64>,
}

impl Machine {
    /// Reads the machine's size and how busy it is.
    pub(crate) fn describe() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| {
                let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
                let kibibytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kibibytes * 1024)
            });
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|loadavg| loadavg.split_whitespace().next()?.parse().ok());
        Self {
            cpus,
            memory_bytes,
            load_average,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status =
            "Name:\torder-service\nVmPeak:\t  99999 kB\nVmRSS:\t    8192 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(8192 * 1024));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let rss = resident_set_bytes(std::process::id()).expect("own status");
        assert!(rss > 0);
    }
}
