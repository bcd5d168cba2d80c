//! Each service's environment under `microcosm up`: its file from `deploy/env/`, with
//! the few values that depend on where things run replaced by this machine's.
//!
//! The files are the configuration docker compose mounts with `env_file:`, so there is
//! one source of truth: saga timings, outbox polling, consumer redelivery, the log
//! filter and the demo data flag are used exactly as written. `up` overrides only:
//!
//! - `DATABASE_URL` and `MIGRATION_DATABASE_URL`: the local PostgreSQL is on a free
//!   port rather than `order-db:5432` (same roles, passwords and database: the files
//!   match the test kit's provisioning);
//! - `NATS_URL`: the local nats-server, also on a free port;
//! - `GRPC_LISTEN_ADDR`: `127.0.0.1:<port>` from `--ports-from`, loopback only, since a
//!   stack with demo passwords should not be reachable from the network;
//! - `INVENTORY_GRPC_URL`, `BILLING_GRPC_URL` (order only): where the participants
//!   listen on this machine rather than compose's `inventory:50052`;
//! - `LOG_FORMAT=json`: the logs go to files, where JSON lines stay searchable with
//!   `jq`, whatever the file chose for a terminal.
//!
//! The files are built into the binary so that `microcosm up` works from any
//! directory; `--env-dir DIR` reads them from disk instead, to try a change without
//! rebuilding.

use std::path::PathBuf;

use anyhow::Context as _;
use microcosm_testkit::ServiceKind;
use microcosm_testkit::env_file::EnvFile;

use super::ports::ServicePorts;

/// The repository's `deploy/env/<service>.env`, embedded at build time.
fn built_in_text(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Order => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/env/order.env"
        )),
        ServiceKind::Inventory => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/env/inventory.env"
        )),
        ServiceKind::Billing => include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/env/billing.env"
        )),
    }
}

/// Where the environment files come from.
#[derive(Clone, Debug)]
pub(crate) enum EnvFiles {
    /// The copies built into the binary.
    BuiltIn,
    /// `<dir>/<service>.env` on disk (`--env-dir`).
    Dir(PathBuf),
}

impl EnvFiles {
    /// Reads and parses the file of `kind`.
    pub(crate) fn read(&self, kind: ServiceKind) -> anyhow::Result<EnvFile> {
        let file_name = format!("{}.env", kind.name());
        match self {
            EnvFiles::BuiltIn => EnvFile::parse(
                &format!("deploy/env/{file_name} (built in)"),
                built_in_text(kind),
            ),
            EnvFiles::Dir(dir) => {
                let path = dir.join(&file_name);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("could not read {}", path.display()))?;
                EnvFile::parse(&path.display().to_string(), &text)
            }
        }
    }
}

/// The three services' files, read and parsed before anything starts, so that a
/// malformed line stops `up` at once rather than after PostgreSQL has started.
#[derive(Clone, Debug)]
pub(crate) struct ServiceEnvFiles {
    order: EnvFile,
    inventory: EnvFile,
    billing: EnvFile,
}

impl ServiceEnvFiles {
    /// Reads all three files from `source`.
    pub(crate) fn read(source: &EnvFiles) -> anyhow::Result<Self> {
        Ok(Self {
            order: source.read(ServiceKind::Order)?,
            inventory: source.read(ServiceKind::Inventory)?,
            billing: source.read(ServiceKind::Billing)?,
        })
    }

    /// The file of `kind`.
    pub(crate) fn file(&self, kind: ServiceKind) -> &EnvFile {
        match kind {
            ServiceKind::Order => &self.order,
            ServiceKind::Inventory => &self.inventory,
            ServiceKind::Billing => &self.billing,
        }
    }
}

/// The environment `up` starts `kind` with: its file, with the host-dependent
/// values replaced by this machine's (see the module doc for which and why).
pub(crate) fn local_service_env(
    kind: ServiceKind,
    mut file: EnvFile,
    database_url: String,
    migration_database_url: String,
    nats_url: &str,
    ports: ServicePorts,
    otlp_endpoint: &str,
) -> Vec<(String, String)> {
    file.set("DATABASE_URL", database_url);
    file.set("MIGRATION_DATABASE_URL", migration_database_url);
    file.set("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint.to_owned());
    file.set("NATS_URL", nats_url.to_owned());
    file.set("GRPC_LISTEN_ADDR", ports.listen_addr(kind).to_string());
    if kind == ServiceKind::Order {
        file.set("INVENTORY_GRPC_URL", ports.url(ServiceKind::Inventory));
        file.set("BILLING_GRPC_URL", ports.url(ServiceKind::Billing));
    }
    file.set("LOG_FORMAT", "json".to_owned());
    file.into_variables()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn every_built_in_file_parses_and_sets_the_shared_configuration() {
        for kind in ServiceKind::all() {
            let file = EnvFiles::BuiltIn.read(kind).unwrap();
            for name in [
                "DATABASE_URL",
                "NATS_URL",
                "GRPC_LISTEN_ADDR",
                "SEED_DEMO_DATA",
            ] {
                assert!(file.get(name).is_some(), "{kind}.env sets no {name}");
            }
            assert_eq!(file.get("SEED_DEMO_DATA"), Some("true"), "{kind}.env");
        }
    }

    #[test]
    fn built_in_database_urls_use_the_role_and_password_the_kit_provisions() {
        for kind in ServiceKind::all() {
            let file = EnvFiles::BuiltIn.read(kind).unwrap();
            let database = kind.database();
            let runtime = format!(
                "postgres://{}:{}@{kind}-db:5432/{}",
                database.app_role, database.app_password, database.database
            );
            assert_eq!(file.get("DATABASE_URL"), Some(runtime.as_str()));
            let owner = format!(
                "postgres://{}:{}@{kind}-db:5432/{}",
                database.role, database.password, database.database
            );
            assert_eq!(file.get("MIGRATION_DATABASE_URL"), Some(owner.as_str()));
        }
    }

    #[test]
    fn local_wiring_replaces_only_the_host_dependent_values() {
        let file = EnvFiles::BuiltIn.read(ServiceKind::Order).unwrap();
        let untouched: Vec<(String, String)> = file
            .clone()
            .into_variables()
            .into_iter()
            .filter(|(name, _)| {
                ![
                    "DATABASE_URL",
                    "MIGRATION_DATABASE_URL",
                    "NATS_URL",
                    "GRPC_LISTEN_ADDR",
                    "INVENTORY_GRPC_URL",
                    "BILLING_GRPC_URL",
                    "LOG_FORMAT",
                ]
                .contains(&name.as_str())
            })
            .collect();
        let ports = ServicePorts::from_first(41000).unwrap();
        let env = local_service_env(
            ServiceKind::Order,
            file,
            "postgres://local".to_owned(),
            "postgres://local-owner".to_owned(),
            "nats://127.0.0.1:4999",
            ports,
            "http://127.0.0.1:4317",
        );

        assert_eq!(value(&env, "DATABASE_URL"), Some("postgres://local"));
        assert_eq!(
            value(&env, "MIGRATION_DATABASE_URL"),
            Some("postgres://local-owner")
        );
        assert_eq!(value(&env, "NATS_URL"), Some("nats://127.0.0.1:4999"));
        assert_eq!(value(&env, "GRPC_LISTEN_ADDR"), Some("127.0.0.1:41000"));
        assert_eq!(
            value(&env, "INVENTORY_GRPC_URL"),
            Some("http://127.0.0.1:41001")
        );
        assert_eq!(
            value(&env, "BILLING_GRPC_URL"),
            Some("http://127.0.0.1:41002")
        );
        assert_eq!(value(&env, "LOG_FORMAT"), Some("json"));
        assert!(!untouched.is_empty());
        for (name, expected) in &untouched {
            assert_eq!(value(&env, name), Some(expected.as_str()), "{name}");
        }
    }

    #[test]
    fn only_order_is_told_where_the_participants_are() {
        let file = EnvFiles::BuiltIn.read(ServiceKind::Billing).unwrap();
        let ports = ServicePorts::from_first(41000).unwrap();
        let env = local_service_env(
            ServiceKind::Billing,
            file,
            "postgres://local".to_owned(),
            "postgres://local-owner".to_owned(),
            "nats://local",
            ports,
            "http://127.0.0.1:4317",
        );
        assert_eq!(value(&env, "GRPC_LISTEN_ADDR"), Some("127.0.0.1:41002"));
        assert_eq!(value(&env, "INVENTORY_GRPC_URL"), None);
    }

    #[test]
    fn files_are_read_from_env_dir_when_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inventory.env"), "RUST_LOG=debug\n").unwrap();
        let files = EnvFiles::Dir(dir.path().to_path_buf());
        let file = files.read(ServiceKind::Inventory).unwrap();
        assert_eq!(file.get("RUST_LOG"), Some("debug"));
        let missing = format!("{:#}", files.read(ServiceKind::Order).unwrap_err());
        assert!(missing.contains("order.env"), "{missing}");
    }
}
