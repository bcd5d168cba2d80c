//! The one directory `microcosm up` keeps its state in, from one run to the next.
//!
//! ```text
//! <dir>/.microcosm-up                        marks the directory as ours; locked while up runs
//! <dir>/postgres/                            the cluster (data/), its socket and postgres.log
//! <dir>/nats/                                the JetStream store and nats-server.log
//! <dir>/logs/<service>/<service>-service.log each service's output (JSON lines)
//! ```
//!
//! Keeping the data means orders placed yesterday are still there today, and a
//! restart starts in seconds (no initdb). `--fresh` empties the directory first, and
//! because deleting is dangerous it only ever deletes a directory that carries the
//! marker: a typo such as `--dir ~ --fresh` is refused rather than obeyed. The marker
//! is also locked for as long as `up` runs, so a second `up` on the same directory
//! fails at once with a clear message instead of PostgreSQL's complaint about its
//! lock file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use microcosm_testkit::ServiceKind;

/// The marker file's name and what it says to someone who finds it.
const MARKER: &str = ".microcosm-up";
const MARKER_TEXT: &str = "This directory holds the state of `microcosm up`: PostgreSQL \
    (postgres/), NATS (nats/) and the service logs (logs/). It is kept between runs; \
    `microcosm up --fresh` empties it, and deleting it by hand is fine while up is not running.\n";

/// The state directory, locked for this run.
#[derive(Debug)]
pub(crate) struct DataDir {
    root: PathBuf,
    /// Holds the lock on the marker for as long as `up` runs.
    _lock: File,
}

impl DataDir {
    /// Opens (creating it if needed) and locks the directory at `path`; with `fresh`,
    /// empties it first. Refuses a non-empty directory that `up` did not create.
    pub(crate) fn open(path: &Path, fresh: bool) -> anyhow::Result<Self> {
        fs::create_dir_all(path).with_context(|| format!("could not create {}", path.display()))?;
        let root = path
            .canonicalize()
            .with_context(|| format!("could not resolve {}", path.display()))?;
        let marker = root.join(MARKER);
        if !marker.is_file() && !is_empty(&root)? {
            bail!(
                "{} is not empty and was not created by `microcosm up` (it has no {MARKER} \
                 file); choose a new or empty directory with `--dir DIR`",
                root.display()
            );
        }
        let lock = lock_marker(&marker)?;
        if fresh {
            empty_except_marker(&root)?;
        }
        Ok(Self { root, _lock: lock })
    }

    /// The directory itself (absolute).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// PostgreSQL's directory: cluster, socket and server log.
    pub(crate) fn postgres(&self) -> PathBuf {
        self.root.join("postgres")
    }

    /// NATS's directory: JetStream store and server log.
    pub(crate) fn nats(&self) -> PathBuf {
        self.root.join("nats")
    }

    /// The spans the local collector received, one JSON object per line
    /// (read by `microcosm trace`).
    pub(crate) fn traces_file(&self) -> PathBuf {
        self.root.join("traces.jsonl")
    }

    /// The latest metric points the local collector received, replaced after
    /// every export (read by `microcosm top`).
    pub(crate) fn metrics_file(&self) -> PathBuf {
        self.root.join("metrics.json")
    }

    /// The directory holding one service's log.
    pub(crate) fn service_logs(&self, kind: ServiceKind) -> PathBuf {
        self.root.join("logs").join(kind.name())
    }
}

fn is_empty(dir: &Path) -> anyhow::Result<bool> {
    let mut entries =
        fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))?;
    Ok(entries.next().is_none())
}

/// Creates (or opens) the marker, writes its explanation and takes an exclusive lock.
fn lock_marker(marker: &Path) -> anyhow::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(marker)
        .with_context(|| format!("could not open {}", marker.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => bail!(
            "another `microcosm up` is using {}: stop it first, or give this one its own \
             `--dir DIR` and `--ports-from PORT`",
            marker.parent().unwrap_or(marker).display()
        ),
        Err(TryLockError::Error(error)) => {
            return Err(error).with_context(|| format!("could not lock {}", marker.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.write_all(MARKER_TEXT.as_bytes()))
        .with_context(|| format!("could not write {}", marker.display()))?;
    Ok(file)
}

/// Deletes everything in `root` but the (locked) marker.
fn empty_except_marker(root: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(root).with_context(|| format!("could not read {}", root.display()))? {
        let path = entry
            .with_context(|| format!("could not read {}", root.display()))?
            .path();
        if path.file_name().is_some_and(|name| name == MARKER) {
            continue;
        }
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.with_context(|| format!("--fresh could not delete {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn a_new_directory_is_created_and_marked() {
        let parent = temp_dir();
        let path = parent.path().join("state");
        let dir = DataDir::open(&path, false).unwrap();
        assert!(dir.root().join(MARKER).is_file());
        assert_eq!(
            dir.service_logs(ServiceKind::Billing),
            dir.root().join("logs/billing")
        );
    }

    #[test]
    fn data_is_kept_without_fresh_and_deleted_with_it() {
        let parent = temp_dir();
        let path = parent.path().join("state");
        let dir = DataDir::open(&path, false).unwrap();
        fs::create_dir_all(dir.postgres().join("data")).unwrap();
        drop(dir);

        let dir = DataDir::open(&path, false).unwrap();
        assert!(dir.postgres().join("data").is_dir(), "kept without --fresh");
        drop(dir);

        let dir = DataDir::open(&path, true).unwrap();
        assert!(!dir.postgres().exists(), "deleted by --fresh");
        assert!(dir.root().join(MARKER).is_file(), "still marked");
    }

    #[test]
    fn a_non_empty_directory_up_did_not_create_is_refused_and_left_alone() {
        let dir = temp_dir();
        fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
        let message = format!("{:#}", DataDir::open(dir.path(), true).unwrap_err());
        assert!(
            message.contains("was not created by `microcosm up`"),
            "{message}"
        );
        assert!(dir.path().join("precious.txt").is_file());
    }

    #[test]
    fn a_directory_in_use_by_another_run_is_refused() {
        let parent = temp_dir();
        let _running = DataDir::open(parent.path(), false).unwrap();
        let message = format!("{:#}", DataDir::open(parent.path(), true).unwrap_err());
        assert!(message.contains("another `microcosm up`"), "{message}");
    }
}
