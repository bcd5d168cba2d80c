//! Where the three services listen, how to connect to them, and what to tell
//! the user when a call to one of them fails.
//!
//! Every client command (`order`, `inventory`, `billing`) connects through
//! [`Endpoints::connect`] and turns a failed call into a [`ServiceCallError`]
//! with [`Connection::call_failed`]. That error is the one place where a gRPC
//! status becomes a message and an exit code, so all commands agree on both:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | the request succeeded (an order that ends CANCELLED is a successful request) |
//! | 1 | the service refused or failed the request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ...): its message is printed as it is |
//! | 2 | usage error: a malformed flag or argument (clap's own code), or a service URL that does not parse |
//! | 3 | the service could not be reached, or answered UNAVAILABLE: nothing was refused, retrying later may work |

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

/// The exit code of a request the service refused or failed.
pub(crate) const EXIT_REFUSED: u8 = 1;
/// The exit code of a usage error; clap uses the same one for malformed flags.
pub(crate) const EXIT_USAGE: u8 = 2;
/// The exit code when a service cannot be reached or says it is unavailable.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;

/// The exit codes above, for the `--help` of every client command.
pub(crate) const EXIT_CODES_HELP: &str = "Exit codes: 0 done; 1 the service refused the request \
     (its message is printed); 2 usage error; 3 the service is unreachable or unavailable.";

/// How long to wait for a TCP connection before calling a service unreachable.
/// Loopback answers at once; a black-holed address should not hang a command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The gRPC endpoints of the services.
#[derive(Debug, Clone, Args)]
pub(crate) struct Endpoints {
    /// The order service.
    #[arg(
        long,
        global = true,
        env = "MICROCOSM_ORDER_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub(crate) order_url: String,
    /// The inventory service.
    #[arg(
        long,
        global = true,
        env = "MICROCOSM_INVENTORY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub(crate) inventory_url: String,
    /// The billing service.
    #[arg(
        long,
        global = true,
        env = "MICROCOSM_BILLING_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub(crate) billing_url: String,
    /// For https:// URLs: the CA that signed the services' certificates
    /// (`microcosm certs` writes ca.pem).
    #[arg(long, global = true, env = "MICROCOSM_TLS_CA", value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// For services that require mutual TLS: the CLI's certificate (cli.pem).
    #[arg(
        long,
        global = true,
        env = "MICROCOSM_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (cli-key.pem).
    #[arg(
        long,
        global = true,
        env = "MICROCOSM_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,
}

/// One of the three services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ServiceName {
    /// The order service (the saga's orchestrator).
    Order,
    /// The inventory service.
    Inventory,
    /// The billing service.
    Billing,
}

impl ServiceName {
    pub(crate) const ALL: [ServiceName; 3] = [Self::Order, Self::Inventory, Self::Billing];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Inventory => "inventory",
            Self::Billing => "billing",
        }
    }

    /// How the user sets this service's URL.
    fn url_setting(self) -> UrlSetting {
        let (flag, env, default) = match self {
            Self::Order => (
                "--order-url",
                "MICROCOSM_ORDER_URL",
                "http://127.0.0.1:50051",
            ),
            Self::Inventory => (
                "--inventory-url",
                "MICROCOSM_INVENTORY_URL",
                "http://127.0.0.1:50052",
            ),
            Self::Billing => (
                "--billing-url",
                "MICROCOSM_BILLING_URL",
                "http://127.0.0.1:50053",
            ),
        };
        UrlSetting { flag, env, default }
    }
}

/// The flag, the environment variable and the default of a service's URL, to
/// name in every message about reaching the service.
struct UrlSetting {
    flag: &'static str,
    env: &'static str,
    default: &'static str,
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Endpoints {
    /// TLS for an https:// URL: verify the service with --tls-ca, and present
    /// --tls-cert/--tls-key when given (services with GRPC_TLS_CA require them).
    fn client_tls(&self) -> Result<ClientTlsConfig, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
        };
        let ca = self.tls_ca.as_ref().ok_or_else(|| {
            "an https:// URL needs --tls-ca (or MICROCOSM_TLS_CA): the CA that signed the \
             services' certificates, e.g. the ca.pem that `microcosm certs` wrote"
                .to_owned()
        })?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(tls)
    }

    /// The URL of `service`.
    pub(crate) fn url(&self, service: ServiceName) -> &str {
        match service {
            ServiceName::Order => &self.order_url,
            ServiceName::Inventory => &self.inventory_url,
            ServiceName::Billing => &self.billing_url,
        }
    }

    /// Opens a channel to `service`, eagerly: a refused connection is reported
    /// here as [`ServiceCallError::Unreachable`], naming the service and how to
    /// start it, instead of surfacing later as a bare UNAVAILABLE.
    pub(crate) async fn connect(
        &self,
        service: ServiceName,
    ) -> Result<Connection, ServiceCallError> {
        let url = self.url(service).to_owned();
        let endpoint =
            Endpoint::from_shared(url.clone()).map_err(|error| ServiceCallError::InvalidUrl {
                service,
                url: url.clone(),
                cause: innermost_cause(&error),
            })?;
        // `Endpoint` accepts any URI, even "127.0.0.1:50051" (read as a scheme
        // and a path); tonic can only dial a URL with a scheme and a host.
        if endpoint.uri().scheme().is_none() || endpoint.uri().host().is_none() {
            return Err(ServiceCallError::InvalidUrl {
                service,
                url,
                cause: "it needs a scheme and a host".to_owned(),
            });
        }
        let endpoint = if endpoint.uri().scheme_str() == Some("https") {
            let tls = self
                .client_tls()
                .map_err(|cause| ServiceCallError::InvalidUrl {
                    service,
                    url: url.clone(),
                    cause,
                })?;
            endpoint
                .tls_config(tls)
                .map_err(|error| ServiceCallError::InvalidUrl {
                    service,
                    url: url.clone(),
                    cause: innermost_cause(&error),
                })?
        } else {
            endpoint
        };
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .connect()
            .await
            .map_err(|error| ServiceCallError::Unreachable {
                service,
                url: url.clone(),
                cause: innermost_cause(&error),
            })?;
        Ok(Connection {
            service,
            url,
            channel,
        })
    }
}

/// An open channel to one service, which knows whom to blame when a call fails.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    service: ServiceName,
    url: String,
    channel: Channel,
}

impl Connection {
    /// The channel, for a generated client (`OrderServiceClient::new(...)`).
    /// Cloning a channel is cheap: clones share the one connection.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Explains a call to this service that ended with `status`.
    pub(crate) fn call_failed(&self, status: Status) -> ServiceCallError {
        match status.code() {
            Code::Unavailable => ServiceCallError::Unavailable {
                service: self.service,
                url: self.url.clone(),
                message: status.message().to_owned(),
            },
            _ => ServiceCallError::Refused {
                service: self.service,
                code: status.code(),
                message: status.message().to_owned(),
            },
        }
    }
}

/// Why a call to a service did not succeed, worded for the person at the terminal.
#[derive(Debug)]
pub(crate) enum ServiceCallError {
    /// The service's URL (flag or environment) is not a URL.
    InvalidUrl {
        service: ServiceName,
        url: String,
        cause: String,
    },
    /// Nothing accepted a connection at the URL.
    Unreachable {
        service: ServiceName,
        url: String,
        cause: String,
    },
    /// The service answered UNAVAILABLE (its database is down, say) or the
    /// connection broke mid-call.
    Unavailable {
        service: ServiceName,
        url: String,
        message: String,
    },
    /// The service answered with any other error status.
    Refused {
        service: ServiceName,
        code: Code,
        message: String,
    },
}

impl ServiceCallError {
    /// The process exit code for this failure (see the module documentation).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidUrl { .. } => EXIT_USAGE,
            Self::Unreachable { .. } | Self::Unavailable { .. } => EXIT_UNREACHABLE,
            Self::Refused { .. } => EXIT_REFUSED,
        }
    }

    /// Whether the service's own message says everything: these codes carry
    /// a message written for the caller (naming the field, the order, ...).
    fn is_explained_by_service(code: Code) -> bool {
        matches!(
            code,
            Code::InvalidArgument
                | Code::NotFound
                | Code::AlreadyExists
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::Aborted
        )
    }
}

impl fmt::Display for ServiceCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl {
                service,
                url,
                cause,
            } => {
                let UrlSetting { flag, env, default } = service.url_setting();
                write!(
                    f,
                    "{url:?} is not a valid URL for the {service} service ({cause}): \
                     pass one like {default} with {flag} or {env}"
                )
            }
            Self::Unreachable {
                service,
                url,
                cause,
            } => {
                let UrlSetting { flag, env, .. } = service.url_setting();
                write!(
                    f,
                    "cannot reach the {service} service at {url} ({cause}): is it running? \
                     Start the local stack with `microcosm up`, or point {flag} / {env} at it."
                )
            }
            Self::Unavailable {
                service,
                url,
                message,
            } => write!(
                f,
                "the {service} service at {url} is unavailable: {message}; retry later"
            ),
            Self::Refused { code, message, .. } if Self::is_explained_by_service(*code) => {
                f.write_str(message)
            }
            Self::Refused {
                service,
                code,
                message,
            } => write!(f, "the {service} service failed: {message} ({code:?})"),
        }
    }
}

/// Deliberately no `source()`: the message above is complete, and a printed
/// cause chain would only repeat it in tonic's words.
impl std::error::Error for ServiceCallError {}

/// The most specific message in an error's cause chain: for a refused
/// connection, "Connection refused (os error 111)" rather than "transport error".
fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}
