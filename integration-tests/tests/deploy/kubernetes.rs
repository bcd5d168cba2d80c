//! k8s/ rendered with `kubectl kustomize` (base and the kind overlay), checked
//! against the services' configuration code and against deploy/env, the one
//! source compose and `microcosm up` read too. (CI also validates every rendered
//! object against the Kubernetes schemas with kubernetes-validate.)

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use microcosm_testkit::ServiceKind;
use microcosm_testkit::env_file::EnvFile;
use serde_yaml::Value;

use super::{
    assert_own_nats_user, database_role, dial_target, load_config, read, repository, text,
};

/// The objects `kubectl kustomize k8s/<dir>` renders.
pub(crate) fn render(dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .args(["kustomize", &format!("k8s/{dir}")])
        .current_dir(repository())
        .output()
        .expect("kubectl runs (scripts/install-test-deps installs it)");
    assert!(
        output.status.success(),
        "kubectl kustomize k8s/{dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = String::from_utf8(output.stdout).expect("UTF-8");
    // kubectl separates the objects with `---` lines.
    rendered
        .split("\n---\n")
        .map(|document| serde_yaml::from_str::<Value>(document).expect("YAML"))
        .filter(|object| !object.is_null())
        .collect()
}

pub(crate) fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|mapping| mapping.iter().map(|(k, v)| (text(k), text(v))).collect())
        .unwrap_or_default()
}

/// The environment a service's container gets: its ConfigMap, then its `env`
/// (values, or keys of its Secret).
fn environment(objects: &[Value], kind: ServiceKind) -> BTreeMap<String, String> {
    let name = kind.name();
    let deployment = find(objects, "Deployment", name);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut environment = BTreeMap::new();
    for source in container["envFrom"].as_sequence().expect("envFrom") {
        let config_map = text(&source["configMapRef"]["name"]);
        environment.extend(string_map(&find(objects, "ConfigMap", &config_map)["data"]));
    }
    for variable in container["env"].as_sequence().expect("env") {
        let value = match &variable["valueFrom"]["secretKeyRef"] {
            Value::Null => text(&variable["value"]),
            reference => {
                let secret = find(objects, "Secret", &text(&reference["name"]));
                string_map(&secret["stringData"])[&text(&reference["key"])].clone()
            }
        };
        environment.insert(text(&variable["name"]), value);
    }
    environment
}

/// The port of the Service named `name`, if there is one.
fn service_ports(objects: &[Value], name: &str) -> Vec<u16> {
    objects
        .iter()
        .filter(|object| object["kind"] == "Service" && object["metadata"]["name"] == name)
        .flat_map(|service| {
            service["spec"]["ports"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|port| {
            port["port"]
                .as_u64()
                .and_then(|port| u16::try_from(port).ok())
        })
        .collect()
}

#[test]
fn every_service_gets_exactly_its_env_file_and_its_configuration_loads() {
    for dir in ["base", "overlays/kind"] {
        let objects = render(dir);
        for kind in ServiceKind::all() {
            let file = format!("deploy/env/{}.env", kind.name());
            let expected = EnvFile::parse(&file, &read(&file)).expect("env file");
            let environment = environment(&objects, kind);
            for (name, value) in expected.into_variables() {
                assert_eq!(
                    environment.get(&name),
                    Some(&value),
                    "{dir}: {kind}'s {name} differs from {file}"
                );
            }
            let config = load_config(kind, &environment);
            assert!(
                config.telemetry.otlp_endpoint.is_some(),
                "{dir}: {kind} exports traces"
            );
        }
    }
}

#[test]
fn every_host_a_service_dials_is_a_kubernetes_service_on_that_port() {
    for dir in ["base", "overlays/kind"] {
        let objects = render(dir);
        for kind in ServiceKind::all() {
            let environment = environment(&objects, kind);
            for (variable, url) in environment
                .iter()
                .filter(|(name, _)| name.ends_with("_URL") || name.ends_with("_ENDPOINT"))
            {
                let (host, port, userinfo) = dial_target(url);
                let port = port.unwrap_or_else(|| panic!("{kind}: {variable}={url} names no port"));
                assert!(
                    service_ports(&objects, &host).contains(&port),
                    "{dir}: {kind}'s {variable}={url}: no Service {host} with port {port}"
                );
                if variable == "NATS_URL" {
                    assert_own_nats_user(kind.name(), url);
                }
                if let Some((user, password)) = database_role(variable) {
                    let secret =
                        string_map(&find(&objects, "Secret", &format!("{kind}-db"))["stringData"]);
                    let credentials = format!("{}:{}", secret[user], secret[password]);
                    assert_eq!(userinfo.as_deref(), Some(credentials.as_str()));
                    assert!(url.ends_with(&format!("/{}", secret["POSTGRES_DB"])));
                }
            }
        }
    }
}

#[test]
fn deployments_run_two_locked_down_replicas_probed_on_their_grpc_port() {
    let objects = render("base");
    for kind in ServiceKind::all() {
        let name = kind.name();
        let config = load_config(kind, &environment(&objects, kind));
        let port = u64::from(config.grpc_listen_addr.port());
        let deployment = find(&objects, "Deployment", name);
        assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(2), "{name}");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(port));
        assert_eq!(
            service_ports(&objects, name),
            vec![u16::try_from(port).unwrap()]
        );
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(
                container[probe]["grpc"]["port"].as_u64(),
                Some(port),
                "{name} {probe}"
            );
        }
        assert_eq!(container["livenessProbe"]["grpc"]["service"], "liveness");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        assert_eq!(
            container["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{name}"
        );
        find(&objects, "PodDisruptionBudget", name);
        find(&objects, "StatefulSet", &format!("{name}-db"));
    }
    assert_eq!(
        find(&objects, "StatefulSet", "nats")["spec"]["replicas"].as_u64(),
        Some(3)
    );
    let kind_cluster = render("overlays/kind");
    assert_eq!(
        find(&kind_cluster, "StatefulSet", "nats")["spec"]["replicas"].as_u64(),
        Some(1)
    );
}

#[test]
fn network_policies_allow_each_path_the_design_uses() {
    let objects = render("base");
    let egress_to = |from: &str| -> HashMap<String, Vec<u64>> {
        let policy = find(&objects, "NetworkPolicy", from);
        let mut allowed: HashMap<String, Vec<u64>> = HashMap::new();
        for rule in policy["spec"]["egress"].as_sequence().expect("egress") {
            let ports: Vec<u64> = rule["ports"]
                .as_sequence()
                .expect("ports")
                .iter()
                .filter_map(|port| port["port"].as_u64())
                .collect();
            for peer in rule["to"].as_sequence().expect("to") {
                let app = text(&peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]);
                allowed.entry(app).or_default().extend(&ports);
            }
        }
        allowed
    };
    for kind in ServiceKind::all() {
        let name = kind.name();
        let allowed = egress_to(name);
        let mut expected = vec![
            (format!("{name}-db"), 5432),
            ("nats".to_owned(), 4222),
            ("otel-collector".to_owned(), 4317),
        ];
        if kind == ServiceKind::Order {
            expected.extend([
                ("inventory".to_owned(), 50052),
                ("billing".to_owned(), 50053),
            ]);
        }
        for (peer, port) in &expected {
            assert!(
                allowed.get(peer).is_some_and(|ports| ports.contains(port)),
                "{name} may reach {peer}:{port}"
            );
        }
        assert_eq!(
            allowed.len(),
            expected.len(),
            "{name} reaches nothing else: {allowed:?}"
        );
    }
    find(&objects, "NetworkPolicy", "default-deny");
}
