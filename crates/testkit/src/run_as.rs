//! Running PostgreSQL as the `postgres` system user when the kit itself runs as root.
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root. Rather than ask
//! everyone to create an unprivileged user, the kit switches to the one the PostgreSQL
//! package already created, and hands it the directories it needs.

use std::os::unix::fs::{MetadataExt as _, chown};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use nix::unistd::{Gid, Uid, User};

/// The account the PostgreSQL packages create and that owns a cluster's files.
const POSTGRES_USER: &str = "postgres";

/// An unprivileged user that a child process is switched to before it starts.
#[derive(Clone, Debug)]
pub(crate) struct RunAs {
    name: String,
    uid: Uid,
    gid: Gid,
}

impl RunAs {
    /// The `postgres` user when this process runs as root, `None` otherwise (then the
    /// server simply runs as the current user).
    pub(crate) fn postgres_if_root() -> anyhow::Result<Option<Self>> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let user = User::from_name(POSTGRES_USER)
            .context("could not look up the `postgres` system user")?
            .context(
                "running as root, but there is no `postgres` system user to run PostgreSQL \
                 as (`apt-get install postgresql` creates it)",
            )?;
        Ok(Some(Self {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
        }))
    }

    /// Makes `command` switch to this user (and drop root's groups) before exec.
    pub(crate) fn apply(&self, command: &mut Command) {
        command.uid(self.uid.as_raw()).gid(self.gid.as_raw());
    }

    /// Makes this user the owner of `path`, so the server can write there.
    pub(crate) fn give(&self, path: &Path) -> anyhow::Result<()> {
        chown(path, Some(self.uid.as_raw()), Some(self.gid.as_raw())).with_context(|| {
            format!(
                "could not hand {} to the `{}` user",
                path.display(),
                self.name
            )
        })
    }

    /// Fails with a clear message when some directory above `path` is closed to this
    /// user: otherwise initdb would fail later with a bare "Permission denied" (as
    /// happens for any directory under root's 0700 home).
    pub(crate) fn ensure_can_reach(&self, path: &Path) -> anyhow::Result<()> {
        for ancestor in path.ancestors().skip(1) {
            let Ok(metadata) = ancestor.metadata() else {
                continue;
            };
            let mode = metadata.mode();
            let searchable = if metadata.uid() == self.uid.as_raw() {
                mode & 0o100 != 0
            } else if metadata.gid() == self.gid.as_raw() {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !searchable {
                bail!(
                    "PostgreSQL runs as the `{}` user, which cannot enter {}: \
                     make it searchable (`chmod o+x`) or choose a directory elsewhere",
                    self.name,
                    ancestor.display()
                );
            }
        }
        Ok(())
    }
}
