#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use instant_db_crds::InstantDb;
use serde_json::json;

/// An InstantDb `search/docs` with this spec (also used by the builders' own test modules).
pub(super) fn db(spec: serde_json::Value) -> InstantDb {
    serde_json::from_value(json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "docs", "namespace": "search", "uid": "11111111-2222-3333-4444-555555555555", "generation": 1},
        "spec": spec
    }))
    .unwrap()
}

/// API keys of the tests (what the controller would have read from `<name>-api`).
static API_KEYS: std::sync::LazyLock<ApiKeys> = std::sync::LazyLock::new(|| ApiKeys {
    read: "test-read-key-0123456789".into(),
    write: "test-write-key-0123456789".into(),
});

fn input(db: &InstantDb) -> BuildInput<'_> {
    BuildInput {
        db,
        default_image: "ghcr.io/instant-db/instant-db:0.1.0",
        admin_token: "test-token",
        api_keys: &API_KEYS,
        operator_namespace: "idb-system",
        service_monitor_crd: true,
        existing_claim_templates: None,
        tls_secret: None,
        bootstrap_from: None,
        backup_claims: &[],
        bootstrap_to_time: None,
        archive: None,
    }
}

fn render(d: &Desired) -> String {
    let mut docs = vec![
        serde_norway::to_string(&d.config_map).unwrap(),
        serde_norway::to_string(&d.secret).unwrap(),
        serde_norway::to_string(&d.api_secret).unwrap(),
        serde_norway::to_string(&d.headless_service).unwrap(),
        serde_norway::to_string(&d.service).unwrap(),
        serde_norway::to_string(&d.statefulset).unwrap(),
    ];
    if let Some(p) = &d.pdb {
        docs.push(serde_norway::to_string(p).unwrap());
    }
    if let Some(np) = &d.network_policy {
        docs.push(serde_norway::to_string(np).unwrap());
    }
    if let Some(sm) = &d.service_monitor {
        docs.push(serde_norway::to_string(sm).unwrap());
    }
    docs.iter().map(|d| format!("---\n{d}")).collect()
}

/// Compares with `operator/tests/snapshots/<name>.yaml`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.yaml"));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "snapshot {} differs; review and rerun with UPDATE_SNAPSHOTS=1. Got:\n{got}",
        path.display()
    );
}

#[test]
fn minimal_snapshot() {
    let db = db(json!({"storage": {"size": "1Gi"}}));
    snapshot("minimal", &render(&desired(&input(&db)).unwrap()));
}

#[test]
fn full_snapshot() {
    let db = db(json!({
        "image": "registry.example/instant-db:1.2.3", "replicas": 1,
        "storage": {"size": "5Gi", "storageClassName": "fast", "deletionPolicy": "Delete"},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "embedding": {"model": "all-MiniLM-L6-v2", "modelSource": {"claimName": "models", "subPath": "minilm"}, "batchSize": 16, "threads": 2},
        "vectorStore": {"type": "qdrant", "qdrant": {"url": "http://qdrant:6334", "apiKeySecret": {"name": "qdrant", "key": "api-key"}}},
        "recovery": {"autoRestore": true, "integrityCheckInterval": "1h30m"},
        "logging": {"level": "debug", "format": "text"},
        "otel": {"endpoint": "http://otel:4318", "samplingRatio": 0.25},
        "podTemplate": {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "search", "effect": "NoSchedule"}]},
        "disruption": {"protect": true}
    }));
    snapshot("full", &render(&desired(&input(&db)).unwrap()));
}

#[test]
fn a_pdb_only_when_disruption_protect_is_set_and_not_suspended() {
    let d = desired(&input(&db(json!({"storage": {"size": "1Gi"}})))).unwrap();
    assert!(
        d.pdb.is_none(),
        "one pod under minAvailable: 1 blocks every drain"
    );
    let protected = db(json!({"storage": {"size": "1Gi"}, "disruption": {"protect": true}}));
    let pdb = desired(&input(&protected)).unwrap().pdb.unwrap();
    assert_eq!(
        pdb.spec.unwrap().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    let suspended =
        db(json!({"storage": {"size": "1Gi"}, "disruption": {"protect": true}, "suspend": true}));
    assert!(desired(&input(&suspended)).unwrap().pdb.is_none());
}

#[test]
fn suspended_scales_to_zero_without_pdb() {
    let db = db(json!({"storage": {"size": "1Gi"}, "suspend": true}));
    let d = desired(&input(&db)).unwrap();
    assert_eq!(d.statefulset.spec.as_ref().unwrap().replicas, Some(0));
    assert!(d.pdb.is_none());
}

#[test]
fn restricted_security_context_and_probes() {
    let db = db(json!({"storage": {"size": "1Gi"}}));
    let d = desired(&input(&db)).unwrap();
    let pod = d
        .statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&c.liveness_probe), "/health/live");
    assert_eq!(path(&c.readiness_probe), "/health/ready");
    assert!(c.startup_probe.is_some());
    assert_eq!(
        c.args.as_ref().unwrap().join(" "),
        "serve --listen 0.0.0.0:8080 --data-dir /data"
    );
    let env: Vec<_> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
        .collect();
    assert!(env.contains(&("INSTANT_DB_CONFIG", "/etc/instant-db/config.yaml".into())));
    assert!(env.contains(&(
        "INSTANT_DB_ADMIN_TOKEN_FILE",
        "/etc/instant-db/admin/token".into()
    )));
    assert!(
        pod.volumes
            .as_ref()
            .unwrap()
            .iter()
            .any(|v| v.name == "tmp" && v.empty_dir.is_some())
    );
    // owner references and labels on everything
    for meta in [
        &d.config_map.metadata,
        &d.secret.metadata,
        &d.service.metadata,
        &d.statefulset.metadata,
    ] {
        assert_eq!(
            meta.owner_references.as_ref().unwrap()[0].uid,
            "11111111-2222-3333-4444-555555555555"
        );
        let l = meta.labels.as_ref().unwrap();
        for k in [
            "name",
            "instance",
            "component",
            "managed-by",
            "part-of",
            "version",
        ] {
            assert!(
                l.contains_key(&format!("app.kubernetes.io/{k}")),
                "missing label {k}"
            );
        }
    }
}

#[test]
fn config_change_changes_pod_template_hash_and_token_is_kept() {
    let a = db(json!({"storage": {"size": "1Gi"}}));
    let b = db(json!({"storage": {"size": "1Gi"}, "embedding": {"batchSize": 8}}));
    let ha = desired(&input(&a))
        .unwrap()
        .statefulset
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    let hb = desired(&input(&b))
        .unwrap()
        .statefulset
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_ne!(ha[CONFIG_HASH_ANNOTATION], hb[CONFIG_HASH_ANNOTATION]);
    let new_token = BuildInput {
        admin_token: "another-token",
        ..input(&a)
    };
    let hc = desired(&new_token)
        .unwrap()
        .statefulset
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_ne!(
        ha[CONFIG_HASH_ANNOTATION], hc[CONFIG_HASH_ANNOTATION],
        "a new admin token restarts the pod"
    );
    let s = desired(&input(&a)).unwrap().secret;
    assert_eq!(s.data.unwrap()[ADMIN_TOKEN_KEY].0, b"test-token");
    assert_eq!(generate_token().len(), 64);
    assert_ne!(generate_token(), generate_token());
}

/// The engine follows its level file, so the level goes to the ConfigMap (which the kubelet
/// updates in the running pod) and not into the pod template: no restart.
#[test]
fn a_log_level_change_reaches_the_config_map_and_not_the_pod_template() {
    let a = db(json!({"storage": {"size": "1Gi"}}));
    let b = db(json!({"storage": {"size": "1Gi"}, "logging": {"level": "debug"}}));
    let (da, db_) = (desired(&input(&a)).unwrap(), desired(&input(&b)).unwrap());
    assert_eq!(
        serde_json::to_value(&da.statefulset).unwrap(),
        serde_json::to_value(&db_.statefulset).unwrap()
    );
    let level = |d: &Desired| d.config_map.data.as_ref().unwrap()[LOG_LEVEL_KEY].clone();
    assert_eq!(
        (level(&da), level(&db_)),
        ("info\n".into(), "debug\n".into())
    );
    let cfg = engine_config(&b, &resolve(&b, "img").unwrap());
    assert_eq!(cfg["logging"]["level_file"], "/etc/instant-db/log-level");
    assert!(cfg["logging"].get("level").is_none(), "{cfg}");
    let mounted = serde_json::to_string(&da.statefulset).unwrap();
    assert!(
        mounted.contains(r#""key":"log-level","path":"log-level""#),
        "{mounted}"
    );
}

#[test]
fn engine_config_has_only_known_keys() {
    let db = db(json!({"storage": {"size": "1Gi"}, "recovery": {"integrityCheckInterval": "30m"}}));
    let r = resolve(&db, "img").unwrap();
    let cfg = engine_config(&db, &r);
    let keys: Vec<_> = cfg.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "admin_token_file",
            "data_dir",
            "embedding",
            "health",
            "listen",
            "logging"
        ]
    );
    assert_eq!(cfg["health"]["integrity_interval_secs"], 1800);
}

#[test]
fn resolve_reports_every_problem() {
    let bad = db(
        json!({"storage": {"size": "-1Gi"}, "replicas": 2, "recovery": {"integrityCheckInterval": "soon"}}),
    );
    let problems = resolve(&bad, "").unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(matches!(desired(&input(&bad)), Err(Error::InvalidSpec(_))));
}

#[test]
fn helpers() {
    assert_eq!(parse_duration_secs("1h30m"), Some(5400));
    assert_eq!(parse_duration_secs("500ms"), Some(0));
    assert_eq!(parse_duration_secs("6h"), Some(21600));
    assert_eq!(parse_duration_secs("h"), None);
    assert_eq!(parse_duration_secs("5x"), None);
    for ok in ["1Gi", "500M", "1.5Ti", "1e9", "10", "1E", "1Ei"] {
        assert!(is_positive_quantity(ok), "{ok}");
    }
    for bad in ["0", "0Gi", "-1Gi", "Gi", "1GB", "", "1.2.3Gi", "e9"] {
        assert!(!is_positive_quantity(bad), "{bad}");
    }
    assert_eq!(image_tag("a/b:1.2"), "1.2");
    assert_eq!(image_tag("localhost:5000/b"), "latest");
    assert_eq!(image_tag("b@sha256:abc"), "sha256abc");
}

#[test]
fn threads_come_from_the_spec_else_from_the_cpu_limit_rounded_up() {
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let limits = |cpu: &str| ResourceRequirements {
        limits: Some(BTreeMap::from([("cpu".to_string(), Quantity(cpu.into()))])),
        ..Default::default()
    };
    assert_eq!(embedding_threads(Some(3), Some(&limits("8"))), Some(3));
    assert_eq!(embedding_threads(None, Some(&limits("2"))), Some(2));
    assert_eq!(embedding_threads(None, Some(&limits("1500m"))), Some(2));
    assert_eq!(embedding_threads(None, Some(&limits("500m"))), Some(1));
    assert_eq!(embedding_threads(None, Some(&limits("1000"))), Some(64));
    assert_eq!(
        embedding_threads(None, Some(&ResourceRequirements::default())),
        None
    );
    assert_eq!(embedding_threads(None, None), None);
}

#[test]
fn engine_config_gets_threads_from_the_cpu_limit() {
    let with_limit = db(
        json!({"storage": {"size": "1Gi"}, "resources": {"limits": {"cpu": "2500m", "memory": "2Gi"}}}),
    );
    let r = resolve(&with_limit, "img").unwrap();
    assert_eq!(engine_config(&with_limit, &r)["embedding"]["threads"], 3);
    let without = db(json!({"storage": {"size": "1Gi"}}));
    let r = resolve(&without, "img").unwrap();
    assert!(
        engine_config(&without, &r)["embedding"]
            .get("threads")
            .is_none()
    );
}

#[test]
fn a_cpu_limit_that_is_not_a_quantity_is_a_spec_problem() {
    let bad = db(json!({"storage": {"size": "1Gi"}, "resources": {"limits": {"cpu": "lots"}}}));
    let problems = resolve(&bad, "img").unwrap_err();
    assert!(problems[0].contains("limits.cpu"), "{problems:?}");
}

#[test]
fn the_api_keys_are_mounted_for_the_engine_and_new_keys_restart_the_pod() {
    let a = db(json!({"storage": {"size": "1Gi"}}));
    let d = desired(&input(&a)).unwrap();
    assert_eq!(d.api_secret.metadata.name.as_deref(), Some("docs-api"));
    let pod = d.statefulset.spec.clone().unwrap().template;
    let spec = pod.spec.unwrap();
    let engine = &spec.containers[0];
    let env: BTreeMap<_, _> = engine
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    assert_eq!(
        env["INSTANT_DB_API_KEYS_DIR"].as_deref(),
        Some("/etc/instant-db/api")
    );
    let config = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "config")
        .unwrap();
    let api = config
        .projected
        .unwrap()
        .sources
        .unwrap()
        .into_iter()
        .filter_map(|s| s.secret)
        .find(|s| s.name == "docs-api")
        .expect("the API keys are in the config volume");
    let paths: Vec<_> = api
        .items
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.path))
        .collect();
    assert_eq!(
        paths,
        [
            ("read".to_string(), "api/read".to_string()),
            ("write".to_string(), "api/write".to_string())
        ]
    );
    let hash = |d: &Desired| {
        d.statefulset
            .spec
            .clone()
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let other_keys = ApiKeys {
        read: "another-read-key-0123456789".into(),
        write: API_KEYS.write.clone(),
    };
    let d2 = desired(&BuildInput {
        api_keys: &other_keys,
        ..input(&a)
    })
    .unwrap();
    assert_ne!(
        hash(&d),
        hash(&d2),
        "a recreated api Secret restarts the pod"
    );
}

/// A `kubernetes.io/tls` Secret `docs-tls` with these keys (values are stand-ins).
fn tls_secret(keys: &[&str]) -> k8s_openapi::api::core::v1::Secret {
    let data = keys
        .iter()
        .map(|k| {
            let pem = format!("-----BEGIN CERTIFICATE-----\n{k}\n-----END CERTIFICATE-----\n");
            (k.to_string(), k8s_openapi::ByteString(pem.into_bytes()))
        })
        .collect();
    k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some("docs-tls".into()),
            namespace: Some("search".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

#[test]
fn tls_snapshot() {
    let db = db(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let secret = tls_secret(&["tls.crt", "tls.key", "ca.crt"]);
    let d = desired(&BuildInput {
        tls_secret: Some(&secret),
        ..input(&db)
    })
    .unwrap();
    snapshot("tls", &render(&d));
}

#[test]
fn with_tls_the_pod_mounts_the_whole_secret_read_only_and_serves_and_probes_https() {
    let db = db(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let d = desired(&input(&db)).unwrap();
    let pod = d.statefulset.spec.unwrap().template.spec.unwrap();
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == tls::TLS_VOLUME)
        .expect("a TLS volume");
    let source = volume.secret.as_ref().unwrap();
    assert_eq!(source.secret_name.as_deref(), Some("docs-tls"));
    // No `items`: only a whole-Secret volume is updated in a running pod (rotation).
    assert_eq!(source.items, None);
    assert_eq!(source.optional, Some(false));
    let c = &pod.containers[0];
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == tls::TLS_VOLUME)
        .unwrap();
    assert_eq!(
        (
            mount.mount_path.as_str(),
            mount.read_only,
            mount.sub_path.as_ref()
        ),
        ("/etc/instant-db-tls", Some(true), None)
    );
    let env: BTreeMap<_, _> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(env["INSTANT_DB_TLS_CERT"], "/etc/instant-db-tls/tls.crt");
    assert_eq!(env["INSTANT_DB_TLS_KEY"], "/etc/instant-db-tls/tls.key");
    for probe in [&c.liveness_probe, &c.readiness_probe, &c.startup_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }
    for svc in [&d.service, &d.headless_service] {
        let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.app_protocol.as_deref(), Some("https"));
        assert_eq!(
            port.name.as_deref(),
            Some("http"),
            "probes and policies name it"
        );
    }
    let sm = d.service_monitor.unwrap();
    let ep = &sm.data["spec"]["endpoints"][0];
    assert_eq!(ep["scheme"], "https");
    assert_eq!(
        ep["tlsConfig"],
        json!({"ca": {"secret": {"name": "docs-tls", "key": "ca.crt"}}, "serverName": "docs.search.svc"})
    );
    assert_eq!(
        endpoint("docs", "search", true),
        "https://docs.search.svc:8080"
    );
}

#[test]
fn without_tls_nothing_is_mounted_and_everything_stays_http() {
    let db = db(json!({"storage": {"size": "1Gi"}}));
    let d = desired(&input(&db)).unwrap();
    let pod = d.statefulset.spec.unwrap().template.spec.unwrap();
    assert!(
        !pod.volumes
            .as_ref()
            .unwrap()
            .iter()
            .any(|v| v.name == tls::TLS_VOLUME)
    );
    let c = &pod.containers[0];
    assert!(
        !c.env
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.name.starts_with("INSTANT_DB_TLS"))
    );
    let get = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(get.scheme, None);
    let sm = d.service_monitor.unwrap();
    assert_eq!(sm.data["spec"]["endpoints"][0].get("tlsConfig"), None);
    assert_eq!(
        endpoint("docs", "search", false),
        "http://docs.search.svc:8080"
    );
}

#[test]
fn a_self_signed_secret_without_ca_crt_is_trusted_by_its_own_certificate() {
    let db = db(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let secret = tls_secret(&["tls.crt", "tls.key"]);
    let d = desired(&BuildInput {
        tls_secret: Some(&secret),
        ..input(&db)
    })
    .unwrap();
    let sm = d.service_monitor.unwrap();
    assert_eq!(
        sm.data["spec"]["endpoints"][0]["tlsConfig"]["ca"]["secret"]["key"],
        "tls.crt"
    );
    let target = tls::engine_target(&db, "10.0.0.7".into(), Some(&secret)).unwrap();
    let t = target.tls.unwrap();
    assert!(String::from_utf8(t.ca_pem).unwrap().contains("tls.crt"));
}

#[test]
fn the_operator_trusts_the_secrets_ca_and_checks_the_pods_dns_name() {
    let db = db(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let secret = tls_secret(&["tls.crt", "tls.key", "ca.crt"]);
    let target = tls::engine_target(&db, "10.0.0.7".into(), Some(&secret)).unwrap();
    assert_eq!(target.ip, "10.0.0.7");
    let t = target.tls.unwrap();
    assert_eq!(t.server_name, "docs-0.docs-headless.search.svc");
    assert!(String::from_utf8(t.ca_pem).unwrap().contains("ca.crt"));
    // without spec.tls: plain HTTP, whatever Secrets exist
    let plain = db_plain();
    assert_eq!(
        tls::engine_target(&plain, "10.0.0.7".into(), Some(&secret)).unwrap(),
        crate::engine_client::EngineTarget::http("10.0.0.7")
    );
    assert_eq!(tls::secret_problem(&plain, None), None);
}

fn db_plain() -> InstantDb {
    db(json!({"storage": {"size": "1Gi"}}))
}

#[test]
fn a_missing_or_incomplete_tls_secret_is_a_problem_naming_the_secret_and_what_to_do() {
    let db = db(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let missing = tls::secret_problem(&db, None).unwrap();
    assert!(
        missing.contains("docs-tls")
            && missing.contains("not found")
            && missing.contains("cert-manager"),
        "{missing}"
    );
    let no_key = tls::secret_problem(&db, Some(&tls_secret(&["tls.crt", "ca.crt"]))).unwrap();
    assert!(
        no_key.contains("docs-tls") && no_key.contains("tls.key"),
        "{no_key}"
    );
    let empty = tls::secret_problem(&db, Some(&tls_secret(&[]))).unwrap();
    assert!(empty.contains("tls.crt and tls.key"), "{empty}");
    let mut not_pem = tls_secret(&["tls.crt", "tls.key"]);
    not_pem.data.as_mut().unwrap().insert(
        "ca.crt".into(),
        k8s_openapi::ByteString(b"not a certificate".to_vec()),
    );
    let bad = tls::secret_problem(&db, Some(&not_pem)).unwrap();
    assert!(bad.contains("ca.crt") && bad.contains("PEM"), "{bad}");
    assert_eq!(
        tls::secret_problem(&db, Some(&tls_secret(&["tls.crt", "tls.key", "ca.crt"]))),
        None
    );
}

#[test]
fn the_engine_pod_runs_as_the_service_account_the_spec_names_without_mounting_its_token() {
    let with = db(
        json!({"storage": {"size": "1Gi"}, "podTemplate": {"serviceAccountName": "backup-writer"}}),
    );
    let pod = |d: &InstantDb| {
        desired(&input(d))
            .unwrap()
            .statefulset
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
    };
    let p = pod(&with);
    assert_eq!(p.service_account_name.as_deref(), Some("backup-writer"));
    assert_eq!(p.automount_service_account_token, Some(false));
    assert_eq!(
        pod(&db(json!({"storage": {"size": "1Gi"}}))).service_account_name,
        None
    );
}
