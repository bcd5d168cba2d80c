//! docker-compose.yml and the Dockerfile, checked against the code that will run
//! inside them. There is no Docker engine on the machines that build Microcosm, so
//! what cannot be run is proven statically (CI also validates the compose file
//! against the compose-spec schema and lints the Dockerfile with hadolint):
//!
//! - each service's configuration, as compose assembles it (its env file, which
//!   `microcosm up` also reads, plus `environment:`), loads with the service's own
//!   configuration code: every required variable set, every value well-formed;
//! - every host a service or the CLI dials is a compose service, on the port that
//!   service listens on, with the credentials its database container creates;
//! - published ports, EXPOSE, healthchecks, entrypoints and `depends_on` agree.
//!
//! `kubernetes` does the same for the manifests under k8s/.

mod dashboard;
mod kubernetes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use microcosm_platform::config::ServiceConfig;
use microcosm_platform::service::Microservice;
use microcosm_testkit::ServiceKind;
use microcosm_testkit::env_file::EnvFile;
use serde_yaml::Value;
use tonic::transport::Uri;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative))
        .unwrap_or_else(|error| panic!("read {relative}: {error}"))
}

/// docker-compose.yml with its `<<:` merge keys applied.
fn compose() -> Value {
    let mut document: Value = serde_yaml::from_str(&read("docker-compose.yml")).expect("YAML");
    document.apply_merge().expect("merge keys");
    document
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(name, service)| {
            let name = name.as_str().expect("service name").to_owned();
            (name, service.clone())
        })
        .collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .map(text)
        .collect()
}

/// The environment compose gives a container: its env files in order, then
/// `environment:` on top.
fn environment_of(service: &Value) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    let files = match &service["env_file"] {
        Value::Null => Vec::new(),
        Value::String(file) => vec![file.clone()],
        list => strings(list),
    };
    for file in files {
        let parsed = EnvFile::parse(&file, &read(&file)).expect("env file parses");
        environment.extend(parsed.into_variables());
    }
    if let Some(mapping) = service["environment"].as_mapping() {
        for (name, value) in mapping {
            environment.insert(text(name), text(value));
        }
    }
    environment
}

/// Loads `kind`'s configuration from `environment` with the service's own code.
fn load_config(kind: ServiceKind, environment: &BTreeMap<String, String>) -> ServiceConfig {
    let env: HashMap<String, String> = environment.clone().into_iter().collect();
    let loaded = match kind {
        ServiceKind::Order => order_service::Service::load_config(&env)
            .map(|config| order_service::Service::common(&config).clone()),
        ServiceKind::Inventory => inventory_service::Service::load_config(&env)
            .map(|config| inventory_service::Service::common(&config).clone()),
        ServiceKind::Billing => billing_service::Service::load_config(&env)
            .map(|config| billing_service::Service::common(&config).clone()),
    };
    loaded.unwrap_or_else(|error| panic!("{kind}'s configuration in compose: {error}"))
}

/// Host, port and `user:password` of a URL.
fn dial_target(url: &str) -> (String, Option<u16>, Option<String>) {
    let uri: Uri = url.parse().unwrap_or_else(|error| panic!("{url}: {error}"));
    let authority = uri
        .authority()
        .unwrap_or_else(|| panic!("{url} has no host"));
    let userinfo = authority
        .as_str()
        .rsplit_once('@')
        .map(|(userinfo, _)| userinfo.to_owned());
    (authority.host().to_owned(), authority.port_u16(), userinfo)
}

/// The variables that name something to dial: `*_URL` and `*_ENDPOINT`.
fn dialled(environment: &BTreeMap<String, String>) -> Vec<(&String, &String)> {
    environment
        .iter()
        .filter(|(name, _)| name.ends_with("_URL") || name.ends_with("_ENDPOINT"))
        .collect()
}

/// Which of its database container's credentials a URL variable must carry: the
/// runtime role for `DATABASE_URL`, the owner for `MIGRATION_DATABASE_URL`.
fn database_role(variable: &str) -> Option<(&'static str, &'static str)> {
    match variable {
        "DATABASE_URL" => Some(("APP_USER", "APP_PASSWORD")),
        "MIGRATION_DATABASE_URL" => Some(("POSTGRES_USER", "POSTGRES_PASSWORD")),
        _ => None,
    }
}

/// The NATS users of k8s/base/nats/auth.conf (compose mounts it, the test kit
/// loads it): user to password.
fn nats_users() -> BTreeMap<String, String> {
    let text = read("k8s/base/nats/auth.conf");
    let quoted = |line: &str, key: &str| {
        line.trim()
            .strip_prefix(key)
            .map(|rest| rest.trim().trim_matches('"').to_owned())
    };
    let mut users = BTreeMap::new();
    let mut user = None;
    for line in text.lines() {
        if let Some(name) = quoted(line, "user:") {
            user = Some(name);
        } else if let (Some(password), Some(name)) = (quoted(line, "password:"), user.take()) {
            users.insert(name, password);
        }
    }
    users
}

/// Checks that a service's `NATS_URL` logs in as the service's own NATS user.
fn assert_own_nats_user(service: &str, url: &str) {
    let (_, _, userinfo) = dial_target(url);
    let users = nats_users();
    let password = users
        .get(service)
        .unwrap_or_else(|| panic!("auth.conf has no user {service}: {users:?}"));
    assert_eq!(
        userinfo.as_deref(),
        Some(format!("{service}:{password}").as_str()),
        "{service}'s NATS_URL logs in as its own user"
    );
}

/// The port each service's gRPC server listens on, as its configuration says.
fn grpc_ports(compose: &Value) -> BTreeMap<String, u16> {
    let services = services(compose);
    ServiceKind::all()
        .into_iter()
        .map(|kind| {
            let config = load_config(kind, &environment_of(&services[kind.name()]));
            (kind.name().to_owned(), config.grpc_listen_addr.port())
        })
        .collect()
}

/// Well-known ports of the infrastructure images compose runs.
fn infrastructure_port(service: &str) -> Option<u16> {
    match service {
        "order-db" | "inventory-db" | "billing-db" => Some(5432),
        "nats" => Some(4222),
        "otel-collector" => Some(4317),
        _ => None,
    }
}

#[test]
fn every_service_configuration_compose_assembles_loads_with_the_service_s_own_code() {
    let compose = compose();
    let services = services(&compose);
    for kind in ServiceKind::all() {
        let service = &services[kind.name()];
        assert_eq!(
            text(&service["env_file"]),
            format!("deploy/env/{}.env", kind.name()),
            "{kind} reads the env file `microcosm up` reads"
        );
        let config = load_config(kind, &environment_of(service));
        assert!(
            config.telemetry.otlp_endpoint.is_some(),
            "{kind} exports traces in the sandbox"
        );
    }
}

#[test]
fn every_host_a_container_dials_is_a_compose_service_on_its_port_with_its_credentials() {
    let compose = compose();
    let services = services(&compose);
    let grpc_ports = grpc_ports(&compose);
    let mut checked = 0;
    for (name, service) in &services {
        let environment = environment_of(service);
        for (variable, url) in dialled(&environment) {
            let (host, port, userinfo) = dial_target(url);
            let target = services.get(&host).unwrap_or_else(|| {
                panic!("{name}: {variable}={url} dials {host}, which is not a compose service")
            });
            let expected_port = grpc_ports
                .get(&host)
                .copied()
                .or_else(|| infrastructure_port(&host))
                .unwrap_or_else(|| {
                    panic!("{name}: {variable} dials {host}, which listens on no known port")
                });
            assert_eq!(port, Some(expected_port), "{name}: {variable}={url}");
            if variable == "NATS_URL" {
                assert_own_nats_user(name, url);
            }
            if let Some((user, password)) = database_role(variable) {
                assert_eq!(host, format!("{name}-db"), "{name} uses its own database");
                let database = environment_of(target);
                let credentials = format!("{}:{}", database[user], database[password]);
                assert_eq!(
                    userinfo.as_deref(),
                    Some(credentials.as_str()),
                    "{name}'s role"
                );
                assert!(
                    url.ends_with(&format!("/{}", database["POSTGRES_DB"])),
                    "{name}: {url} names the database {host} creates"
                );
            }
            checked += 1;
        }
    }
    // Three services dial their database twice (runtime and owner role), NATS and
    // the OpenTelemetry Collector; order dials the two participants; seed, cli and loadgen dial the
    // three services.
    assert!(
        checked >= 3 * 4 + 2 + 3 * 3,
        "only {checked} dial targets found"
    );
}

/// One final stage of the Dockerfile: what it exposes, checks and runs.
#[derive(Debug, Default)]
struct Stage {
    expose: Vec<String>,
    healthcheck: Option<String>,
    entrypoint: Option<String>,
}

/// The Dockerfile's stages by name, with continuation lines joined.
fn dockerfile_stages() -> BTreeMap<String, Stage> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stages = BTreeMap::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("FROM") => {
                let name = words
                    .iter()
                    .position(|word| word.eq_ignore_ascii_case("AS"))
                    .map(|at| words[at + 1].to_owned());
                current = name.clone();
                if let Some(name) = name {
                    stages.insert(name, Stage::default());
                }
            }
            Some(instruction @ ("EXPOSE" | "HEALTHCHECK" | "ENTRYPOINT")) => {
                let stage: &mut Stage = stages
                    .get_mut(current.as_ref().expect("instruction inside a stage"))
                    .expect("stage");
                let rest = line[instruction.len()..].trim().to_owned();
                match instruction {
                    "EXPOSE" => stage
                        .expose
                        .extend(rest.split_whitespace().map(str::to_owned)),
                    "HEALTHCHECK" => stage.healthcheck = Some(rest),
                    _ => stage.entrypoint = Some(rest),
                }
            }
            _ => {}
        }
    }
    stages
}

#[test]
fn published_ports_exposed_ports_healthchecks_and_start_order_agree() {
    let compose = compose();
    let services = services(&compose);
    let grpc_ports = grpc_ports(&compose);
    let stages = dockerfile_stages();
    for kind in ServiceKind::all() {
        let name = kind.name();
        let service = &services[name];
        let port = grpc_ports[name];
        let binary = format!("/usr/local/bin/{}", kind.binary_name());

        assert_eq!(
            text(&service["build"]["target"]),
            name,
            "{name} builds its stage"
        );
        assert_eq!(
            strings(&service["ports"]),
            vec![format!("{port}:{port}")],
            "{name} publishes its gRPC port"
        );
        let stage = stages
            .get(name)
            .unwrap_or_else(|| panic!("a Dockerfile stage {name}"));
        assert_eq!(stage.expose, vec![port.to_string()], "{name}'s EXPOSE");
        let check = vec!["CMD".to_owned(), binary.clone(), "healthcheck".to_owned()];
        assert_eq!(
            strings(&service["healthcheck"]["test"]),
            check,
            "{name}'s compose healthcheck"
        );
        let image_check = stage.healthcheck.as_deref().expect("a HEALTHCHECK");
        assert!(
            image_check.ends_with(&format!("CMD [\"{binary}\", \"healthcheck\"]")),
            "{name}'s image healthcheck: {image_check}"
        );
        assert_eq!(
            stage.entrypoint.as_deref(),
            Some(format!("[\"{binary}\"]").as_str())
        );

        let mut healthy_first: BTreeSet<String> = [format!("{name}-db"), "nats".to_owned()].into();
        if kind == ServiceKind::Order {
            healthy_first.extend(["inventory".to_owned(), "billing".to_owned()]);
        }
        let depends_on = service["depends_on"].as_mapping().expect("depends_on");
        for dependency in &healthy_first {
            assert_eq!(
                text(&depends_on[dependency.as_str()]["condition"]),
                "service_healthy",
                "{name} waits for {dependency} to be healthy"
            );
        }
    }
    let nats = &services["nats"];
    let nats_volumes = strings(&nats["volumes"]);
    assert!(
        nats_volumes.contains(&"./k8s/base/nats/auth.conf:/etc/nats/auth.conf:ro".to_owned())
            && nats_volumes
                .contains(&"./deploy/nats/compose.conf:/etc/nats/compose.conf:ro".to_owned())
            && strings(&nats["command"]).contains(&"/etc/nats/compose.conf".to_owned())
            && read("deploy/nats/compose.conf").contains("include ./auth.conf"),
        "compose's NATS loads the users and permissions, and its disk sync setting"
    );
    let cli = stages.get("cli").expect("a cli stage");
    assert_eq!(
        cli.entrypoint.as_deref(),
        Some("[\"/usr/local/bin/microcosm\"]")
    );
}

#[test]
fn every_container_has_a_memory_limit() {
    for (name, service) in services(&compose()) {
        let limit = &service["deploy"]["resources"]["limits"]["memory"];
        assert!(limit.as_str().is_some(), "{name} has no memory limit");
    }
}
