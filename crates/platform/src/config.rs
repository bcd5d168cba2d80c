//! Configuration from the environment, read in one place and checked all at once.
//!
//! Services read variables through [`EnvSource`], never `std::env::var` directly,
//! so tests can pass a `HashMap` instead of mutating the process environment.
//! [`ConfigReader`] collects every missing or malformed variable before it fails,
//! so a misconfigured deployment is fixed in one round instead of one variable at
//! a time.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::telemetry::{LogFormat, TelemetryConfig};
use microcosm_messaging::outbox::SweepSettings;

/// Where configuration values come from.
pub trait EnvSource {
    /// The value of `name`, or `None` if it is unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl EnvSource for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|value| (*value).to_owned())
    }
}

/// One variable that is missing or cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The environment variable's name.
    pub variable: String,
    /// What is wrong and what a valid value looks like.
    pub problem: String,
}

/// Every problem found while reading a service's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order the variables were read.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration (see README.md, \"Configuration\"):"
        )?;
        for problem in &self.problems {
            writeln!(f, "  {}: {}", problem.variable, problem.problem)?;
        }
        Ok(())
    }
}

/// Reads typed values from an [`EnvSource`], remembering every problem.
pub struct ConfigReader<'a> {
    env: &'a dyn EnvSource,
    problems: Vec<ConfigProblem>,
}

impl<'a> ConfigReader<'a> {
    /// A reader over `env`.
    pub fn new(env: &'a dyn EnvSource) -> Self {
        Self {
            env,
            problems: Vec::new(),
        }
    }

    /// A variable that must be set; `expected` describes a valid value.
    pub fn required<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        match self.value(name) {
            Some(raw) => self.parse(name, &raw, expected),
            None => {
                self.problem(name, format!("is not set; expected {expected}"));
                None
            }
        }
    }

    /// A variable with a default; `expected` describes a valid value.
    pub fn optional<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.value(name) {
            Some(raw) => self.parse(name, &raw, expected).unwrap_or(default),
            None => default,
        }
    }

    /// A variable that may be unset, with no default.
    pub fn maybe<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        let raw = self.value(name)?;
        self.parse(name, &raw, expected)
    }

    /// A boolean flag: `true`/`false`, `1`/`0`, `yes`/`no`.
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.value(name).map(|raw| raw.to_ascii_lowercase()) {
            None => default,
            Some(raw) => match raw.as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.problem(name, format!("is {raw:?}; expected true or false"));
                    default
                }
            },
        }
    }

    /// A duration in whole milliseconds.
    pub fn millis(&mut self, name: &str, default: Duration) -> Duration {
        let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.optional(name, default_ms, "a whole number of milliseconds"))
    }

    /// Records a problem found by the caller's own checks.
    pub fn problem(&mut self, name: &str, problem: String) {
        self.problems.push(ConfigProblem {
            variable: name.to_owned(),
            problem,
        });
    }

    /// Ends reading: `Ok` if no problem was found.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }

    /// The trimmed value; an empty value counts as unset.
    fn value(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .map(|raw| raw.trim().to_owned())
            .filter(|raw| !raw.is_empty())
    }

    fn parse<T: FromStr>(&mut self, name: &str, raw: &str, expected: &str) -> Option<T> {
        match raw.parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.problem(name, format!("is {raw:?}; expected {expected}"));
                None
            }
        }
    }
}

/// A PostgreSQL connection URL whose password never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The full URL, password included, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!("{raw:?} is not a postgres:// URL"))
        }
    }
}

impl fmt::Display for DatabaseUrl {
    /// Shows the URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str("***");
        };
        match rest.split_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or_default();
                write!(f, "{scheme}://{user}:***@{host}")
            }
            None => write!(f, "{scheme}://{rest}"),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// What every service needs, whatever its domain. Each service's own `Config`
/// holds one of these plus its own settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `DATABASE_URL`: the service's own database, connected as its runtime role
    /// (row access only: no DDL).
    pub database_url: DatabaseUrl,
    /// `MIGRATION_DATABASE_URL` (optional): the same database as the role that owns
    /// it. Migrations and demo data run over it at start, then it is closed; without
    /// it they run over `DATABASE_URL`, which must then be allowed DDL.
    pub migration_database_url: Option<DatabaseUrl>,
    /// `DATABASE_MAX_CONNECTIONS`: the pool's size (default 20: room for the
    /// consumers' concurrent handlers, the relay and the API at once).
    pub database_max_connections: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS`: how long start-up waits for the database (default 30 s).
    pub database_connect_timeout: Duration,
    /// `NATS_URL`: the NATS server with JetStream, e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// `GRPC_LISTEN_ADDR`: where the gRPC server listens (default `0.0.0.0:<service port>`).
    pub grpc_listen_addr: SocketAddr,
    /// `GRPC_MAX_MESSAGE_BYTES` (default 1 MiB) and `GRPC_REQUEST_TIMEOUT_MS`
    /// (default 60 s): the largest request message and the longest call accepted.
    pub grpc_limits: crate::grpc::GrpcLimits,
    /// `GRPC_TLS_CERT`, `GRPC_TLS_KEY` and `GRPC_TLS_CA`: TLS, and with the CA
    /// mutual TLS, for the service's gRPC (see [`crate::tls`]).
    pub grpc_tls: Option<crate::tls::TlsFiles>,
    /// `SEED_DEMO_DATA`: load the demo catalogue / accounts at start (default false).
    pub seed_demo_data: bool,
    /// `SHUTDOWN_GRACE_MS`: how long in-flight work may run after SIGTERM (default 10 s).
    pub shutdown_grace: Duration,
    /// `HEALTH_PROBE_INTERVAL_MS`: how often database and NATS reachability is checked (default 1 s).
    pub health_probe_interval: Duration,
    /// Logging and tracing settings (`LOG_FORMAT`, `RUST_LOG`, `OTEL_*`).
    pub telemetry: TelemetryConfig,
    /// Outbox relay and consumer settings.
    pub messaging: MessagingConfig,
}

/// How the service publishes and consumes.
#[derive(Debug, Clone, Copy)]
pub struct MessagingConfig {
    /// `OUTBOX_POLL_INTERVAL_MS` (default 500), `OUTBOX_SWEEP_GRACE_MS` (default
    /// 2000) and `OUTBOX_RETENTION_MS` (default 300000): how often the sweeper
    /// runs, how old a row it publishes must be (what was not dispatched after
    /// its commit), and how long published rows are kept.
    pub sweep: SweepSettings,
    /// `CONSUMER_MAX_DELIVER` (default 10): deliveries before a failing message is dead-lettered.
    pub consumer_max_deliver: i64,
    /// `CONSUMER_ACK_WAIT_MS` (default 30000): how long JetStream waits for an ack before redelivering.
    pub consumer_ack_wait: Duration,
    /// `CONSUMER_CONCURRENCY` (default 8): messages one consumer handles at once.
    pub consumer_concurrency: usize,
}

/// `GRPC_TLS_CERT` and `GRPC_TLS_KEY` (both or neither) and `GRPC_TLS_CA`.
fn read_tls(reader: &mut ConfigReader<'_>) -> Option<crate::tls::TlsFiles> {
    let cert = reader.maybe::<PathBuf>("GRPC_TLS_CERT", "the path of a PEM certificate");
    let key = reader.maybe::<PathBuf>("GRPC_TLS_KEY", "the path of a PEM private key");
    let ca = reader.maybe::<PathBuf>("GRPC_TLS_CA", "the path of a PEM CA certificate");
    match (cert, key) {
        (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key, ca }),
        (None, None) => {
            if ca.is_some() {
                reader.problem(
                    "GRPC_TLS_CA",
                    "is set without GRPC_TLS_CERT and GRPC_TLS_KEY; set all three for mutual TLS"
                        .to_owned(),
                );
            }
            None
        }
        (Some(_), None) => {
            reader.problem("GRPC_TLS_KEY", "is required with GRPC_TLS_CERT".to_owned());
            None
        }
        (None, Some(_)) => {
            reader.problem("GRPC_TLS_CERT", "is required with GRPC_TLS_KEY".to_owned());
            None
        }
    }
}

impl ServiceConfig {
    /// Reads the shared variables for the service `name`, whose gRPC port defaults
    /// to `default_port`. Problems are recorded in `reader`.
    pub fn read(
        reader: &mut ConfigReader<'_>,
        name: &'static str,
        default_port: u16,
    ) -> Option<Self> {
        let database_url = reader.required(
            "DATABASE_URL",
            "a postgres:// URL of this service's own database, e.g. postgres://microcosm_order:secret@127.0.0.1:5432/microcosm_order",
        );
        let migration_database_url = reader.maybe::<DatabaseUrl>(
            "MIGRATION_DATABASE_URL",
            "a postgres:// URL of the same database as the role that owns it, for migrations",
        );
        let database_max_connections =
            reader.optional("DATABASE_MAX_CONNECTIONS", 20_u32, "a pool size such as 20");
        let database_connect_timeout =
            reader.millis("DATABASE_CONNECT_TIMEOUT_MS", Duration::from_secs(30));
        let nats_url =
            reader.required::<String>("NATS_URL", "a NATS URL such as nats://127.0.0.1:4222");
        if let Some(url) = &nats_url
            && !(url.starts_with("nats://") || url.starts_with("tls://"))
        {
            reader.problem("NATS_URL", format!("is {url:?}; expected a nats:// URL"));
        }
        let grpc_listen_addr = reader.optional(
            "GRPC_LISTEN_ADDR",
            SocketAddr::from(([0, 0, 0, 0], default_port)),
            "host:port such as 0.0.0.0:50051",
        );
        let grpc_limits = crate::grpc::GrpcLimits {
            max_message_bytes: reader.optional(
                "GRPC_MAX_MESSAGE_BYTES",
                crate::grpc::GrpcLimits::default().max_message_bytes,
                "a size in bytes such as 1048576",
            ),
            request_timeout: reader.millis(
                "GRPC_REQUEST_TIMEOUT_MS",
                crate::grpc::GrpcLimits::default().request_timeout,
            ),
        };
        if !(1024..=64 * 1024 * 1024).contains(&grpc_limits.max_message_bytes) {
            reader.problem(
                "GRPC_MAX_MESSAGE_BYTES",
                "must be between 1024 and 67108864 (64 MiB)".to_owned(),
            );
        }
        let grpc_tls = read_tls(reader);
        let seed_demo_data = reader.flag("SEED_DEMO_DATA", false);
        let shutdown_grace = reader.millis("SHUTDOWN_GRACE_MS", Duration::from_secs(10));
        let health_probe_interval =
            reader.millis("HEALTH_PROBE_INTERVAL_MS", Duration::from_secs(1));
        let messaging = MessagingConfig {
            sweep: SweepSettings {
                poll_interval: reader.millis("OUTBOX_POLL_INTERVAL_MS", Duration::from_millis(500)),
                grace: reader.millis("OUTBOX_SWEEP_GRACE_MS", Duration::from_secs(2)),
                retention: reader.millis("OUTBOX_RETENTION_MS", Duration::from_secs(300)),
                ..SweepSettings::default()
            },
            consumer_max_deliver: reader.optional(
                "CONSUMER_MAX_DELIVER",
                10_i64,
                "a number of deliveries such as 10",
            ),
            consumer_ack_wait: reader.millis("CONSUMER_ACK_WAIT_MS", Duration::from_secs(30)),
            consumer_concurrency: reader.optional(
                "CONSUMER_CONCURRENCY",
                8_usize,
                "a number of messages such as 16",
            ),
        };
        if messaging.consumer_max_deliver < 1 {
            reader.problem("CONSUMER_MAX_DELIVER", "must be at least 1".to_owned());
        }
        let telemetry = TelemetryConfig {
            service_name: reader.optional("OTEL_SERVICE_NAME", name.to_owned(), "a service name"),
            log_format: reader.maybe::<LogFormat>("LOG_FORMAT", "json or pretty"),
            log_filter: reader.optional(
                "RUST_LOG",
                "info".to_owned(),
                "a tracing filter such as info,sqlx=warn",
            ),
            otlp_endpoint: reader.maybe::<String>(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "an OTLP gRPC endpoint such as http://127.0.0.1:4317",
            ),
        };
        if let Some(endpoint) = &telemetry.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            reader.problem(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("is {endpoint:?}; expected an http:// or https:// URL"),
            );
        }
        Some(Self {
            database_url: database_url?,
            migration_database_url,
            database_max_connections,
            database_connect_timeout,
            nats_url: nats_url?,
            grpc_listen_addr,
            grpc_limits,
            grpc_tls,
            seed_demo_data,
            shutdown_grace,
            health_probe_interval,
            telemetry,
            messaging,
        })
    }

    /// Reads and checks the shared variables on their own: for services with no
    /// settings of their own.
    pub fn from_env(
        env: &dyn EnvSource,
        name: &'static str,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let mut reader = ConfigReader::new(env);
        let config = Self::read(&mut reader, name, default_port);
        reader.finish()?;
        config.ok_or_else(|| ConfigError {
            problems: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn reads_a_complete_configuration_with_defaults() {
        let env = env(&[
            ("DATABASE_URL", "postgres://svc:pw@127.0.0.1:5432/svc"),
            ("NATS_URL", "nats://127.0.0.1:4222"),
        ]);
        let config = ServiceConfig::from_env(&env, "order", 50051).expect("valid");
        assert_eq!(
            config.grpc_listen_addr,
            "0.0.0.0:50051".parse().expect("addr")
        );
        assert_eq!(config.telemetry.service_name, "order");
        assert!(!config.seed_demo_data);
    }

    #[test]
    fn names_every_missing_and_malformed_variable_at_once() {
        let env = env(&[
            ("NATS_URL", "http://wrong"),
            ("GRPC_LISTEN_ADDR", "not-an-address"),
            ("SEED_DEMO_DATA", "maybe"),
        ]);
        let error = ServiceConfig::from_env(&env, "order", 50051).expect_err("invalid");
        let variables: Vec<_> = error.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            variables,
            [
                "DATABASE_URL",
                "NATS_URL",
                "GRPC_LISTEN_ADDR",
                "SEED_DEMO_DATA"
            ]
        );
        assert!(error.to_string().contains("DATABASE_URL: is not set"));
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key_together_and_a_ca_only_with_them() {
        let base = [
            ("DATABASE_URL", "postgres://u:p@h/d"),
            ("NATS_URL", "nats://h:4222"),
        ];
        let problems = |extra: &[(&'static str, &'static str)]| {
            let pairs: Vec<_> = base.iter().chain(extra).copied().collect();
            ServiceConfig::from_env(&env(&pairs), "order", 50051)
                .err()
                .map(|error| error.to_string())
        };
        assert!(
            problems(&[("GRPC_TLS_CERT", "c.pem")])
                .unwrap()
                .contains("GRPC_TLS_KEY")
        );
        assert!(
            problems(&[("GRPC_TLS_KEY", "k.pem")])
                .unwrap()
                .contains("GRPC_TLS_CERT")
        );
        assert!(
            problems(&[("GRPC_TLS_CA", "ca.pem")])
                .unwrap()
                .contains("GRPC_TLS_CA")
        );
        let all = [
            ("GRPC_TLS_CERT", "c.pem"),
            ("GRPC_TLS_KEY", "k.pem"),
            ("GRPC_TLS_CA", "ca.pem"),
        ];
        assert_eq!(problems(&all), None);
        let pairs: Vec<_> = base.iter().chain(&all).copied().collect();
        let config = ServiceConfig::from_env(&env(&pairs), "order", 50051).unwrap();
        let tls = config.grpc_tls.expect("TLS on");
        assert_eq!(tls.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert_eq!(problems(&[]), None, "plaintext without the variables");
    }

    #[test]
    fn database_url_display_hides_the_password() {
        let url: DatabaseUrl = "postgres://svc:hunter2@db:5432/svc".parse().expect("url");
        assert_eq!(url.to_string(), "postgres://svc:***@db:5432/svc");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "postgres://svc:hunter2@db:5432/svc");
    }
}
