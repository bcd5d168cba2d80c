//! Starting the local stack: PostgreSQL and NATS on free ports with their data in the
//! state directory, a database per service, then inventory and billing, then order.
//!
//! The test kit does the process management, exactly as for the integration tests:
//! the same readiness checks, the same "why did it not start" diagnostics, and the
//! same guarantee that a failed start leaves nothing running (each handle stops its
//! process when dropped, and the servers get a graceful stop so their kept data needs
//! no recovery on the next run).

use anyhow::{Context as _, bail};
use microcosm_testkit::nats::SyncInterval;
use microcosm_testkit::{
    Nats, Postgres, ServiceKind, ServiceOptions, ServiceProcess, Stack, free_port,
    nats_server_binary, postgres_bin_dir, service_binary,
};

use super::data_dir::DataDir;
use super::ports::{PortReservation, ServicePorts};
use super::service_env::{ServiceEnvFiles, local_service_env};

/// Everything `up` needs to start, decided before anything starts.
#[derive(Debug)]
pub(crate) struct StartPlan<'a> {
    /// The state directory.
    pub(crate) data_dir: &'a DataDir,
    /// The services' gRPC ports.
    pub(crate) ports: ServicePorts,
    /// Each service's environment file, parsed.
    pub(crate) env_files: ServiceEnvFiles,
    /// Where the services export their spans: the collector `up` runs.
    pub(crate) otlp_endpoint: String,
    /// JetStream's disk sync, if not the server's default.
    pub(crate) nats_sync_interval: Option<SyncInterval>,
}

/// Fails, naming every missing program and how to install it, if PostgreSQL, nats-server
/// or a service binary cannot be found: all at once, so one round of installing fixes it.
pub(crate) fn check_programs_installed() -> anyhow::Result<()> {
    let missing: Vec<String> = [postgres_bin_dir().err(), nats_server_binary().err()]
        .into_iter()
        .chain(ServiceKind::all().map(|kind| service_binary(kind).err()))
        .flatten()
        .map(|error| format!("{error:#}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "microcosm up needs programs it cannot find:\n  - {}",
            missing.join("\n  - ")
        );
    }
    Ok(())
}

impl StartPlan<'_> {
    /// Starts everything and returns once all three services report SERVING.
    ///
    /// `reservation` holds the service ports until the services are about to start,
    /// so that neither the free ports picked for PostgreSQL and NATS nor anything else
    /// can take them meanwhile.
    pub(crate) async fn start(self, reservation: PortReservation) -> anyhow::Result<Stack> {
        println!(
            "starting PostgreSQL and NATS (data in {})",
            self.data_dir.root().display()
        );
        let (postgres, nats) = tokio::try_join!(
            Postgres::start_in(self.data_dir.postgres(), free_port()?),
            Nats::start_in(
                self.data_dir.nats(),
                free_port()?,
                self.nats_sync_interval.clone()
            ),
        )?;
        for kind in ServiceKind::all() {
            postgres
                .provision(&kind.database())
                .await
                .with_context(|| format!("could not create the {kind} database"))?;
        }
        drop(reservation);

        println!("starting inventory and billing (migrations, demo data)");
        let (inventory, billing) = tokio::try_join!(
            self.start_service(ServiceKind::Inventory, &postgres, &nats),
            self.start_service(ServiceKind::Billing, &postgres, &nats),
        )?;
        println!("starting order");
        let order = self
            .start_service(ServiceKind::Order, &postgres, &nats)
            .await?;
        Ok(Stack::from_parts(order, inventory, billing, postgres, nats))
    }

    /// Starts one service with its file's configuration wired to this machine, its log
    /// in the state directory, and waits until it reports SERVING.
    async fn start_service(
        &self,
        kind: ServiceKind,
        postgres: &Postgres,
        nats: &Nats,
    ) -> anyhow::Result<ServiceProcess> {
        let env = local_service_env(
            kind,
            self.env_files.file(kind).clone(),
            postgres.service_url(&kind.database()),
            postgres.owner_url(&kind.database()),
            &nats.service_url(kind),
            self.ports,
            &self.otlp_endpoint,
        );
        let options = ServiceOptions {
            binary: None,
            dir: Some(self.data_dir.service_logs(kind)),
            port: Some(self.ports.port(kind)),
            spawn_only: false,
        };
        ServiceProcess::start_with(kind, env, options)
            .await
            .with_context(|| format!("the {kind} service did not start"))
    }
}
