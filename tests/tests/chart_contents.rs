//! What the Helm chart renders (real `helm template`) against the code it ships:
//! - its CRDs are exactly what `crdgen` generates from the Rust types, kept on uninstall;
//! - image tags default to the chart's appVersion, operator PDB and anti-affinity rules;
//! - its PrometheusRule and Grafana dashboard use only metrics the code registers: every
//!   expression parses as PromQL (`promql-parser`), every metric it selects is exported by the
//!   engine or the operator, and every label it matches on exists on that metric (besides the
//!   target labels Prometheus adds). `promtool` is not in the package registries; this is the
//!   check that keeps an alert from silently never firing after a metric is renamed.
//!
//! The chart's RBAC against the operator's requests is tested in `operator/tests/chart.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::Deserialize;
use serde_json::Value;

/// Labels Prometheus (with the Prometheus Operator's ServiceMonitor relabeling) puts on every
/// scraped series, plus `le` of histogram buckets.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "pod",
    "service",
    "endpoint",
    "container",
    "job",
    "instance",
    "le",
];

fn helm() -> PathBuf {
    std::env::var_os("HELM")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"))
}

fn render_chart(set: &[&str]) -> Vec<Value> {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/instant-db-operator");
    let mut cmd = Command::new(helm());
    cmd.args(["template", "idb"]).arg(chart);
    for value in set {
        cmd.args(["--set", value]);
    }
    let out = cmd
        .output()
        .expect("run helm (scripts/install-helm.sh installs it; set HELM to its path)");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Metric name → label names, from the text exposition of a registry.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.split_once('}').unwrap().0),
            None => (line.split_whitespace().next().unwrap(), ""),
        };
        let entry = out.entry(name.to_string()).or_default();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            entry.insert(pair.split_once('=').unwrap().0.to_string());
        }
    }
    out
}

/// Every metric both binaries export, each with at least one sample of every labelled family
/// (a labelled family appears in the exposition only once a label set exists).
fn exported_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let engine = instant_db::metrics::Metrics::new().unwrap();
    engine.ingest_documents.with_label_values(&["ok"]).inc();
    engine.ingest_chunks.inc();
    engine.embedding_duration.observe(0.1);
    engine.embedded_texts.inc();
    engine
        .search_duration
        .with_label_values(&["hybrid"])
        .observe(0.01);
    engine.observe_backup(false, 1.0);
    engine.observe_restore(false, 1.0);
    engine.observe_integrity(Some(true), 0.1);
    engine.observe_http("GET", "/health", 200, 0.001);
    engine.observe_data_volume(1, 2);
    engine
        .circuit_breaker_state
        .with_label_values(&["embedding"])
        .set(2);

    let operator = instant_db_operator::metrics::Metrics::new().unwrap();
    operator
        .reconciles
        .with_label_values(&["instantdb", "ok"])
        .inc();
    operator
        .duration
        .with_label_values(&["instantdb"])
        .observe(0.01);
    operator
        .errors
        .with_label_values(&["instantdb", "api", "Conflict"])
        .inc();
    operator
        .writes
        .with_label_values(&["instantdb", "StatefulSet", "patch"])
        .inc();
    let condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "Ready".into(),
        status: "True".into(),
        reason: "EngineReady".into(),
        message: String::new(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
        observed_generation: Some(1),
    };
    operator.observe_instance(
        "ns",
        "docs",
        &[condition],
        Some(&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        )),
    );

    let mut all = exported(&engine.render());
    all.extend(exported(&operator.render()));
    all
}

/// Every vector selector in an expression: (metric name, label names matched on).
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    struct Collect(Vec<(String, Vec<String>)>);
    impl ExprVisitor for Collect {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            let vs = match e {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let labels = vs
                .matchers
                .matchers
                .iter()
                .map(|m| m.name.clone())
                .filter(|n| n != "__name__")
                .collect();
            self.0.push((vs.name.clone().unwrap_or_default(), labels));
            Ok(true)
        }
    }
    let ast = parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {expr}\n{e}"));
    let mut c = Collect(Vec::new());
    walk_expr(&mut c, &ast).unwrap();
    c.0
}

/// Problems of one expression against the exported metrics.
fn problems(expr: &str, metrics: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, labels) in selectors(expr) {
        let Some(known) = metrics.get(&name) else {
            out.push(format!("{name}: no such metric"));
            continue;
        };
        for l in labels {
            if !known.contains(&l) && !TARGET_LABELS.contains(&l.as_str()) {
                out.push(format!("{name}: no label {l} (it has {known:?})"));
            }
        }
    }
    out
}

fn alert_rules() -> Vec<Value> {
    let objects = render_chart(&["metrics.prometheusRule.enabled=true"]);
    let rule = objects
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("PrometheusRule rendered");
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn every_alert_parses_and_uses_only_exported_metrics_and_labels() {
    let metrics = exported_metrics();
    let rules = alert_rules();
    assert!(rules.len() >= 10, "{} alerts", rules.len());
    for rule in &rules {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        let p = problems(expr, &metrics);
        assert!(p.is_empty(), "alert {name}: {p:?}\n{expr}");
    }
}

#[test]
fn every_alert_has_severity_summary_and_a_runbook_section_in_the_docs() {
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operator.md"))
            .unwrap()
            .to_lowercase();
    for rule in alert_rules() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            ["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{name}: severity"
        );
        assert!(
            rule["annotations"]["summary"].is_string(),
            "{name}: summary"
        );
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url.rsplit_once('#').unwrap().1;
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
        assert!(
            docs.contains(&format!("### {anchor}")),
            "docs/operator.md has no runbook heading `### {name}`"
        );
    }
}

#[test]
fn every_dashboard_query_uses_only_exported_metrics_and_labels() {
    let metrics = exported_metrics();
    let objects = render_chart(&["metrics.grafanaDashboard.enabled=true"]);
    let cm = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("dashboard ConfigMap with the sidecar label");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["instant-db.json"].as_str().unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$namespace", "x");
            let p = problems(&expr, &metrics);
            assert!(p.is_empty(), "panel {}: {p:?}", panel["title"]);
        }
    }
}

#[test]
fn the_metric_check_finds_a_renamed_metric_and_an_unknown_label() {
    // Guards the tests above: a typo must not pass.
    let metrics = exported_metrics();
    assert!(!problems("instantdb_integrity_okk == 0", &metrics).is_empty());
    assert!(!problems(r#"instantdb_integrity_ok{phase="x"} == 0"#, &metrics).is_empty());
    assert!(problems(r#"instantdb_integrity_ok{pod="x"} == 0"#, &metrics).is_empty());
}

fn chart_yaml() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/instant-db-operator/Chart.yaml"),
    )
    .unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn the_chart_renders_the_generated_crds_kept_on_uninstall() {
    let objects = render_chart(&[]);
    let crds = of_kind(&objects, "CustomResourceDefinition");
    let generated = instant_db_crds::all_crds();
    assert_eq!(crds.len(), generated.len());
    for (_, crd) in generated {
        let name = crd.metadata.name.clone().unwrap();
        let rendered = crds
            .iter()
            .find(|c| c["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not rendered"));
        assert_eq!(
            rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}: helm uninstall would delete it and every object of its kind"
        );
        assert_eq!(
            rendered["spec"],
            serde_json::to_value(&crd.spec).unwrap(),
            "{name}"
        );
    }
    assert!(
        of_kind(
            &render_chart(&["crds.install=false"]),
            "CustomResourceDefinition"
        )
        .is_empty(),
        "crds.install=false leaves CRDs to the user"
    );
}

fn operator_env(objects: &[Value], name: &str) -> String {
    let deployment = of_kind(objects, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn images_default_to_the_charts_app_version() {
    let app_version = chart_yaml()["appVersion"].as_str().unwrap().to_string();
    // The images are built with the workspace version (scripts/build-images.sh).
    assert_eq!(
        app_version,
        env!("CARGO_PKG_VERSION"),
        "Chart.yaml appVersion"
    );
    let objects = render_chart(&[]);
    let deployment = of_kind(&objects, "Deployment")[0];
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/instant-db/instant-db-operator:{app_version}").as_str()
    );
    assert_eq!(
        operator_env(&objects, "INSTANT_DB_ENGINE_IMAGE"),
        format!("ghcr.io/instant-db/instant-db:{app_version}")
    );
    let pinned = render_chart(&["engineImage.tag=9.9.9"]);
    assert_eq!(
        operator_env(&pinned, "INSTANT_DB_ENGINE_IMAGE"),
        "ghcr.io/instant-db/instant-db:9.9.9"
    );
}

#[test]
fn the_operator_gets_a_pdb_only_with_more_than_one_replica_and_spreads_over_nodes() {
    let two = render_chart(&["replicaCount=2"]);
    let pdbs = of_kind(&two, "PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1);
    assert_eq!(pdbs[0]["spec"]["minAvailable"], 1);
    assert!(
        of_kind(&render_chart(&["replicaCount=1"]), "PodDisruptionBudget").is_empty(),
        "a PDB on one replica would block every node drain"
    );
    let pod = &of_kind(&two, "Deployment")[0]["spec"]["template"]["spec"];
    let preferred =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        preferred[0]["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    let hard = render_chart(&["podAntiAffinity=hard"]);
    assert!(
        of_kind(&hard, "Deployment")[0]["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]
            .is_array()
    );
}
