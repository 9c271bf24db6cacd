#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let v = &crd.spec.versions[0];
    serde_json::to_value(
        v.schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn validate(crd: &CustomResourceDefinition, obj: &Value, old: Option<&Value>) -> Vec<String> {
    match kube_cel::Validator::new().validate(&schema_of(crd), obj, old) {
        Ok(()) => vec![],
        Err(errs) => errs.into_vec().into_iter().map(|e| e.to_string()).collect(),
    }
}

fn idb(spec: Value) -> Value {
    json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
           "metadata": {"name": "a", "namespace": "ns"}, "spec": spec})
}

#[test]
fn checked_in_yaml_matches_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    for (file, crd) in all_crds() {
        let want = crd_yaml(&crd).unwrap();
        let chart = chart_crd_yaml(&crd).unwrap();
        for (dir, want) in [
            ("crds", &want),
            ("charts/instant-db-operator/templates/crds", &chart),
        ] {
            let got = std::fs::read_to_string(root.join(dir).join(file)).unwrap_or_default();
            assert!(
                &got == want,
                "{dir}/{file} is stale: run `cargo run -p instant-db-crds --bin crdgen`"
            );
        }
        // and the YAML parses back into the same CRD
        let back: CustomResourceDefinition =
            serde_norway::from_str(want.split_once("---\n").unwrap().1).unwrap();
        assert_eq!(back, crd);
    }
}

#[test]
fn chart_crds_are_kept_on_uninstall_and_switchable() {
    let crd = InstantDb::crd();
    let chart = chart_crd_yaml(&crd).unwrap();
    assert!(chart.contains("{{- if .Values.crds.install }}"), "{chart}");
    assert!(chart.trim_end().ends_with("{{- end }}"));
    let body = chart
        .split_once("---\n")
        .unwrap()
        .1
        .rsplit_once("{{- end }}")
        .unwrap()
        .0;
    let back: CustomResourceDefinition = serde_norway::from_str(body).unwrap();
    assert_eq!(
        back.metadata.annotations.unwrap()["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(back.spec, crd.spec);
}

#[test]
fn a_crd_with_template_syntax_is_refused_for_the_chart() {
    let mut crd = InstantDb::crd();
    crd.spec.names.plural = "{{ oops }}".into();
    assert!(matches!(
        chart_crd_yaml(&crd),
        Err(Error::TemplateSyntax { .. })
    ));
}

#[test]
fn crds_have_names_categories_status_and_no_defaults() {
    for (_, crd) in all_crds() {
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["instantdb".to_string()][..])
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, VERSION);
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let text = serde_json::to_string(&schema_of(&crd)).unwrap();
        assert!(
            !text.contains("\"default\":"),
            "{}: schema has a server-side default",
            crd.spec.names.kind
        );
        assert!(
            !text.contains("x-kubernetes-preserve-unknown-fields"),
            "untyped field in {}",
            crd.spec.names.kind
        );
    }
    let idb = InstantDb::crd();
    assert_eq!(
        idb.spec.names.short_names.as_deref(),
        Some(&["idb".to_string()][..])
    );
    let cols: Vec<_> = idb.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.priority.unwrap_or(0)))
        .collect();
    // the recovery window only with `-o wide` (priority 1)
    assert_eq!(
        cols,
        [
            ("Ready", 0),
            ("Phase", 0),
            ("Docs", 0),
            ("Last Backup", 0),
            ("Recoverable From", 1),
            ("Last Archived", 1),
            ("Age", 0)
        ]
    );
}

/// Every property in every schema carries a description (from the doc comments).
#[test]
fn every_field_is_documented() {
    fn walk(path: &str, v: &Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p.get("description").is_none()
                    && !["apiVersion", "kind", "metadata"].contains(&k.as_str())
                {
                    missing.push(here.clone());
                }
                walk(&here, p, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for (_, crd) in all_crds() {
        let mut missing = vec![];
        walk(&crd.spec.names.kind, &schema_of(&crd), &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }
}

#[test]
fn minimal_instantdb_round_trips_without_added_fields() {
    let obj = idb(json!({"storage": {"size": "1Gi"}}));
    let typed: InstantDb = serde_json::from_value(obj.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), obj);
    assert!(validate(&InstantDb::crd(), &obj, None).is_empty());
}

#[test]
fn full_instantdb_round_trips() {
    let obj = idb(json!({
        "image": "ghcr.io/x/instant-db:1", "replicas": 1,
        "storage": {"size": "5Gi", "storageClassName": "fast", "deletionPolicy": "Delete"},
        "resources": {"limits": {"memory": "2Gi"}},
        "embedding": {"model": "m", "modelSource": {"claimName": "models"}, "batchSize": 16, "threads": 2},
        "vectorStore": {"type": "qdrant", "qdrant": {"url": "http://q:6334", "collection": "c",
            "apiKeySecret": {"name": "s", "key": "k"}}},
        "recovery": {"autoRestore": true, "integrityCheckInterval": "1h30m"},
        "logging": {"level": "debug", "format": "text"},
        "otel": {"endpoint": "http://otel:4318", "serviceName": "idb", "samplingRatio": 0.5},
        "podTemplate": {"nodeSelector": {"a": "b"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
        "suspend": false
    }));
    let typed: InstantDb = serde_json::from_value(obj.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), obj);
    assert_eq!(
        validate(&InstantDb::crd(), &obj, None),
        Vec::<String>::new()
    );
}

#[test]
fn instantdb_cel_rules_reject_bad_objects() {
    let crd = InstantDb::crd();
    let cases = [
        (
            json!({"storage": {"size": "1Gi"}, "replicas": 3}),
            "replicas must be 1",
        ),
        (json!({"storage": {"size": "lots"}}), "positive quantity"),
        (json!({"storage": {"size": "0"}}), "positive quantity"),
        (
            json!({"storage": {"size": "1Gi"}, "vectorStore": {"type": "qdrant"}}),
            "needs vectorStore.qdrant",
        ),
        (
            json!({"storage": {"size": "1Gi"}, "vectorStore": {"qdrant": {"url": "http://q"}}}),
            "only allowed with vectorStore.type: qdrant",
        ),
    ];
    for (spec, msg) in cases {
        let errs = validate(&crd, &idb(spec.clone()), None);
        assert!(
            errs.iter().any(|e| e.contains(msg)),
            "{spec}: expected {msg:?}, got {errs:?}"
        );
    }
}

// The rule runs at the root (`self.metadata.name`), as a real API server evaluates it.
#[test]
fn instantdb_names_must_be_dns_1035_labels_short_enough_for_every_child() {
    let crd = InstantDb::crd();
    let named = |name: &str| {
        let mut obj = idb(json!({"storage": {"size": "1Gi"}}));
        obj["metadata"]["name"] = json!(name);
        validate(&crd, &obj, None)
    };
    assert_eq!(named("docs"), Vec::<String>::new());
    assert_eq!(named("search-2"), Vec::<String>::new());
    assert_eq!(named(&"a".repeat(52)), Vec::<String>::new());
    for bad in ["Docs", "1docs", "docs-", "my.docs", "my_docs"] {
        assert!(
            named(bad).iter().any(|e| e.contains("DNS-1035 label")),
            "{bad}: {:?}",
            named(bad)
        );
    }
    assert!(
        named(&"a".repeat(53))
            .iter()
            .any(|e| e.contains("at most 52 characters"))
    );
}

#[test]
fn storage_class_is_immutable() {
    let crd = InstantDb::crd();
    let old = idb(json!({"storage": {"size": "1Gi", "storageClassName": "a"}}));
    let changed = idb(json!({"storage": {"size": "1Gi", "storageClassName": "b"}}));
    let removed = idb(json!({"storage": {"size": "1Gi"}}));
    let grown = idb(json!({"storage": {"size": "2Gi", "storageClassName": "a"}}));
    assert!(
        validate(&crd, &changed, Some(&old))
            .iter()
            .any(|e| e.contains("immutable"))
    );
    assert!(
        validate(&crd, &removed, Some(&old))
            .iter()
            .any(|e| e.contains("immutable"))
    );
    assert!(validate(&crd, &grown, Some(&old)).is_empty());
}

#[test]
fn bootstrap_names_exactly_one_backup_and_is_immutable() {
    let crd = InstantDb::crd();
    let with =
        |from: Value| idb(json!({"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": from}}));
    let by_name = with(json!({"backup": "nightly-1"}));
    let by_source = with(json!({"source": {"backupId": "nightly-1-0f3c2a9e",
        "destination": {"s3": {"bucket": "b", "prefix": "prod/docs", "credentialsSecret": "creds"}}}}));
    assert_eq!(validate(&crd, &by_name, None), Vec::<String>::new());
    assert_eq!(validate(&crd, &by_source, None), Vec::<String>::new());
    let typed: InstantDb = serde_json::from_value(by_source.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), by_source);
    for bad in [
        json!({}),
        json!({"backup": "x", "source": {"backupId": "y", "destination": {"volume": {"claimName": "c"}}}}),
    ] {
        assert!(
            validate(&crd, &with(bad.clone()), None)
                .iter()
                .any(|e| e.contains("exactly one of backup")),
            "{bad}"
        );
    }
    // the id's pattern is schema validation (the API server's, not CEL): it is in the schema
    let schema = schema_of(&crd).to_string();
    assert!(
        schema.contains(r#"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"#),
        "backupId pattern"
    );
    let plain = idb(json!({"storage": {"size": "1Gi"}}));
    for (old, new) in [
        (&by_name, &by_source),
        (&by_name, &plain),
        (&plain, &by_name),
    ] {
        assert!(
            validate(&crd, new, Some(old))
                .iter()
                .any(|e| e.contains("spec.bootstrap is immutable")),
            "{old} -> {new}"
        );
    }
    let mut grown = by_name.clone();
    grown["spec"]["storage"]["size"] = json!("2Gi");
    assert_eq!(validate(&crd, &grown, Some(&by_name)), Vec::<String>::new());
    assert_eq!(validate(&crd, &plain, Some(&plain)), Vec::<String>::new());
}

fn policy(spec: Value) -> Value {
    json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
           "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
}

#[test]
fn policy_rules() {
    let crd = InstantDbBackupPolicy::crd();
    let good = policy(json!({"instance": "a", "schedule": "0 3 * * *",
        "retention": {"keepLast": 3, "maxAge": "720h"},
        "destination": {"s3": {"bucket": "b", "credentialsSecret": "creds", "endpoint": "http://minio:9000"}}}));
    assert_eq!(validate(&crd, &good, None), Vec::<String>::new());
    let typed: InstantDbBackupPolicy = serde_json::from_value(good.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), good);
    // one example of each object store: valid, and typed without loss
    for destination in [
        json!({"gcs": {"bucket": "idb-backups", "path": "prod", "credentialsSecret": "gcs-key"}}),
        json!({"gcs": {"bucket": "idb-backups"}}),
        json!({"azure": {"storageAccount": "idbprod", "container": "backups", "path": "prod",
                         "credentialsSecret": "azure-key"}}),
    ] {
        let p = policy(json!({"instance": "a", "schedule": "@daily", "destination": destination}));
        assert_eq!(
            validate(&crd, &p, None),
            Vec::<String>::new(),
            "{destination}"
        );
        let typed: InstantDbBackupPolicy = serde_json::from_value(p.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), p);
    }
    let cases = [
        (
            json!({"schedule": "@daily", "destination": {"volume": {"claimName": "b"}}}),
            "exactly one of instance or selector",
        ),
        (
            json!({"instance": "a", "selector": {}, "schedule": "@daily", "destination": {"volume": {"claimName": "b"}}}),
            "exactly one of instance or selector",
        ),
        (
            json!({"instance": "a", "schedule": "@daily", "destination": {"s3": {"credentialsSecret": "c"}}}),
            "needs a bucket",
        ),
        (
            json!({"instance": "a", "schedule": "@daily", "destination": {"s3": {"bucket": "b", "credentialsSecret": ""}}}),
            "credentialsSecret must not be empty",
        ),
        (
            json!({"instance": "a", "schedule": "@daily", "destination": {}}),
            "exactly one of volume, s3, gcs or azure",
        ),
        (
            json!({"instance": "a", "schedule": "@daily", "destination": {
                "s3": {"bucket": "b"}, "gcs": {"bucket": "b"}}}),
            "exactly one of volume, s3, gcs or azure",
        ),
        (
            json!({"instance": "a", "schedule": "@daily", "destination": {
                "gcs": {"bucket": "b", "credentialsSecret": ""}}}),
            "gcs credentialsSecret must not be empty",
        ),
        (
            json!({"instance": "a", "schedule": "@daily", "destination": {
                "azure": {"storageAccount": "acct", "container": "c1", "credentialsSecret": ""}}}),
            "azure credentialsSecret must not be empty",
        ),
    ];
    for (spec, msg) in cases {
        let errs = validate(&crd, &policy(spec.clone()), None);
        assert!(
            errs.iter().any(|e| e.contains(msg)),
            "{spec}: expected {msg:?}, got {errs:?}"
        );
    }
}

#[test]
fn backup_and_restore_specs_are_immutable() {
    let b = |inst: &str| {
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackup",
               "metadata": {"name": "b"}, "spec": {"instance": inst}})
    };
    let crd = InstantDbBackup::crd();
    assert!(validate(&crd, &b("x"), Some(&b("x"))).is_empty());
    assert!(
        validate(&crd, &b("y"), Some(&b("x")))
            .iter()
            .any(|e| e.contains("immutable"))
    );
    let r = |bk: &str| {
        json!({"apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbRestore",
               "metadata": {"name": "r"}, "spec": {"instance": "x", "backup": bk}})
    };
    let crd = InstantDbRestore::crd();
    assert!(validate(&crd, &r("b1"), None).is_empty());
    assert!(
        validate(&crd, &r("b2"), Some(&r("b1")))
            .iter()
            .any(|e| e.contains("immutable"))
    );
}
