//! Optional TLS and mutual TLS for gRPC, configured by three files:
//!
//! - `GRPC_TLS_CERT` and `GRPC_TLS_KEY` (PEM, both or neither): the service's own
//!   certificate. With them the server speaks TLS only.
//! - `GRPC_TLS_CA` (PEM, optional): the CA that signs the certificates of the
//!   system. With it the server *requires* a client certificate signed by it
//!   (mutual TLS), and the service's own calls to other services (order's to
//!   inventory and billing) verify the server against it and present the
//!   service's certificate as their client certificate.
//!
//! `microcosm certs` writes a development CA and a certificate per service (and
//! one for the CLI) that work with these variables; docs/security.md shows how.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("could not read {variable}={}", path.display())]
    Read {
        /// The variable naming the file.
        variable: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Calling another service over TLS needs a CA to verify it.
    #[error(
        "GRPC_TLS_CA is not set: it is needed to verify the services this one calls over https"
    )]
    NoCa,
}

/// The service's TLS files (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `GRPC_TLS_CERT`: the service's certificate chain.
    pub cert: PathBuf,
    /// `GRPC_TLS_KEY`: its private key.
    pub key: PathBuf,
    /// `GRPC_TLS_CA`: the CA of the system; set, it turns on mutual TLS.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The server side: TLS with the service's certificate, and a client
    /// certificate signed by `GRPC_TLS_CA` required when the CA is set.
    ///
    /// # Errors
    /// If a file cannot be read.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        let config = ServerTlsConfig::new().identity(self.identity()?);
        Ok(match &self.ca {
            Some(ca) => config.client_ca_root(Certificate::from_pem(read("GRPC_TLS_CA", ca)?)),
            None => config,
        })
    }

    /// The client side, for the service's own calls: verify the server against
    /// `GRPC_TLS_CA`, present the service's certificate.
    ///
    /// # Errors
    /// If `GRPC_TLS_CA` is not set or a file cannot be read.
    pub fn client_config(&self) -> Result<ClientTlsConfig, TlsError> {
        let ca = self.ca.as_ref().ok_or(TlsError::NoCa)?;
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("GRPC_TLS_CA", ca)?))
            .identity(self.identity()?))
    }

    fn identity(&self) -> Result<Identity, TlsError> {
        Ok(Identity::from_pem(
            read("GRPC_TLS_CERT", &self.cert)?,
            read("GRPC_TLS_KEY", &self.key)?,
        ))
    }
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        variable,
        path: path.to_owned(),
        source,
    })
}
