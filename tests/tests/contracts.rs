//! Contracts between the operator and the engine: what the operator writes, the engine must
//! accept; what the engine reports, the operator must read. Real engine, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use clap::Parser;
use instant_db_crds::InstantDb;
use instant_db_crds::backup::{BackupDestination, S3Destination};
use instant_db_operator::builders::storage_credentials::{
    Store, credential_entries, storage_credentials_secret,
};
use instant_db_operator::builders::{self, BuildInput, CONFIG_KEY, LOG_LEVEL_KEY};
use instant_db_operator::controller::backup::{plan, verification};
use instant_db_operator::engine_client::{
    BackupJobStatus, EngineApi, EngineTarget, HealthStatus, HttpEngineClient, RestorePhase,
};
use serde_json::json;

// The engine tests' real S3-compatible server (moto_server), shared rather than copied.
#[path = "../../engine/tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

// The engine tests' test CA (rcgen), shared rather than copied.
#[path = "../../engine/tests/common/certs.rs"]
mod certs;

fn instant_db(spec: serde_json::Value) -> InstantDb {
    serde_json::from_value(json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "docs", "namespace": "search", "uid": "11111111-2222-3333-4444-555555555555", "generation": 1},
        "spec": spec
    }))
    .unwrap()
}

/// The keys the controller would have generated into `<name>-api`.
static API_KEYS: std::sync::LazyLock<builders::ApiKeys> =
    std::sync::LazyLock::new(|| builders::ApiKeys {
        read: builders::generate_token(),
        write: builders::generate_token(),
    });

fn desired(db: &InstantDb) -> builders::Desired {
    builders::desired(&BuildInput {
        db,
        default_image: "registry.example/instant-db:0.1.0",
        admin_token: "contract-test-token-0123456789",
        api_keys: &API_KEYS,
        operator_namespace: "idb-system",
        service_monitor_crd: false,
        existing_claim_templates: None,
        tls_secret: None,
        bootstrap_from: None,
        backup_claims: &[],
        bootstrap_to_time: None,
        archive: None,
    })
    .unwrap()
}

#[test]
fn the_engine_accepts_the_config_the_operator_writes() {
    let specs = [
        json!({"storage": {"size": "1Gi"}}),
        json!({
            "storage": {"size": "5Gi"},
            "embedding": {"batchSize": 16, "threads": 2},
            "logging": {"level": "debug", "format": "text"},
            "otel": {"endpoint": "http://collector:4318"},
            "recovery": {"integrityCheckInterval": "30m"}
        }),
    ];
    for spec in specs {
        let db = instant_db(spec.clone());
        let d = desired(&db);
        let yaml = d.config_map.data.as_ref().unwrap()[CONFIG_KEY].clone();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let cfg =
            instant_db::config::Config::load_from(Some(&file), &BTreeMap::new(), &BTreeMap::new())
                .unwrap_or_else(|e| {
                    panic!("engine rejected the operator's config for {spec}: {e}\n{yaml}")
                });
        assert_eq!(cfg.data_dir, std::path::PathBuf::from("/data"));
        assert_eq!(cfg.listen, "0.0.0.0:8080");
        assert!(cfg.admin_token_file.is_some());
        if spec.get("embedding").is_some() {
            assert_eq!(cfg.embedding.batch_size, 16);
            assert_eq!(cfg.embedding.threads, 2);
            // The level lives in the level file the engine follows (mounted at that path).
            let level = &d.config_map.data.as_ref().unwrap()[LOG_LEVEL_KEY];
            assert_eq!(level.trim(), "debug");
            instant_db::telemetry::parse_filter(level.trim()).unwrap();
            assert_eq!(
                cfg.logging.level_file.as_deref(),
                Some(std::path::Path::new("/etc/instant-db/log-level"))
            );
            assert_eq!(cfg.otel.endpoint.as_deref(), Some("http://collector:4318"));
            assert_eq!(cfg.health.integrity_interval_secs, 1800);
        }
    }
}

#[test]
fn the_engine_parses_the_command_line_the_operator_gives_its_container() {
    let db = instant_db(json!({"storage": {"size": "1Gi"}}));
    let d = desired(&db);
    let pod = d.statefulset.spec.unwrap().template.spec.unwrap();
    let engine = pod
        .containers
        .iter()
        .find(|c| c.name == "engine")
        .or(pod.containers.first())
        .unwrap();
    let mut argv: Vec<String> = vec!["instant-db".into()];
    argv.extend(
        engine
            .command
            .clone()
            .unwrap_or_default()
            .into_iter()
            .skip(1),
    );
    argv.extend(engine.args.clone().unwrap_or_default());
    let cli =
        instant_db::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        matches!(cli.command, instant_db::cli::Command::Serve(_)),
        "{argv:?}"
    );
    let probes = [
        engine.liveness_probe.as_ref(),
        engine.readiness_probe.as_ref(),
    ];
    let paths: Vec<String> = probes
        .iter()
        .flatten()
        .filter_map(|p| p.http_get.as_ref())
        .filter_map(|h| h.path.clone())
        .collect();
    assert_eq!(
        paths,
        vec!["/health/live".to_string(), "/health/ready".to_string()]
    );
}

/// `path` of the pod moved under `root` (the test's stand-in for the container's file system).
fn in_root(root: &std::path::Path, path: &str) -> String {
    for prefix in ["/etc/instant-db", "/data", "/tmp"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return format!("{}{prefix}{rest}", root.display());
        }
    }
    path.to_string()
}

/// The engine started as the operator's pod starts it: its command line and environment, the
/// projected config volume (config.yaml, admin/token, api/read, api/write) written from the
/// desired ConfigMap and Secrets, paths moved under `root` and the port made free. Returns the
/// port once the engine accepts connections (it binds after it has opened its data).
async fn serve_as_the_pod(
    d: &builders::Desired,
    root: &std::path::Path,
) -> (u16, tokio::task::JoinHandle<instant_db::Result<()>>) {
    let etc = root.join("etc/instant-db");
    std::fs::create_dir_all(etc.join("admin")).unwrap();
    std::fs::create_dir_all(etc.join("api")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(
        etc.join(CONFIG_KEY),
        &d.config_map.data.as_ref().unwrap()[CONFIG_KEY],
    )
    .unwrap();
    let secret_value =
        |s: &k8s_openapi::api::core::v1::Secret, key: &str| s.data.as_ref().unwrap()[key].0.clone();
    std::fs::write(etc.join("admin/token"), secret_value(&d.secret, "token")).unwrap();
    for role in [builders::READ_KEY, builders::WRITE_KEY] {
        std::fs::write(
            etc.join("api").join(role),
            secret_value(&d.api_secret, role),
        )
        .unwrap();
    }

    let pod = d.statefulset.spec.clone().unwrap().template.spec.unwrap();
    let engine = &pod.containers[0];
    let port = moto::free_port();
    let args: Vec<String> = engine
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| {
            if a == "0.0.0.0:8080" {
                format!("0.0.0.0:{port}")
            } else {
                in_root(root, &a)
            }
        })
        .collect();
    let mut argv = vec!["instant-db".to_string()];
    argv.extend(args);
    let env: BTreeMap<String, String> = engine
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, in_root(root, &e.value.unwrap_or_default())))
        .collect();
    let cli = instant_db::cli::Cli::try_parse_from(&argv).unwrap();
    let config = instant_db::cli::load_config_with_env(&cli, &env)
        .unwrap_or_else(|e| panic!("the engine refused the pod's configuration: {e}"));
    assert_eq!(
        config.listen,
        format!("0.0.0.0:{port}"),
        "a network address, as in the pod"
    );
    // `serve` itself: it refuses an open API on 0.0.0.0, so this also proves the keys count
    let server = tokio::spawn(instant_db::server::serve(config));
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return (port, server);
        }
        if server.is_finished() {
            panic!("the engine stopped: {:?}", server.await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the engine did not listen on port {port}");
}

/// The real engine started as the operator's pod starts it ([`serve_as_the_pod`]).
/// Unauthenticated searches are refused; the generated read key searches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_run_as_the_operator_runs_it_refuses_unauthenticated_search_and_takes_the_read_key()
 {
    let db = instant_db(json!({"storage": {"size": "1Gi"}}));
    let d = desired(&db);
    let root = tempfile::tempdir().unwrap();
    let (port, server) = serve_as_the_pod(&d, root.path()).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let search = json!({"query": "contract", "mode": "keyword"});
    let none = http
        .post(format!("{base}/api/search"))
        .json(&search)
        .send()
        .await
        .unwrap();
    let read = http
        .post(format!("{base}/api/search"))
        .bearer_auth(&API_KEYS.read)
        .json(&search)
        .send()
        .await
        .unwrap();
    let ingest_with_read = http
        .post(format!("{base}/api/documents"))
        .bearer_auth(&API_KEYS.read)
        .json(&json!({"text": "not allowed", "name": "x.txt"}))
        .send()
        .await
        .unwrap();
    let ingest_with_write = http
        .post(format!("{base}/api/documents"))
        .bearer_auth(&API_KEYS.write)
        .json(&json!({"text": "allowed", "name": "y.txt"}))
        .send()
        .await
        .unwrap();
    // no graceful stop from here (serve waits for SIGTERM); the test process ends with it
    server.abort();
    assert_eq!(none.status(), 401);
    assert_eq!(read.status(), 200);
    assert_eq!(ingest_with_read.status(), 403);
    assert_eq!(ingest_with_write.status(), 200);
}

/// A real engine with one document, serving HTTP on a local port, until `stop` is sent.
struct RunningEngine {
    port: u16,
    _data: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<instant_db::Result<()>>,
}

const TOKEN: &str = "contract-test-token-0123456789";

async fn start_engine() -> RunningEngine {
    start_engine_with(BTreeMap::new()).await
}

/// [`start_engine`] with engine settings from `env` (`INSTANT_DB_*` variables, as the pod's).
async fn start_engine_with(env: BTreeMap<String, String>) -> RunningEngine {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("token"), TOKEN).unwrap();
    let mut cfg = instant_db::config::Config::load_from(None, &env, &BTreeMap::new()).unwrap();
    cfg.data_dir = data.path().to_path_buf();
    cfg.admin_token_file = Some(data.path().join("token"));
    // The host's disk is not what these contracts are about: a full shared disk on the test
    // machine would make the engine unhealthy for reasons of its own. CPU and memory keep their
    // defaults: a busy machine may only degrade the engine, which the health test expects anyway.
    cfg.health.thresholds = instant_db::sysres::Thresholds {
        disk_free_percent_min: 0.0,
        disk_free_percent_critical: 0.0,
        disk_free_bytes_min: 0,
        disk_free_bytes_critical: 0,
        ..cfg.health.thresholds
    };
    let engine = tokio::task::spawn_blocking(move || {
        let engine =
            instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Skip).unwrap();
        let doc = instant_db::ingest::SourceDoc {
            source: "api:contract".into(),
            name: "contract.md".into(),
            bytes: b"# Contract\n\nThe operator reads this engine.".to_vec(),
            modified_at: None,
            metadata: None,
        };
        instant_db::ingest::ingest_sources(&engine, vec![doc], &instant_db::ingest::NoProgress)
            .unwrap();
        engine
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = instant_db::server::AppState::new(engine).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(instant_db::server::run_on(listener, state, async move {
        let _ = stopped.await;
    }));
    RunningEngine {
        port,
        _data: data,
        stop,
        server,
    }
}

impl RunningEngine {
    async fn shut_down(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reads_a_real_engines_detailed_health() {
    let engine = start_engine().await;
    let port = engine.port;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://127.0.0.1:{port}/admin/integrity"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let client = HttpEngineClient::new(port, std::time::Duration::from_secs(5)).unwrap();
    let health = client
        .detailed_health(&EngineTarget::http("127.0.0.1"), TOKEN)
        .await
        .unwrap();
    assert_eq!(health.document_count, Some(1));
    // No model was loaded: the engine serves keyword search and says it is degraded.
    assert_eq!(health.status, HealthStatus::Degraded);
    assert_eq!(
        health.components.get("database"),
        Some(&HealthStatus::Healthy)
    );
    assert_eq!(
        health.components.get("embedding_model"),
        Some(&HealthStatus::Degraded)
    );
    let integrity = health
        .last_integrity_check
        .expect("integrity check reported");
    assert_eq!(integrity.ok, Some(true));
    assert!(integrity.at.is_some());
    engine.shut_down().await;
}

/// What `kubectl instantdb search` and `check` send (kubectl-plugin/src/engine.rs) is what a
/// real engine takes: the read key and the admin token in the Authorization header, nothing in
/// the URL; and the plugin prints the engine's answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_search_and_check_requests_are_answered_by_a_real_engine() {
    use kubectl_instantdb::cli::Mode;
    use kubectl_instantdb::engine::{exchange, integrity_request, search_request};
    use kubectl_instantdb::format;
    const READ: &str = "plugin-read-key-0123456789";
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join(builders::READ_KEY), READ).unwrap();
    std::fs::write(
        keys.path().join(builders::WRITE_KEY),
        "plugin-write-key-0123456789",
    )
    .unwrap();
    let env = BTreeMap::from([(
        "INSTANT_DB_API_KEYS_DIR".to_string(),
        keys.path().display().to_string(),
    )]);
    let engine = start_engine_with(env).await;
    let base = format!("http://127.0.0.1:{}", engine.port);
    let http = reqwest::Client::new();

    let req = search_request(&http, &base, READ, "operator", 3, Mode::Keyword).unwrap();
    let answer = exchange(&http, req, "docs", "the search").await.unwrap();
    let text = format::search_hits(&answer);
    assert!(
        text.starts_with("1. ") && text.contains("[api:contract]"),
        "{text}"
    );
    assert!(text.contains("<mark>operator</mark>"), "{text}");

    let req = search_request(
        &http,
        &base,
        "not-the-read-key-000000",
        "x",
        3,
        Mode::Keyword,
    )
    .unwrap();
    let refused = exchange(&http, req, "docs", "the search")
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            kubectl_instantdb::Error::Engine { status: 401, .. }
        ),
        "{refused}"
    );

    let req = integrity_request(&http, &base, TOKEN).unwrap();
    let report = exchange(&http, req, "docs", "the integrity check")
        .await
        .unwrap();
    let (ok, text) = format::integrity_report(&report);
    assert!(ok, "{text}");
    assert!(
        text.starts_with("integrity check passed: 1 documents"),
        "{text}"
    );
    engine.shut_down().await;
}

/// What the kubelet does with the `<name>-storage-credentials` Secret the operator builds:
/// one file per key in the mounted directory. Returns the directory.
fn mount_storage_credentials(access_key_id: &str, secret_access_key: &str) -> tempfile::TempDir {
    let db = instant_db(json!({"storage": {"size": "1Gi"}}));
    let source = BTreeMap::from([
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            k8s_openapi::ByteString(access_key_id.as_bytes().to_vec()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            k8s_openapi::ByteString(secret_access_key.as_bytes().to_vec()),
        ),
    ]);
    let secret = storage_credentials_secret(
        &db,
        credential_entries("s3-creds", Store::S3, &source).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in secret.data.unwrap() {
        std::fs::write(dir.path().join(key), value.0).unwrap();
    }
    dir
}

/// A moto bucket `idb-backups`, an engine that reads the operator's storage-credentials Secret
/// from its credentials directory, and the folder URL the backup controller builds for it.
async fn engine_with_s3() -> (
    moto::MotoServer,
    RunningEngine,
    tempfile::TempDir,
    String,
    String,
) {
    let moto = moto::start_moto().await;
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/idb-backups"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let creds = mount_storage_credentials("testing", "testing-secret");
    let engine = start_engine_with(BTreeMap::from([(
        "INSTANT_DB_CREDENTIALS_DIR".to_string(),
        creds.path().display().to_string(),
    )]))
    .await;
    let destination = BackupDestination {
        s3: Some(S3Destination {
            endpoint: Some(endpoint.clone()),
            bucket: Some("idb-backups".into()),
            prefix: None,
            region: None,
            credentials_secret: Some("s3-creds".into()),
        }),
        ..Default::default()
    };
    let resolved = plan::resolve_destination(&destination, "search", "docs").unwrap();
    let url = plan::destination_url(&resolved).unwrap();
    assert!(url.ends_with("&credentials=s3-creds"), "{url}");
    (moto, engine, creds, endpoint, url)
}

/// Takes a backup `id` through the engine and waits for it to finish.
async fn backup_through(client: &HttpEngineClient, url: &str, id: &str) {
    let job = client
        .start_backup(&EngineTarget::http("127.0.0.1"), TOKEN, url, id)
        .await
        .unwrap();
    assert_eq!(job.id, id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let job = loop {
        let job = client
            .backup_job(&EngineTarget::http("127.0.0.1"), TOKEN, id)
            .await
            .unwrap()
            .expect("the engine knows the job");
        if job.status != BackupJobStatus::Running {
            break job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup still running after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(job.status, BackupJobStatus::Completed, "{job:?}");
}

/// The destination URL the backup controller builds (credentials by reference) is one the
/// engine accepts, reading the keys from the files of the storage-credentials Secret the
/// operator builds; the job calls read what the engine answers; the backup lands in a real
/// S3-compatible store; retention's delete removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_the_operator_starts_lands_in_s3_with_credentials_by_reference_and_is_deleted() {
    let (_moto, engine, _creds, endpoint, url) = engine_with_s3().await;
    let client = HttpEngineClient::new(engine.port, std::time::Duration::from_secs(5)).unwrap();
    let id = "nightly-0f3c2a9e";
    backup_through(&client, &url, id).await;
    let again = client
        .start_backup(&EngineTarget::http("127.0.0.1"), TOKEN, &url, id)
        .await;
    assert!(
        matches!(again, Err(instant_db_operator::Error::BackupIdInUse(_))),
        "{again:?}"
    );
    let job = client
        .backup_job(&EngineTarget::http("127.0.0.1"), TOKEN, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.document_count, Some(1));
    assert_eq!(job.sha256.as_ref().map(String::len), Some(64));
    assert_eq!(
        job.engine_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let location = job.location.clone().unwrap();
    assert!(
        location.starts_with("s3://idb-backups/search/docs/"),
        "{location}"
    );
    assert!(!location.contains("testing-secret"), "{location}");
    let list = || async {
        reqwest::Client::new()
            .get(format!(
                "{endpoint}/idb-backups?list-type=2&prefix=search/docs/"
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(list().await.contains(&format!("search/docs/{id}.tar.gz")));
    assert_eq!(
        client
            .backup_job(&EngineTarget::http("127.0.0.1"), TOKEN, "never-started")
            .await
            .unwrap(),
        None
    );
    // a Secret the kubelet has not synced yet: the engine's error is the one the backup
    // controller keeps Pending on
    let unsynced = url.replace("credentials=s3-creds", "credentials=not-yet-synced");
    let e = client
        .start_backup(&EngineTarget::http("127.0.0.1"), TOKEN, &unsynced, "early")
        .await
        .unwrap_err();
    assert!(
        matches!(e, instant_db_operator::Error::CredentialsNotReady(_)),
        "{e:?}"
    );
    // retention: the archive is deleted from the bucket through the engine, once
    assert!(
        client
            .delete_backup(&EngineTarget::http("127.0.0.1"), TOKEN, &url, id)
            .await
            .unwrap()
    );
    assert!(!list().await.contains(&format!("{id}.tar.gz")));
    assert!(
        !client
            .delete_backup(&EngineTarget::http("127.0.0.1"), TOKEN, &url, id)
            .await
            .unwrap()
    );
    engine.shut_down().await;
}

/// The restore controller's job calls against a real engine: `POST /admin/restores` with the
/// archive URL it records for a backup starts a job, the same id again is the same job, the job
/// is followed to `completed` and the documents are those of the backup; a missing archive
/// ends `failed` and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_the_operator_starts_is_a_job_it_follows_to_the_engines_outcome() {
    let (_moto, engine, _creds, _endpoint, url) = engine_with_s3().await;
    let client = HttpEngineClient::new(engine.port, std::time::Duration::from_secs(5)).unwrap();
    let id = "nightly-0f3c2a9e";
    backup_through(&client, &url, id).await;
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/documents", engine.port))
        // the admin token holds every role (the engine has keys configured, so /api needs one)
        .bearer_auth(TOKEN)
        .json(&json!({"text": "written after the backup", "name": "later.txt"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "add document: {}", r.status());
    let documents = || async {
        let stats: serde_json::Value = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}/api/stats", engine.port))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["documents"].as_i64()
    };
    assert_eq!(documents().await, Some(2));
    let follow = |restore_id: &'static str| {
        let client = client.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                let job = client
                    .restore_job(&EngineTarget::http("127.0.0.1"), TOKEN, restore_id)
                    .await
                    .unwrap()
                    .expect("the engine knows the job");
                if job.phase.is_finished() {
                    return job;
                }
                assert!(std::time::Instant::now() < deadline, "{job:?}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    // a missing archive: refused before anything changed
    // (refused at once, or accepted and ended `failed`: both end the InstantDbRestore Failed)
    let missing = plan::archive_url(&url, "no-such-backup").unwrap();
    match client
        .start_restore(
            &EngineTarget::http("127.0.0.1"),
            TOKEN,
            &missing,
            None,
            "undo-missing",
        )
        .await
    {
        Err(instant_db_operator::Error::RestoreRefused(_)) => {}
        Ok(_) => {
            let job = follow("undo-missing").await;
            assert_eq!(job.phase, RestorePhase::Failed, "{job:?}");
            assert!(job.error.is_some());
        }
        Err(e) => panic!("{e:?}"),
    }
    assert_eq!(documents().await, Some(2));
    // the backup's archive: restored, the same id again is the same job
    let source = plan::archive_url(&url, id).unwrap();
    let first = client
        .start_restore(
            &EngineTarget::http("127.0.0.1"),
            TOKEN,
            &source,
            None,
            "undo-0f3c2a9e",
        )
        .await
        .unwrap();
    let again = client
        .start_restore(
            &EngineTarget::http("127.0.0.1"),
            TOKEN,
            &source,
            None,
            "undo-0f3c2a9e",
        )
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    let job = follow("undo-0f3c2a9e").await;
    assert_eq!(job.phase, RestorePhase::Completed, "{job:?}");
    assert_eq!(job.document_count, Some(1));
    assert_eq!(job.backup_id.as_deref(), Some(id));
    assert_eq!(documents().await, Some(1));
    assert_eq!(
        client
            .restore_job(&EngineTarget::http("127.0.0.1"), TOKEN, "never-started")
            .await
            .unwrap(),
        None
    );
    engine.shut_down().await;
}

/// `spec.tls` end to end: the engine started as the operator's pod starts it, with the mounted
/// Secret a cert-manager Certificate would write (CA-signed, naming the pod and the Service),
/// and the operator's engine client reading its health over TLS verified exactly as the
/// controller sets it up (the Secret's CA, the pod's DNS name, the connection to the pod IP).
/// A certificate from another CA, or one not naming the pod, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reads_an_https_engine_run_as_its_pod_only_with_the_secrets_ca_and_name() {
    let db = instant_db(json!({"storage": {"size": "1Gi"}, "tls": {"secretName": "docs-tls"}}));
    let d = desired(&db);
    let root = tempfile::tempdir().unwrap();
    let ca = certs::Ca::new("cluster CA");
    let leaf = ca.leaf(&["docs-0.docs-headless.search.svc", "docs.search.svc"]);
    // The Secret volume as the kubelet mounts it at the path the StatefulSet names.
    let tls_dir = root.path().join("etc/instant-db-tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    leaf.write(&tls_dir);
    std::fs::write(tls_dir.join("ca.crt"), &ca.pem).unwrap();
    let secret = |ca_pem: &str| k8s_openapi::api::core::v1::Secret {
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_string(),
                k8s_openapi::ByteString(leaf.cert_pem.clone().into_bytes()),
            ),
            (
                "tls.key".to_string(),
                k8s_openapi::ByteString(leaf.key_pem.clone().into_bytes()),
            ),
            (
                "ca.crt".to_string(),
                k8s_openapi::ByteString(ca_pem.as_bytes().to_vec()),
            ),
        ])),
        ..Default::default()
    };
    let (port, server) = serve_as_the_pod(&d, root.path()).await;
    let token = String::from_utf8(d.secret.data.as_ref().unwrap()["token"].0.clone()).unwrap();
    let client = HttpEngineClient::new(port, std::time::Duration::from_secs(5)).unwrap();

    let trusted =
        builders::tls::engine_target(&db, "127.0.0.1".into(), Some(&secret(&ca.pem))).unwrap();
    let health = client.detailed_health(&trusted, &token).await;
    let other_ca = certs::Ca::new("another CA");
    let stranger =
        builders::tls::engine_target(&db, "127.0.0.1".into(), Some(&secret(&other_ca.pem)))
            .unwrap();
    let refused = client.detailed_health(&stranger, &token).await;
    let mut wrong_name = trusted.clone();
    if let Some(t) = wrong_name.tls.as_mut() {
        t.server_name = "other-0.other-headless.search.svc".into();
    }
    let misnamed = client.detailed_health(&wrong_name, &token).await;
    let plain = client
        .detailed_health(&EngineTarget::http("127.0.0.1"), &token)
        .await;
    server.abort();

    let health = health.unwrap_or_else(|e| panic!("over verified TLS: {e}"));
    assert!(health.version.is_some(), "{health:?}");
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("certificate"), "{refused}");
    let misnamed = misnamed.unwrap_err().to_string();
    assert!(misnamed.contains("certificate"), "{misnamed}");
    assert!(plain.is_err(), "plain HTTP to the HTTPS port: {plain:?}");
}

/// Follows backup `id` as the backup controller does (`plan::from_job` on every poll) until its
/// verification ends, and returns the status it would write.
async fn status_once_verified(
    client: &HttpEngineClient,
    id: &str,
) -> instant_db_crds::backup::InstantDbBackupStatus {
    let mut status = instant_db_crds::backup::InstantDbBackupStatus {
        phase: Some(instant_db_crds::backup::OperationPhase::Running),
        backup_id: Some(id.into()),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let job = client
            .backup_job(&EngineTarget::http("127.0.0.1"), TOKEN, id)
            .await
            .unwrap()
            .expect("the engine knows the job");
        status = plan::from_job(&status, &job, k8s_openapi::jiff::Timestamp::now());
        if plan::is_finished(Some(&status)) && !verification::is_pending(Some(&status)) {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The engine verifies every backup the operator starts and the backup controller reads the
/// outcome into `status.verified`: a good backup ends `Passed`; a backup of a database that
/// lost rows (damage the engine had not detected yet: the backup is taken and stored) ends
/// `Failed` with the check that failed and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_the_operator_starts_ends_verified_passed_and_a_damaged_one_failed() {
    use instant_db_crds::backup::VerificationResult;
    let (_moto, engine, _creds, _endpoint, url) = engine_with_s3().await;
    let client = HttpEngineClient::new(engine.port, std::time::Duration::from_secs(5)).unwrap();
    backup_through(&client, &url, "good-0f3c2a9e").await;
    let s = status_once_verified(&client, "good-0f3c2a9e").await;
    let v = s.verified.expect("the engine verifies by default");
    assert_eq!(v.result, VerificationResult::Passed, "{v:?}");
    assert!(v.time.is_some() && v.message.is_none(), "{v:?}");

    rusqlite::Connection::open(engine._data.path().join("instant-db.sqlite"))
        .unwrap()
        .execute_batch("DELETE FROM chunks")
        .unwrap();
    backup_through(&client, &url, "damaged-0f3c2a9e").await;
    let s = status_once_verified(&client, "damaged-0f3c2a9e").await;
    let v = s.verified.unwrap();
    assert_eq!(v.result, VerificationResult::Failed, "{v:?}");
    let m = v.message.unwrap();
    assert!(
        m.contains("failed its integrity check")
            && m.contains("chunks are missing")
            && m.contains("Do not restore"),
        "{m}"
    );
    engine.shut_down().await;
}
