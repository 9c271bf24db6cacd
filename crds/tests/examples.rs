//! Every manifest under `examples/` is accepted as `kubectl apply` would accept it: each object of
//! an instant-db kind passes its CRD's OpenAPI schema (types, patterns, enums, ranges, required
//! fields, and no unknown fields: kubectl's default `--validate=strict`) checked with `jsonschema`,
//! its CEL rules (evaluated by `kube-cel`, as the API server's admission would), and reads into the
//! Rust type the operator uses; every other object reads into its Kubernetes type. So no example
//! rots when a type changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use instant_db_crds::{
    InstantDb, InstantDbBackup, InstantDbBackupPolicy, InstantDbRestore, all_crds,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every YAML document of every example, with the file it came from.
fn example_objects() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            if !v.is_null() {
                out.push((name.clone(), v));
            }
        }
    }
    out
}

fn crd_of(kind: &str) -> Option<CustomResourceDefinition> {
    all_crds()
        .into_iter()
        .map(|(_, crd)| crd)
        .find(|crd| crd.spec.names.kind == kind)
}

/// The schema with unknown fields refused wherever it lists properties, as strict field
/// validation does (the API server would otherwise prune them silently).
fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), strict(v))).collect();
            if out.contains_key("properties") && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

/// The problems admission would report for `obj`: OpenAPI schema (`jsonschema`, draft 4 as
/// OpenAPI 3.0 schemas are) and CEL rules (`kube-cel`).
fn admission_errors(crd: &CustomResourceDefinition, obj: &Value) -> Vec<String> {
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    // apiVersion, kind and metadata are checked by the API server's own rules, not the schema.
    let mut body = obj.clone();
    for field in ["apiVersion", "kind", "metadata"] {
        body.as_object_mut().unwrap().remove(field);
    }
    let mut strict_schema = strict(&schema);
    strict_schema["properties"]
        .as_object_mut()
        .unwrap()
        .remove("metadata");
    let validator = jsonschema::draft4::new(&strict_schema).expect("CRD schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(errs) = kube_cel::Validator::new().validate(&schema, obj, None) {
        errors.extend(errs.into_vec().into_iter().map(|e| e.to_string()));
    }
    errors
}

fn read_as(kind: &str, obj: &Value) -> Result<(), serde_json::Error> {
    let o = obj.clone();
    match kind {
        "InstantDb" => serde_json::from_value::<InstantDb>(o).map(drop),
        "InstantDbBackupPolicy" => serde_json::from_value::<InstantDbBackupPolicy>(o).map(drop),
        "InstantDbBackup" => serde_json::from_value::<InstantDbBackup>(o).map(drop),
        "InstantDbRestore" => serde_json::from_value::<InstantDbRestore>(o).map(drop),
        "Secret" => serde_json::from_value::<Secret>(o).map(drop),
        // cert-manager's kinds: their CRDs are not part of this repository, so only what the
        // operator depends on is checked (`the_cert_manager_example_...` below).
        "Issuer" | "Certificate" if obj["apiVersion"] == "cert-manager.io/v1" => Ok(()),
        "PersistentVolumeClaim" => serde_json::from_value::<PersistentVolumeClaim>(o).map(drop),
        other => panic!("example of kind {other}: add it to read_as"),
    }
}

#[test]
fn every_example_passes_admission_and_reads_into_its_type() {
    let objects = example_objects();
    assert!(
        objects.len() >= 5,
        "expected the documented examples, found {}",
        objects.len()
    );
    for (file, obj) in &objects {
        let kind = obj["kind"].as_str().unwrap_or_default();
        if let Some(crd) = crd_of(kind) {
            assert_eq!(
                obj["apiVersion"], "instantdb.io/v1alpha1",
                "{file}: {kind} apiVersion"
            );
            let errors = admission_errors(&crd, obj);
            assert!(errors.is_empty(), "{file}: {kind} is refused: {errors:?}");
        }
        read_as(kind, obj).unwrap_or_else(|e| panic!("{file}: {kind} does not read: {e}"));
    }
}

#[test]
fn every_kind_has_an_example() {
    let objects = example_objects();
    for (_, crd) in all_crds() {
        let kind = &crd.spec.names.kind;
        assert!(
            objects.iter().any(|(_, o)| o["kind"] == kind.as_str()),
            "no example shows {kind}"
        );
    }
}

fn first_example(kind: &str) -> Value {
    example_objects()
        .into_iter()
        .find(|(_, o)| o["kind"] == kind)
        .unwrap()
        .1
}

// These guard the test above: the same check must refuse what the API server would refuse.

#[test]
fn admission_check_refuses_a_cel_violation() {
    let mut db = first_example("InstantDb");
    db["spec"]["replicas"] = 2.into();
    let errors = admission_errors(&crd_of("InstantDb").unwrap(), &db);
    assert!(
        errors.iter().any(|e| e.contains("replicas must be 1")),
        "{errors:?}"
    );
}

#[test]
fn admission_check_refuses_a_pattern_violation() {
    let mut policy = first_example("InstantDbBackupPolicy");
    policy["spec"]["retention"]["maxAge"] = "30d".into();
    let errors = admission_errors(&crd_of("InstantDbBackupPolicy").unwrap(), &policy);
    assert!(
        errors.iter().any(|e| e.contains("/spec/retention/maxAge")),
        "{errors:?}"
    );
}

#[test]
fn admission_check_refuses_an_unknown_field() {
    let mut db = first_example("InstantDb");
    db["spec"]["storage"]["sizee"] = "1Gi".into();
    let errors = admission_errors(&crd_of("InstantDb").unwrap(), &db);
    assert!(errors.iter().any(|e| e.contains("sizee")), "{errors:?}");
}

/// The cert-manager example makes the Secret its InstantDb names, signed by a CA (so the
/// Secret has `ca.crt`), for the names the docs list: the pod's headless-Service name, which the
/// operator verifies, and the client Service's.
#[test]
fn the_cert_manager_example_makes_the_secret_its_instance_names_for_the_names_the_operator_verifies()
 {
    let objects: Vec<Value> = example_objects()
        .into_iter()
        .filter(|(file, _)| file == "tls-cert-manager.yaml")
        .map(|(_, o)| o)
        .collect();
    let db = objects.iter().find(|o| o["kind"] == "InstantDb").unwrap();
    let name = db["metadata"]["name"].as_str().unwrap();
    let secret = db["spec"]["tls"]["secretName"].as_str().unwrap();
    let cert = objects
        .iter()
        .find(|o| o["kind"] == "Certificate" && o["spec"]["secretName"] == secret)
        .expect("a Certificate writing the instance's Secret");
    let names: Vec<&str> = cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    // The example's namespace is `default` (its comment says to replace it).
    for wanted in [
        format!("{name}-0.{name}-headless.default.svc"),
        format!("{name}.default.svc"),
    ] {
        assert!(
            names.contains(&wanted.as_str()),
            "{wanted} not in {names:?}"
        );
    }
    let issuer = cert["spec"]["issuerRef"]["name"].as_str().unwrap();
    let issuer = objects
        .iter()
        .find(|o| o["kind"] == "Issuer" && o["metadata"]["name"] == issuer)
        .expect("the Certificate's Issuer");
    assert!(
        issuer["spec"]["ca"].is_object(),
        "signed by a CA issuer, so the Secret carries ca.crt: {issuer}"
    );
}

/// The point-in-time fields refuse what the operator could not send: a target that is not
/// `latest` or an RFC 3339 time with its zone, a source without backupId nor targetTime, and a
/// maxLagSeconds out of 1..3600.
#[test]
fn point_in_time_fields_are_checked_at_admission() {
    let objects = example_objects();
    let of = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|(_, o)| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} example"))
            .1
            .clone()
    };
    let restore_crd = crd_of("InstantDbRestore").unwrap();
    let mut restore = of("InstantDbRestore", "ledger-before-import");
    for good in [
        "latest",
        "2026-12-02T05:00:00.5+02:00",
        "2026-12-02t05:00:00z",
    ] {
        restore["spec"]["targetTime"] = good.into();
        assert!(
            admission_errors(&restore_crd, &restore).is_empty(),
            "{good}"
        );
    }
    for bad in [
        "yesterday",
        "2026-12-02T05:00:00",
        "2026-12-02 05:00:00Z",
        "",
    ] {
        restore["spec"]["targetTime"] = bad.into();
        let errors = admission_errors(&restore_crd, &restore);
        assert!(
            errors.iter().any(|e| e.contains("/spec/targetTime")),
            "{bad}: {errors:?}"
        );
    }
    let db_crd = crd_of("InstantDb").unwrap();
    let mut clone = of("InstantDb", "ledger-at-five");
    clone["spec"]["bootstrap"]["fromBackup"]
        .as_object_mut()
        .unwrap()
        .remove("targetTime");
    let errors = admission_errors(&db_crd, &clone);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("needs backupId, unless targetTime")),
        "{errors:?}"
    );
    let policy_crd = crd_of("InstantDbBackupPolicy").unwrap();
    let mut policy = of("InstantDbBackupPolicy", "ledger-pitr");
    for (lag, ok) in [(0, false), (1, true), (3600, true), (3601, false)] {
        policy["spec"]["continuousArchiving"]["maxLagSeconds"] = lag.into();
        assert_eq!(
            admission_errors(&policy_crd, &policy).is_empty(),
            ok,
            "{lag}"
        );
    }
    policy["spec"]["continuousArchiving"]["maxLagSeconds"] = 5.into();
    policy["spec"]["continuousArchiving"]["maxBufferBytes"] = 1000.into();
    assert!(!admission_errors(&policy_crd, &policy).is_empty());
}
