//! `microcosm fault`: list, set and clear the services' runtime fault flags
//! (the `shop.admin.v1.FaultInjectionService` API every service serves).
//!
//! Flags are stored in each service's database, so a flag holds for all its
//! replicas and across restarts. docs/scenarios.md says what each one does and
//! what you should see.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use microcosm_proto::admin::fault_injection_service_client::FaultInjectionServiceClient;
use microcosm_proto::admin::{ClearFaultsRequest, FaultFlag, ListFaultsRequest, SetFaultRequest};
use tonic::transport::{Channel, Endpoint};

use crate::endpoints::{Endpoints, ServiceName};

/// Subcommands of `microcosm fault`.
#[derive(Debug, Subcommand)]
pub(crate) enum FaultCommand {
    /// Show every flag of the services (default: all three).
    List {
        /// Services to show.
        #[arg(value_enum)]
        services: Vec<ServiceName>,
    },
    /// Set one flag of one service; 0 switches it off.
    ///
    /// Flags: decline-rate (billing, percent), latency (ms), unavailable (0/1),
    /// drop-acks (percent), crash (the next N messages).
    Set {
        /// The service.
        #[arg(value_enum)]
        service: ServiceName,
        /// The flag: a name from `microcosm fault list` or a short alias.
        flag: String,
        /// The value.
        value: u32,
    },
    /// Switch every flag off (default: on all three services).
    Clear {
        /// Services to clear.
        #[arg(value_enum)]
        services: Vec<ServiceName>,
    },
}

/// Short names people type, and the flags they mean.
const ALIASES: [(&str, &str); 6] = [
    ("decline-rate", "decline_rate_percent"),
    ("latency", "added_latency_ms"),
    ("unavailable", "unavailable"),
    ("drop-acks", "drop_ack_percent"),
    ("crash", "crash_on_next_messages"),
    ("lose-replies", "lose_next_replies"),
];

/// Runs the subcommand.
pub(crate) async fn run(endpoints: &Endpoints, command: FaultCommand) -> anyhow::Result<ExitCode> {
    match command {
        FaultCommand::List { services } => {
            for service in chosen(services) {
                let response = client(endpoints, service)
                    .await?
                    .list_faults(ListFaultsRequest {})
                    .await
                    .map_err(|status| refused(service, status))?;
                print_flags(service, &response.into_inner().flags);
            }
        }
        FaultCommand::Set {
            service,
            flag,
            value,
        } => {
            let name = flag_name(&flag);
            let response = client(endpoints, service)
                .await?
                .set_fault(SetFaultRequest { name, value })
                .await
                .map_err(|status| refused(service, status))?;
            if let Some(flag) = response.into_inner().flag {
                print_flags(service, &[flag]);
            }
        }
        FaultCommand::Clear { services } => {
            for service in chosen(services) {
                let response = client(endpoints, service)
                    .await?
                    .clear_faults(ClearFaultsRequest {})
                    .await
                    .map_err(|status| refused(service, status))?;
                print_flags(service, &response.into_inner().flags);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn chosen(services: Vec<ServiceName>) -> Vec<ServiceName> {
    if services.is_empty() {
        ServiceName::ALL.to_vec()
    } else {
        services
    }
}

fn flag_name(typed: &str) -> String {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == typed)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| typed.replace('-', "_"))
}

async fn client(
    endpoints: &Endpoints,
    service: ServiceName,
) -> anyhow::Result<FaultInjectionServiceClient<Channel>> {
    let url = endpoints.url(service);
    let channel = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url} is not a valid URL"))?
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot reach the {} service at {url}: is it running? Start the local stack with `microcosm up`",
                service.as_str()
            )
        })?;
    Ok(FaultInjectionServiceClient::new(channel))
}

fn refused(service: ServiceName, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "the {} service refused: {}",
        service.as_str(),
        status.message()
    )
}

fn print_flags(service: ServiceName, flags: &[FaultFlag]) {
    for flag in flags {
        let state = if flag.value == 0 {
            "off".to_owned()
        } else {
            flag.value.to_string()
        };
        println!(
            "{:<10} {:<24} {:>6}  {}",
            service.as_str(),
            flag.name,
            state,
            flag.description
        );
    }
}
