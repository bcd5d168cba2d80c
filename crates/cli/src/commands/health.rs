//! `microcosm health`: ask services for their `grpc.health.v1` status.
//!
//! Also the container HEALTHCHECK: `microcosm health --url http://127.0.0.1:50051`
//! needs no downloaded probe binary.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::endpoints::{Endpoints, ServiceName};

/// Arguments of `microcosm health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// Services to check (default: all three).
    #[arg(value_enum)]
    services: Vec<ServiceName>,
    /// Check this one URL instead (for container healthchecks).
    #[arg(long, conflicts_with = "services")]
    url: Option<String>,
    /// Give up on a service after this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// Prints each service's status; exit 0 only if every one is SERVING.
pub(crate) async fn run(endpoints: &Endpoints, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let targets: Vec<(&str, String)> = match &args.url {
        Some(url) => vec![("service", url.clone())],
        None => {
            let services = if args.services.is_empty() {
                ServiceName::ALL.to_vec()
            } else {
                args.services.clone()
            };
            services
                .into_iter()
                .map(|service| (service.as_str(), endpoints.url(service).to_owned()))
                .collect()
        }
    };
    let mut all_serving = true;
    for (name, url) in targets {
        let status = match check(&url, timeout).await {
            Ok(status) => status
                .as_str_name()
                .trim_start_matches("SERVING_STATUS_")
                .to_owned(),
            Err(error) => format!("UNREACHABLE ({error:#})"),
        };
        all_serving &= status == "SERVING";
        println!("{name:<10} {url:<28} {status}");
    }
    if !all_serving && args.url.is_none() {
        eprintln!(
            "hint: is the service running? README.md (Run it) shows how to start the services"
        );
    }
    Ok(if all_serving {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn check(url: &str, timeout: Duration) -> anyhow::Result<ServingStatus> {
    let channel = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url} is not a valid URL"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .context("cannot connect")?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .context("health check failed")?;
    Ok(response.into_inner().status())
}
