//! The three gRPC ports `microcosm up` gives the services, and making sure they are
//! free before anything starts.
//!
//! The services listen on consecutive ports from `--ports-from` (order, inventory,
//! billing: 50051–50053 by default, the ports every CLI command assumes). A port
//! already taken is found up front, by binding it, and reported with the flag that
//! changes it, instead of surfacing as a service that dies at start with "address in
//! use" buried in its log.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use anyhow::{Context as _, bail};
use microcosm_testkit::ServiceKind;

/// The default of `--ports-from`: the ports the CLI's other commands default to.
pub(crate) const DEFAULT_FIRST_PORT: u16 = 50051;

/// The largest `--ports-from`: billing takes two ports above it.
pub(crate) const LAST_FIRST_PORT: u16 = u16::MAX - 2;

/// The loopback gRPC ports of the three services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServicePorts {
    first: u16,
}

/// The service ports, held open so that nothing else can take them (in particular not
/// the free ports the test kit picks for PostgreSQL and NATS) until the services start.
#[derive(Debug)]
pub(crate) struct PortReservation {
    _listeners: Vec<TcpListener>,
}

impl ServicePorts {
    /// Order on `first`, inventory on `first + 1`, billing on `first + 2`.
    pub(crate) fn from_first(first: u16) -> anyhow::Result<Self> {
        if first > LAST_FIRST_PORT {
            bail!(
                "--ports-from {first} leaves no room for three ports (at most {LAST_FIRST_PORT})"
            );
        }
        Ok(Self { first })
    }

    /// Whether these are the ports the CLI's other commands use without flags.
    pub(crate) fn are_defaults(self) -> bool {
        self.first == DEFAULT_FIRST_PORT
    }

    /// The gRPC port of `kind`.
    pub(crate) fn port(self, kind: ServiceKind) -> u16 {
        match kind {
            ServiceKind::Order => self.first,
            ServiceKind::Inventory => self.first + 1,
            ServiceKind::Billing => self.first + 2,
        }
    }

    /// Where `kind` listens: loopback only, since the local stack runs with demo
    /// passwords and should not be reachable from the network.
    pub(crate) fn listen_addr(self, kind: ServiceKind) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port(kind)))
    }

    /// The URL clients use for `kind`, e.g. `http://127.0.0.1:50051`.
    pub(crate) fn url(self, kind: ServiceKind) -> String {
        format!("http://{}", self.listen_addr(kind))
    }

    /// Binds all three ports, failing with the port, its service and the flag to
    /// change when one is taken. Drop the reservation right before the services start.
    pub(crate) fn reserve(self) -> anyhow::Result<PortReservation> {
        let mut listeners = Vec::new();
        for kind in [
            ServiceKind::Order,
            ServiceKind::Inventory,
            ServiceKind::Billing,
        ] {
            let port = self.port(kind);
            match TcpListener::bind(self.listen_addr(kind)) {
                Ok(listener) => listeners.push(listener),
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => bail!(
                    "port {port} (the {kind} service's gRPC port) is already in use: is another \
                     `microcosm up` running? Stop it, or choose other ports with \
                     `--ports-from PORT` (order PORT, inventory PORT+1, billing PORT+2)"
                ),
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!(
                            "cannot listen on port {port} (the {kind} service's gRPC port); \
                             choose other ports with `--ports-from PORT`"
                        )
                    });
                }
            }
        }
        Ok(PortReservation {
            _listeners: listeners,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_take_consecutive_ports_order_inventory_billing() {
        let ports = ServicePorts::from_first(40100).unwrap();
        assert_eq!(ports.port(ServiceKind::Order), 40100);
        assert_eq!(ports.port(ServiceKind::Inventory), 40101);
        assert_eq!(ports.port(ServiceKind::Billing), 40102);
        assert_eq!(ports.url(ServiceKind::Billing), "http://127.0.0.1:40102");
    }

    #[test]
    fn a_first_port_without_room_for_three_is_refused() {
        assert!(ServicePorts::from_first(LAST_FIRST_PORT).is_ok());
        assert!(ServicePorts::from_first(u16::MAX).is_err());
    }

    #[test]
    fn a_taken_port_is_reported_with_its_service_and_the_flag_to_change_it() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        // The taken port is order's: the first one `reserve` binds, so no port that a
        // concurrently running test happens to hold can be reported instead.
        let ports = ServicePorts::from_first(taken_port).unwrap();
        let message = format!("{:#}", ports.reserve().expect_err("a taken port"));
        assert!(message.contains(&format!("port {taken_port}")), "{message}");
        assert!(message.contains("the order service"), "{message}");
        assert!(message.contains("--ports-from"), "{message}");
    }
}
