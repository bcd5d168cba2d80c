//! Finding every process a server has forked, wherever it moved itself.
//!
//! Signalling a child's process group is not enough for PostgreSQL: each backend calls
//! `setsid()` and leads a session of its own, so a SIGSTOP sent to the postmaster's
//! group would freeze the postmaster and leave every open connection answering. The
//! kit therefore also signals each descendant by pid, found by walking the parent
//! links in `/proc`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often [`wait_until_dead`] looks again.
const DEATH_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// The pids of all living descendants of `root` (children, their children, ...), not
/// including `root`. Empty if `/proc` cannot be read.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, parent) in parent_links() {
        children.entry(parent).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut to_visit = vec![root];
    while let Some(pid) = to_visit.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            found.push(child);
            to_visit.push(child);
        }
    }
    found
}

/// `(pid, parent pid)` of every process visible in `/proc`.
fn parent_links() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, parent_pid(&stat)?))
        })
        .collect()
}

/// The parent pid from a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`, where
/// `comm` may itself contain spaces and parentheses, so fields count from the last `)`.
fn parent_pid(stat: &str) -> Option<u32> {
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(1)?.parse().ok()
}

/// Waits (blocking, briefly) until none of `pids` is running any more; a zombie
/// counts as dead, since it runs no code and its parent or pid 1 reaps it. Returns
/// whether they all died within `timeout`.
pub(crate) fn wait_until_dead(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|&pid| is_running(pid)) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(DEATH_POLL_INTERVAL);
    }
    true
}

/// Whether `pid` exists and is not a zombie (`Z`) or dead (`X`).
fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, fields)| fields.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
}
