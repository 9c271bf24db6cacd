//! Contracts of `spec.bootstrap.fromBackup` and volume destinations between the operator and a
//! real engine: the engine pod's containers run with the exact command lines, environments
//! and mounted files the operator builds (paths moved under a temporary root standing for the
//! pod's filesystem), backups go where the operator's URLs say (a directory on a claim, a real
//! S3-compatible store), and the bootstrap init container restores them into a new volume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use instant_db_crds::InstantDb;
use instant_db_crds::backup::BackupDestination;
use instant_db_operator::builders::storage_credentials::{
    CREDENTIALS_DIR, Store, credential_entries, storage_credentials_secret,
};
use instant_db_operator::builders::{self, BuildInput, CONFIG_KEY};
use instant_db_operator::controller::backup::plan;
use instant_db_operator::controller::instantdb::bootstrap;
use instant_db_operator::engine_client::{
    BackupJobStatus, EngineApi, EngineTarget, HttpEngineClient,
};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::json;

#[path = "../../engine/tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

const TOKEN: &str = "bootstrap-contract-token-0123456789";

static API_KEYS: std::sync::LazyLock<builders::ApiKeys> =
    std::sync::LazyLock::new(|| builders::ApiKeys {
        read: builders::generate_token(),
        write: builders::generate_token(),
    });

fn instant_db(name: &str, spec: serde_json::Value) -> InstantDb {
    serde_json::from_value(json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": name, "namespace": "search", "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec
    }))
    .unwrap()
}

/// A pod of the operator's StatefulSet, materialized under `root`: the projected config
/// volume, the storage-credentials Secret as files, empty `/data` and `/tmp`, and `/backups`.
struct PodRoot {
    root: tempfile::TempDir,
    pod: PodSpec,
}

impl PodRoot {
    fn new(
        db: &InstantDb,
        bootstrap_from: Option<&str>,
        claims: &[String],
        credentials: &BTreeMap<String, k8s_openapi::ByteString>,
        backups: &Path,
    ) -> Self {
        Self::with(db, bootstrap_from, None, None, claims, credentials, backups)
    }

    /// [`PodRoot::new`] with a point-in-time bootstrap (`to_time`) and the engine's
    /// `archive.*` as a policy's `continuousArchiving` renders it.
    fn with(
        db: &InstantDb,
        bootstrap_from: Option<&str>,
        to_time: Option<&str>,
        archive: Option<&builders::ArchiveSettings>,
        claims: &[String],
        credentials: &BTreeMap<String, k8s_openapi::ByteString>,
        backups: &Path,
    ) -> Self {
        let d = builders::desired(&BuildInput {
            db,
            default_image: "registry.example/instant-db:0.1.0",
            admin_token: TOKEN,
            api_keys: &API_KEYS,
            operator_namespace: "idb-system",
            service_monitor_crd: false,
            existing_claim_templates: None,
            tls_secret: None,
            bootstrap_from,
            backup_claims: claims,
            bootstrap_to_time: to_time,
            archive,
        })
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc/instant-db");
        for dir in [
            "etc/instant-db/admin",
            "etc/instant-db/api",
            "data",
            "tmp",
            "dev",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        // the config names the claim's directory (`archive.destination`): moved under the root
        let config = d.config_map.data.as_ref().unwrap()[CONFIG_KEY].replace(
            "file:///backups",
            &format!("file://{}/backups", root.path().display()),
        );
        std::fs::write(etc.join(CONFIG_KEY), config).unwrap();
        std::fs::write(etc.join("admin/token"), TOKEN).unwrap();
        std::fs::write(etc.join("api/read"), &API_KEYS.read).unwrap();
        std::fs::write(etc.join("api/write"), &API_KEYS.write).unwrap();
        let secret = storage_credentials_secret(db, credentials.clone()).unwrap();
        let creds = root.path().join(CREDENTIALS_DIR.trim_start_matches('/'));
        std::fs::create_dir_all(&creds).unwrap();
        for (key, value) in secret.data.unwrap() {
            std::fs::write(creds.join(key), value.0).unwrap();
        }
        // every claim is the same shared directory here (as one RWX claim would be)
        std::os::unix::fs::symlink(backups, root.path().join("backups")).unwrap();
        let pod = d.statefulset.spec.unwrap().template.spec.unwrap();
        Self { root, pod }
    }

    fn path(&self, in_pod: &str) -> PathBuf {
        self.root.path().join(in_pod.trim_start_matches('/'))
    }

    /// A path or URL of the pod, moved under the root.
    fn map(&self, s: &str) -> String {
        let root = self.root.path().display();
        if let Some(rest) = s.strip_prefix("file:///backups") {
            return format!("file://{root}/backups{rest}");
        }
        for prefix in [
            "/etc/instant-db",
            "/data",
            "/tmp",
            "/backups",
            "/dev/termination-log",
        ] {
            if s.starts_with(prefix) {
                return format!("{root}{s}");
            }
        }
        s.to_string()
    }

    /// The engine configuration of `container` as its command line and environment give it.
    /// The credentials directory is the engine's default, where the pod mounts the Secret:
    /// that default is moved under the root too.
    fn config(
        &self,
        c: &Container,
        args: &[String],
    ) -> (instant_db::cli::Cli, instant_db::config::Config) {
        assert_eq!(CREDENTIALS_DIR, instant_db::backup::DEFAULT_CREDENTIALS_DIR);
        let mounted = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == CREDENTIALS_DIR);
        assert!(mounted, "{} mounts the storage credentials", c.name);
        let mut argv = vec!["instant-db".to_string()];
        argv.extend(args.iter().map(|a| self.map(a)));
        let mut env: BTreeMap<String, String> = c
            .env
            .iter()
            .flatten()
            .map(|e| {
                (
                    e.name.clone(),
                    self.map(e.value.as_deref().unwrap_or_default()),
                )
            })
            .collect();
        env.insert(
            "INSTANT_DB_CREDENTIALS_DIR".into(),
            self.map(CREDENTIALS_DIR),
        );
        let cli =
            instant_db::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let config = instant_db::cli::load_config_with_env(&cli, &env)
            .unwrap_or_else(|e| panic!("the engine refused {}'s configuration: {e}", c.name));
        (cli, config)
    }

    /// Runs the bootstrap init container to its end, as the kubelet would; its exit code.
    fn run_init(&self) -> i32 {
        let init = &self
            .pod
            .init_containers
            .as_ref()
            .expect("an init container")[0];
        assert_eq!(init.name, bootstrap::INIT_CONTAINER);
        let (cli, config) = self.config(init, init.args.as_ref().unwrap());
        // its own thread: the command starts its own async runtime
        std::thread::spawn(move || instant_db::cli::run(cli, config))
            .join()
            .unwrap()
            .unwrap_or_else(|e| e.exit_code())
    }

    /// The engine on the pod's data volume, opened as the CLI opens it (no model).
    fn open_data(&self) -> instant_db::engine::Engine {
        let cfg = instant_db::config::Config {
            data_dir: self.path("/data"),
            ..Default::default()
        };
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Skip).unwrap()
    }

    /// The `Bootstrapped` condition the operator derives from the pod status a kubelet would
    /// report after the init container's run: its termination message is the file it wrote.
    fn bootstrapped(&self, plan: &bootstrap::Plan) -> (String, String) {
        let message = std::fs::read_to_string(self.path("/dev/termination-log")).unwrap();
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "x-0"},
            "status": {"phase": "Running", "initContainerStatuses": [{"name": bootstrap::INIT_CONTAINER,
                "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "message": message}}}]}}))
        .unwrap();
        let v = bootstrap::condition(plan, None, None, Some(&pod), true, None).unwrap();
        (v.reason.to_string(), v.message)
    }

    fn documents(&self) -> i64 {
        self.open_data().stats().unwrap().store.documents
    }

    fn add_document(&self) {
        let engine = self.open_data();
        let doc = instant_db::ingest::SourceDoc {
            source: "api:after-bootstrap".into(),
            name: "after.md".into(),
            bytes: b"# After\n\nWritten after the bootstrap.".to_vec(),
            modified_at: None,
            metadata: None,
        };
        instant_db::ingest::ingest_sources(&engine, vec![doc], &instant_db::ingest::NoProgress)
            .unwrap();
    }

    /// Starts the engine container's `serve` on a free port.
    async fn serve(&self) -> (u16, tokio::task::JoinHandle<instant_db::Result<()>>) {
        let engine = &self.pod.containers[0];
        let port = moto::free_port();
        let args: Vec<String> = engine
            .args
            .clone()
            .unwrap()
            .into_iter()
            .map(|a| {
                if a == "0.0.0.0:8080" {
                    format!("127.0.0.1:{port}")
                } else {
                    a
                }
            })
            .collect();
        let (_, config) = self.config(engine, &args);
        let server = tokio::spawn(instant_db::server::serve(config));
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if http
                .get(format!("http://127.0.0.1:{port}/health/live"))
                .send()
                .await
                .is_ok()
            {
                return (port, server);
            }
            assert!(!server.is_finished(), "the engine stopped");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the engine did not answer on {port}");
    }
}

async fn backup_through(client: &HttpEngineClient, folder: &str, id: &str) -> String {
    client
        .start_backup(&EngineTarget::http("127.0.0.1"), TOKEN, folder, id)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let job = client
            .backup_job(&EngineTarget::http("127.0.0.1"), TOKEN, id)
            .await
            .unwrap()
            .unwrap();
        if job.status != BackupJobStatus::Running {
            assert_eq!(job.status, BackupJobStatus::Completed, "{job:?}");
            return job.location.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup still running after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A volume destination: the engine writes the archive into the claim's directory at the URL
/// the operator sends, reports the location the operator records, and retention deletes
/// exactly the pruned archive. Then new instances bootstrap, with the init container as the
/// operator builds it, from that volume backup and from an S3 backup of the same data: each
/// starts with every document, and a second start keeps the data it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_to_a_claim_and_to_s3_bootstrap_new_instances_through_the_operators_init_container()
{
    let moto = moto::start_moto().await;
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/idb-backups"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let s3_secret = BTreeMap::from([
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            k8s_openapi::ByteString(b"testing".to_vec()),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            k8s_openapi::ByteString(b"testing-secret".to_vec()),
        ),
    ]);
    let credentials = credential_entries("s3-creds", Store::S3, &s3_secret).unwrap();
    let claim_dir = tempfile::tempdir().unwrap();
    let claim = "nightly-pvc".to_string();
    std::fs::create_dir_all(claim_dir.path().join(&claim)).unwrap();

    // the source instance, its pod mounting the claim
    let docs = instant_db("docs", json!({"storage": {"size": "1Gi"}}));
    let source = PodRoot::new(
        &docs,
        None,
        std::slice::from_ref(&claim),
        &credentials,
        claim_dir.path(),
    );
    let mounts = source.pod.containers[0].volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/backups/nightly-pvc")
    );
    let (port, server) = source.serve().await;
    let http = reqwest::Client::new();
    for (i, text) in [
        "the harbour crane lifts containers",
        "tides at the north pier",
    ]
    .iter()
    .enumerate()
    {
        let r = http
            .post(format!("http://127.0.0.1:{port}/api/documents"))
            .bearer_auth(&API_KEYS.write)
            .json(&json!({"text": text, "name": format!("doc-{i}.txt")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "ingest: {}", r.status());
    }
    let client = HttpEngineClient::new(port, std::time::Duration::from_secs(10)).unwrap();

    // volume destination, as the backup controller resolves and sends it
    let volume: BackupDestination =
        serde_json::from_value(json!({"volume": {"claimName": claim}})).unwrap();
    let resolved = plan::resolve_destination(&volume, "search", "docs").unwrap();
    let folder = plan::destination_url(&resolved).unwrap();
    assert_eq!(folder, "file:///backups/nightly-pvc/instant-db-backups");
    let mut locations = vec![];
    for id in ["old-1", "kept-2"] {
        let location = backup_through(&client, &source.map(&folder), id).await;
        let archive = plan::archive_url(&folder, id).unwrap();
        assert_eq!(
            location,
            source.map(&archive),
            "the engine stored it where the operator records it"
        );
        locations.push(archive);
    }
    let on_claim = |id: &str| {
        claim_dir
            .path()
            .join(format!("nightly-pvc/instant-db-backups/{id}.tar.gz"))
    };
    assert!(on_claim("old-1").is_file() && on_claim("kept-2").is_file());
    // retention: the operator deletes the pruned archive through the engine, as in S3
    let pruned = source.map(&plan::folder_of(&locations[0]).unwrap());
    assert!(
        client
            .delete_backup(&EngineTarget::http("127.0.0.1"), TOKEN, &pruned, "old-1")
            .await
            .unwrap()
    );
    assert!(!on_claim("old-1").exists() && on_claim("kept-2").is_file());

    // an S3 backup of the same data, as for another cluster
    let s3: BackupDestination = serde_json::from_value(json!({"s3": {"endpoint": endpoint,
        "bucket": "idb-backups", "credentialsSecret": "s3-creds"}}))
    .unwrap();
    let s3_folder =
        plan::destination_url(&plan::resolve_destination(&s3, "search", "docs").unwrap()).unwrap();
    backup_through(&client, &s3_folder, "seed-3").await;
    server.abort();

    // new instances: from the volume backup (same namespace) and from S3 (source)
    for (name, from, claims) in [
        (
            "clone-volume",
            json!({"source": {"backupId": "kept-2", "destination": {"volume": {"claimName": claim}}}}),
            vec![claim.clone()],
        ),
        (
            "clone-s3",
            json!({"source": {"backupId": "seed-3", "destination": {"s3": {"endpoint": endpoint,
                "bucket": "idb-backups", "prefix": "search/docs", "credentialsSecret": "s3-creds"}}}}),
            vec![],
        ),
    ] {
        let db = instant_db(
            name,
            json!({"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": from}}),
        );
        let plan = bootstrap::plan(&db, &[]);
        let bootstrap::Plan::Ready(recorded) = plan.clone() else {
            panic!("{name}: no archive")
        };
        let url = recorded.archive_url.unwrap();
        assert!(!url.contains("testing-secret"), "{url}");
        let pod = PodRoot::new(&db, Some(&url), &claims, &credentials, claim_dir.path());
        assert_eq!(pod.run_init(), 0, "{name}: the init container restores");
        assert_eq!(pod.documents(), 2, "{name}: every document is back");
        let (reason, message) = pod.bootstrapped(&plan);
        assert_eq!(reason, bootstrap::reasons::RESTORED, "{name}: {message}");
        assert!(message.ends_with(": 2 documents"), "{name}: {message}");
        assert!(
            !pod.path("/data")
                .join(instant_db::bootstrap::MARKER)
                .exists()
        );
        // the instance takes a write, then its pod restarts: the init container keeps the data
        pod.add_document();
        assert_eq!(pod.run_init(), 0, "{name}: a second start succeeds");
        assert_eq!(pod.documents(), 3, "{name}: the data written since is kept");
        // a first start onto a volume with data (a claim kept from an earlier instance) says so
        let (reason, message) = pod.bootstrapped(&plan);
        assert_eq!(
            reason,
            bootstrap::reasons::EXISTING_DATA_KEPT,
            "{name}: {message}"
        );
    }

    // an archive that is not there: the init container fails (the pod never serves empty)
    let db = instant_db(
        "clone-missing",
        json!({"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup":
        {"source": {"backupId": "never-made", "destination": {"volume": {"claimName": claim}}}}}}),
    );
    let bootstrap::Plan::Ready(recorded) = bootstrap::plan(&db, &[]) else {
        panic!()
    };
    let pod = PodRoot::new(
        &db,
        recorded.archive_url.as_deref(),
        &[claim],
        &credentials,
        claim_dir.path(),
    );
    assert_ne!(pod.run_init(), 0);
}

/// Continuous archiving through the operator's configuration, end to end on a claim: an
/// InstantDbBackupPolicy's `continuousArchiving` rendered into the engine's config (the policy's
/// folder), the real engine archiving into it, its `GET /admin/archive` read and turned into
/// the `ContinuousArchiving` condition and the recovery window, and a new instance
/// bootstrapped to a time between two writes through the operator's init container
/// (`--from <folder> --to-time <time>`): it holds exactly the documents committed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_archive_bootstraps_a_new_instance_to_a_time_through_the_operators_config_and_init_container()
 {
    use instant_db_operator::controller::instantdb::archiving;
    let claim_dir = tempfile::tempdir().unwrap();
    let claim = "archive-pvc".to_string();
    std::fs::create_dir_all(claim_dir.path().join(&claim)).unwrap();
    let docs = instant_db("docs", json!({"storage": {"size": "1Gi"}}));
    let policy: instant_db_crds::backup::InstantDbBackupPolicy = serde_json::from_value(json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDbBackupPolicy",
        "metadata": {"name": "daily", "namespace": "search"},
        "spec": {"instance": "docs", "schedule": "@daily",
            "destination": {"volume": {"claimName": claim}},
            "continuousArchiving": {"enabled": true, "maxLagSeconds": 1}}}))
    .unwrap();
    let plan = archiving::plan(&docs, std::slice::from_ref(&policy))
        .unwrap()
        .unwrap();
    let folder = plan.settings.destination.clone();
    assert_eq!(folder, "file:///backups/archive-pvc/instant-db-backups");
    let none = BTreeMap::new();
    let source = PodRoot::with(
        &docs,
        None,
        None,
        Some(&plan.settings),
        std::slice::from_ref(&claim),
        &none,
        claim_dir.path(),
    );
    let (port, server) = source.serve().await;
    let http = reqwest::Client::new();
    let ingest = |name: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://127.0.0.1:{port}/api/documents"))
                .bearer_auth(&API_KEYS.write)
                .json(
                    &json!({"text": format!("the {name} document"), "name": format!("{name}.txt")}),
                )
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "ingest: {}", r.status());
        }
    };
    let client = HttpEngineClient::new(port, std::time::Duration::from_secs(10)).unwrap();
    let target = EngineTarget::http("127.0.0.1");
    // until the engine says a change newer than `after` is archived and nothing waits (the
    // report is the shipper's last poll: right after a write it may not count it yet)
    let (client, target) = (&client, &target);
    let archived = |after: Option<String>| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = client.archive_report(target, TOKEN).await.unwrap();
            if r.enabled
                && r.lag_bytes == 0
                && r.last_error.is_none()
                && r.last_archived_time.is_some()
                && r.last_archived_time > after
            {
                return r;
            }
            assert!(std::time::Instant::now() < deadline, "not archived: {r:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    ingest("first").await;
    let first = archived(None).await;
    backup_through(client, &source.map(&folder), "base-1").await;
    ingest("second").await;
    let report = archived(first.last_archived_time).await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let between = k8s_openapi::jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ingest("third").await;
    archived(report.last_archived_time.clone()).await;
    // the operator's point-in-time restore request (folder and target_time), on the live
    // instance: the engine takes it and reports the target and where it got
    let job = client
        .start_restore(
            target,
            TOKEN,
            &source.map(&folder),
            Some("latest"),
            "pitr-latest",
        )
        .await
        .unwrap();
    assert_eq!(job.target_time.as_deref(), Some("latest"), "{job:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let job = loop {
        let job = client
            .restore_job(target, TOKEN, "pitr-latest")
            .await
            .unwrap()
            .unwrap();
        if job.phase.is_finished() {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        job.phase,
        instant_db_operator::engine_client::RestorePhase::Completed,
        "{job:?}"
    );
    assert!(job.restored_to.is_some(), "{job:?}");
    assert_eq!(job.document_count, Some(3), "{job:?}");
    server.abort();

    // what the operator makes of the real report
    let mut status = instant_db_crds::InstantDbStatus::default();
    archiving::apply_to_status(
        &mut status,
        &archiving::State::On {
            plan: &plan,
            report: Some(&report),
        },
        k8s_openapi::jiff::Timestamp::now(),
    );
    let c = instant_db_crds::conditions::find_condition(
        &status.conditions,
        instant_db_crds::conditions::CONTINUOUS_ARCHIVING,
    )
    .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "Archiving"),
        "{}",
        c.message
    );
    assert!(status.first_recoverability_point.is_some(), "{report:?}");
    assert!(status.last_archived_time.is_some(), "{report:?}");

    // a new instance, bootstrapped to the time between the second and the third document
    let clone = instant_db(
        "clone-pitr",
        json!({"storage": {"size": "1Gi"}, "bootstrap": {"fromBackup": {"targetTime": between,
            "source": {"destination": {"volume": {"claimName": claim}}}}}}),
    );
    let bootstrap::Plan::Ready(recorded) = bootstrap::plan(&clone, &[]) else {
        panic!("no folder")
    };
    assert_eq!(recorded.archive_url.as_deref(), Some(folder.as_str()));
    let pod = PodRoot::with(
        &clone,
        recorded.archive_url.as_deref(),
        recorded.target_time.as_deref(),
        None,
        std::slice::from_ref(&claim),
        &none,
        claim_dir.path(),
    );
    let args = pod.pod.init_containers.as_ref().unwrap()[0]
        .args
        .clone()
        .unwrap();
    assert!(args.windows(2).any(|w| w[0] == "--to-time"), "{args:?}");
    assert_eq!(pod.run_init(), 0, "the init container restores to the time");
    assert_eq!(
        pod.documents(),
        2,
        "the first and second documents, not the third"
    );
}
