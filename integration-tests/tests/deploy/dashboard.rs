//! The metrics stack's configuration, checked against the code: the Grafana
//! dashboard only queries series the services export (their OpenTelemetry names
//! as Prometheus' OTLP receiver translates them), covers the figures the design
//! asks for, and is the same file in docker compose and Kubernetes; the
//! collector sends metrics where Prometheus listens for them.

use std::collections::BTreeSet;

use serde_yaml::Value;

use super::{compose, read, services, strings, text};
use crate::kubernetes::{find, render};

const DASHBOARD: &str = "k8s/base/observability/grafana/microcosm-dashboard.json";

/// Every instrument the services create, from crates/platform/src/metrics.rs
/// and crates/messaging/src/metrics.rs: (kind, OpenTelemetry name, unit).
fn instruments() -> Vec<(String, String, String)> {
    let source = read("crates/platform/src/metrics.rs") + &read("crates/messaging/src/metrics.rs");
    let mut found = Vec::new();
    for (index, _) in source.match_indices("meter") {
        let rest = &source[index..];
        let Some(open) = rest.find("(\"") else {
            continue;
        };
        let call = &rest[..open];
        let kind = ["_counter", "_histogram", "_observable_gauge"]
            .into_iter()
            .find(|kind| call.ends_with(kind) && !call.contains(';'));
        let Some(kind) = kind else { continue };
        let name = &rest[open + 2..];
        let name = &name[..name.find('"').expect("a closing quote")];
        let unit = rest
            .find(".with_unit(\"")
            .map(|at| {
                let unit = &rest[at + 12..];
                unit[..unit.find('"').expect("a closing quote")].to_owned()
            })
            .unwrap_or_default();
        found.push((
            kind.trim_start_matches('_').to_owned(),
            name.to_owned(),
            unit,
        ));
    }
    found.sort();
    found.dedup();
    found
}

/// The series names Prometheus stores for one instrument, by the OTLP
/// translation (dots to underscores, the unit as a suffix, `_total` on counters,
/// `_bucket`/`_sum`/`_count` on histograms; annotations like `{order}` are no unit).
fn prometheus_names(kind: &str, name: &str, unit: &str) -> Vec<String> {
    let mut base = name.replace('.', "_");
    match unit {
        "s" => base.push_str("_seconds"),
        "By" => base.push_str("_bytes"),
        _ => {}
    }
    match kind {
        "counter" => vec![format!("{base}_total")],
        "histogram" => ["bucket", "sum", "count"]
            .iter()
            .map(|suffix| format!("{base}_{suffix}"))
            .collect(),
        _ => vec![base],
    }
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON")
}

/// Every panel that is not a row, with its expressions.
fn panels(dashboard: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter(|panel| panel["type"] != "row")
        .map(|panel| {
            let title = panel["title"].as_str().expect("a title").to_owned();
            let exprs = panel["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|target| target["expr"].as_str().expect("an expr").to_owned())
                .collect();
            (title, exprs)
        })
        .collect()
}

/// The metric names an expression selects: with label matchers, ranges and
/// `by (...)` clauses dropped, the identifiers that are not called (functions),
/// not numbers and not operators.
fn selected_metrics(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut skipping: Option<char> = None;
    for c in expr.chars() {
        match (skipping, c) {
            (None, '{') => skipping = Some('}'),
            (None, '[') => skipping = Some(']'),
            (Some(close), c) if c == close => skipping = None,
            (None, c) => cleaned.push(c),
            (Some(_), _) => {}
        }
    }
    for clause in ["by (", "without ("] {
        while let Some(at) = cleaned.find(clause) {
            let close = cleaned[at..].find(')').expect("a closing parenthesis") + at;
            cleaned.replace_range(at..=close, "");
        }
    }
    const OPERATORS: [&str; 4] = ["or", "and", "unless", "bool"];
    let mut found = BTreeSet::new();
    let mut rest = cleaned.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        let called = tail[end..].trim_start().starts_with('(');
        if !called && !OPERATORS.contains(&word) {
            found.insert(word.to_owned());
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_dashboard_queries_only_series_the_services_export() {
    let instruments = instruments();
    let names: Vec<&str> = instruments
        .iter()
        .map(|(_, name, _)| name.as_str())
        .collect();
    for expected in [
        "rpc.server.call.duration",
        "rpc.client.call.duration",
        "microcosm.saga.completed",
        "microcosm.messaging.dead_letters",
        "process.memory.usage",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let exported: BTreeSet<String> = instruments
        .iter()
        .flat_map(|(kind, name, unit)| prometheus_names(kind, name, unit))
        .collect();
    let mut queried = BTreeSet::new();
    for (title, exprs) in panels(&dashboard()) {
        assert!(!exprs.is_empty(), "{title} queries something");
        for expr in exprs {
            let metrics = selected_metrics(&expr);
            assert!(!metrics.is_empty(), "{title}: no metric found in {expr}");
            for metric in metrics {
                assert!(
                    exported.contains(&metric),
                    "{title}: {metric} is not a series the services export: {exported:?}"
                );
                queried.insert(metric);
            }
        }
    }
    // Every instrument shows somewhere on the dashboard.
    for (kind, name, unit) in &instruments {
        let series = prometheus_names(kind, name, unit);
        assert!(
            series.iter().any(|name| queried.contains(name)),
            "{name} ({series:?}) is on no panel"
        );
    }
}

#[test]
fn the_dashboard_shows_the_figures_the_design_asks_for_from_the_provisioned_source() {
    let dashboard = dashboard();
    let titles: Vec<String> = panels(&dashboard)
        .into_iter()
        .map(|(title, _)| title.to_lowercase())
        .collect();
    for wanted in [
        "throughput",
        "latency",
        "saga outcomes",
        "outbox",
        "consumer lag",
        "dead letters",
        "memory",
    ] {
        assert!(
            titles.iter().any(|title| title.contains(wanted)),
            "a panel about {wanted}: {titles:?}"
        );
    }
    let datasources: Value =
        serde_yaml::from_str(&read("k8s/base/observability/grafana/datasources.yaml"))
            .expect("YAML");
    let prometheus = datasources["datasources"]
        .as_sequence()
        .expect("datasources")
        .iter()
        .find(|source| text(&source["type"]) == "prometheus")
        .expect("a Prometheus data source");
    assert_eq!(text(&prometheus["url"]), "http://prometheus:9090");
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"].as_str(),
                Some(text(&prometheus["uid"]).as_str()),
                "{} reads the provisioned Prometheus",
                panel["title"]
            );
        }
    }
    let ids: BTreeSet<u64> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|panel| panel["id"].as_u64().expect("an id"))
        .collect();
    assert_eq!(
        ids.len(),
        dashboard["panels"].as_array().expect("panels").len(),
        "panel ids are unique"
    );
}

#[test]
fn compose_and_kubernetes_load_the_same_dashboard_and_the_collector_reaches_prometheus() {
    let services = services(&compose());
    let grafana = strings(&services["grafana"]["volumes"]);
    assert!(
        grafana.contains(&format!(
            "./{DASHBOARD}:/etc/grafana/dashboards/microcosm-dashboard.json:ro"
        )),
        "compose's Grafana mounts {DASHBOARD}: {grafana:?}"
    );
    let home =
        text(&services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
    assert_eq!(home, "/etc/grafana/dashboards/microcosm-dashboard.json");
    let providers: Value =
        serde_yaml::from_str(&read("k8s/base/observability/grafana/dashboards.yaml"))
            .expect("YAML");
    assert_eq!(
        text(&providers["providers"][0]["options"]["path"]),
        "/etc/grafana/dashboards",
        "Grafana looks for dashboards where they are mounted"
    );

    let objects = render("base");
    // Generated ConfigMaps carry a hash of their content in their name.
    let generated = objects
        .iter()
        .find(|object| {
            text(&object["kind"]) == "ConfigMap"
                && text(&object["metadata"]["name"]).starts_with("grafana-dashboards-")
        })
        .expect("a generated grafana-dashboards ConfigMap");
    let in_cluster = text(&generated["data"]["microcosm-dashboard.json"]);
    assert_eq!(
        in_cluster,
        read(DASHBOARD),
        "Kubernetes loads the same file"
    );
    let deployment = find(&objects, "Deployment", "grafana");
    let mounts = &deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert!(
        mounts
            .as_sequence()
            .expect("mounts")
            .iter()
            .any(|mount| text(&mount["mountPath"]) == "/etc/grafana/dashboards"),
        "the cluster's Grafana mounts the dashboards where the provider looks"
    );

    // The collector: OTLP in where the services export, metrics out to the
    // OTLP receiver Prometheus is started with, traces to Jaeger.
    let collector: Value =
        serde_yaml::from_str(&read("k8s/base/observability/otel-collector.yaml")).expect("YAML");
    assert_eq!(
        text(&collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
        "0.0.0.0:4317"
    );
    assert_eq!(
        text(&collector["exporters"]["otlphttp/prometheus"]["metrics_endpoint"]),
        "http://prometheus:9090/api/v1/otlp/v1/metrics"
    );
    assert_eq!(
        text(&collector["exporters"]["otlp/jaeger"]["endpoint"]),
        "jaeger:4317"
    );
    let pipelines = &collector["service"]["pipelines"];
    assert_eq!(
        strings(&pipelines["metrics"]["exporters"]),
        ["otlphttp/prometheus"]
    );
    assert_eq!(strings(&pipelines["traces"]["exporters"]), ["otlp/jaeger"]);
    let prometheus_args = strings(&services["prometheus"]["command"]);
    assert!(prometheus_args.contains(&"--web.enable-otlp-receiver".to_owned()));
    let cluster_args = strings(
        &find(&objects, "Deployment", "prometheus")["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert_eq!(
        cluster_args, prometheus_args,
        "the same Prometheus flags in both"
    );
}

#[test]
fn the_expression_parser_finds_metrics_and_skips_functions_and_labels() {
    let metrics = selected_metrics(
        "histogram_quantile(0.99, sum by (job, le) (rate(rpc_server_call_duration_seconds_bucket{job=\"order\"}[$__rate_interval]))) or vector(0)",
    );
    assert_eq!(
        metrics,
        BTreeSet::from(["rpc_server_call_duration_seconds_bucket".to_owned()])
    );
    assert_eq!(
        selected_metrics("max by (microcosm_saga_state) (microcosm_saga_in_flight)"),
        BTreeSet::from(["microcosm_saga_in_flight".to_owned()])
    );
    assert_eq!(
        prometheus_names("histogram", "rpc.server.call.duration", "s")[0],
        "rpc_server_call_duration_seconds_bucket"
    );
    assert_eq!(
        prometheus_names("counter", "microcosm.saga.completed", "{order}"),
        ["microcosm_saga_completed_total"]
    );
}
