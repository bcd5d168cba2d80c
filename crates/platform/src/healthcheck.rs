//! `<service> healthcheck`: the service binary checking a running instance of
//! itself, for container health checks (Docker's HEALTHCHECK, compose's
//! `healthcheck:`) that have no shell and no grpc probe binary to run.
//!
//! It reads the same configuration as the service, calls `grpc.health.v1.Health/Check`
//! for the whole server on the service's own gRPC port over loopback, prints the
//! status, and exits 0 only for SERVING.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tonic::transport::{ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::tls::TlsFiles;

/// The whole check, connection included, must finish within this (Docker's
/// timeout is 3 s in our images).
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The address to check for a service listening on `listen`: loopback for a
/// wildcard listen address, the address itself otherwise.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Checks the service listening on `listen` (over TLS, presenting the service's
/// own certificate, when `tls` is set); exit 0 if SERVING, 1 otherwise.
pub async fn run(listen: SocketAddr, tls: Option<&TlsFiles>) -> ExitCode {
    let addr = probe_addr(listen);
    let tls = match tls.map(TlsFiles::client_config).transpose() {
        Ok(tls) => tls,
        Err(error) => {
            println!("TLS CONFIGURATION ({addr}): {error}");
            return ExitCode::FAILURE;
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, check(addr, tls)).await {
        Ok(Ok(ServingStatus::Serving)) => {
            println!("SERVING ({addr})");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            println!("{} ({addr})", status.as_str_name());
            ExitCode::FAILURE
        }
        Ok(Err(error)) => {
            println!("UNREACHABLE ({addr}): {error}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("NO ANSWER within {CHECK_TIMEOUT:?} ({addr})");
            ExitCode::FAILURE
        }
    }
}

async fn check(
    addr: SocketAddr,
    tls: Option<ClientTlsConfig>,
) -> Result<ServingStatus, Box<dyn std::error::Error>> {
    let channel = match tls {
        Some(tls) => Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?,
        None => Endpoint::from_shared(format!("http://{addr}"))?,
    }
    .connect()
    .await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        let probe = |listen: &str| probe_addr(listen.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:50051"), "127.0.0.1:50051");
        assert_eq!(probe("[::]:50052"), "[::1]:50052");
        assert_eq!(probe("10.1.2.3:50053"), "10.1.2.3:50053");
    }
}
