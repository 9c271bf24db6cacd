//! Backup to a real S3-compatible server (moto_server from PyPI `moto[server]`)
//! and restore. The test fails (never skips) when `moto_server` is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::moto::{free_port, start_moto};
use instant_db::backup::{
    self, BackupError, BackupRequest, Counts, Location, VerifiedBackup, list_backups, swap_in,
};
use instant_db::resilience::settings::{OBJECT_STORAGE, ResilienceConfig, RetrySpec};
use instant_db::resilience::{BreakerConfig, BreakerState, CircuitBreaker};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use rusqlite::Connection;
use serde_json::Value;

const DB: &str = "instant-db.sqlite";
const INDEX: &str = "index/vectors.bin";
/// Credentials by reference: the files `moto.AWS_*` of [`creds_dir`] (moto takes any key).
const CREDS: &str = "credentials=moto";

/// The credentials directory of this test process, written once.
fn creds_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            std::fs::write(dir.path().join(format!("moto.{key}")), "testing\n").unwrap();
        }
        dir
    })
    .path()
}

/// `fetch_and_verify` with the credentials of [`creds_dir`].
async fn fetch(
    source: &str,
    staging: &Path,
    progress: backup::ProgressSink,
) -> Result<VerifiedBackup, BackupError> {
    let (folder, name) = Location::parse_object_with(source, creds_dir())?;
    backup::fetch_and_verify_from(folder, name, staging, progress).await
}

fn make_db(dir: &Path, docs: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("index")).unwrap();
    let path = dir.join(DB);
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE documents(id INTEGER PRIMARY KEY, title TEXT NOT NULL);
         CREATE TABLE chunks(id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL, text TEXT NOT NULL);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..docs {
        tx.execute(
            "INSERT INTO documents(title) VALUES (?1)",
            [format!("doc {i}")],
        )
        .unwrap();
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO chunks(document_id, text) VALUES (?1, ?2)",
            (id, format!("chunk of {i}")),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    // ~12 MB of incompressible bytes so the upload takes several multipart parts
    std::fs::write(dir.join(INDEX), common::noise(12 * 1024 * 1024)).unwrap();
    path
}

/// A direct client on the bucket, to look at and tamper with the stored objects.
fn raw_store(endpoint: &str) -> object_store::aws::AmazonS3 {
    common::bucket_client(endpoint, "idb-backups")
}

fn count(path: &Path, table: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_s3_list_restore_delete() {
    let server = start_moto().await;
    let port = server.port;
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let resp = client
        .put(format!("{endpoint}/idb-backups"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = make_db(&data, 300);
    let folder = format!(
        "s3://idb-backups/prod/node-1?endpoint={endpoint}&region=us-east-1&allow_http=true&{CREDS}"
    );
    let dest = Location::parse_with(&folder, creds_dir()).unwrap();

    let mut req = BackupRequest::new(&db, dest.clone());
    req.extra_files = vec![(INDEX.to_string(), data.join(INDEX))];
    req.counts = Counts::Sql {
        documents: "SELECT count(*) FROM documents".into(),
        chunks: "SELECT count(*) FROM chunks".into(),
    };
    req.backup_id = Some("s3-one".into());
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    assert_eq!(
        report.location,
        format!(
            "s3://idb-backups/prod/node-1/s3-one.tar.gz?endpoint={endpoint}&region=us-east-1&allow_http=true&{CREDS}"
        )
    );
    assert!(
        !report.location.contains("secret"),
        "credentials never appear in URLs"
    );
    assert!(report.size_bytes > 12 * 1024 * 1024);
    assert_eq!(
        (report.manifest.document_count, report.manifest.chunk_count),
        (300, 300)
    );

    // the objects really are in the bucket, under the prefix
    let store = raw_store(&endpoint);
    let sidecar = store
        .get(&ObjPath::from("prod/node-1/s3-one.sha256"))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(sidecar.bytes().await.unwrap().to_vec()).unwrap(),
        format!("{}  s3-one.tar.gz\n", report.sha256)
    );

    let listed = list_backups(&dest).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, "s3-one");
    assert!(listed[0].complete);
    assert_eq!(listed[0].size_bytes, report.size_bytes);
    assert_eq!(
        backup::read_manifest(&dest, "s3-one").await.unwrap(),
        report.manifest
    );

    // restore into a fresh data directory
    // the location names its credentials, so it is the restore source as it is
    let source = report.location.clone();
    let restored = tmp.path().join("restored");
    let verified = fetch(&source, &tmp.path().join("staging"), backup::no_progress())
        .await
        .unwrap();
    assert_eq!(verified.archive_sha256, report.sha256);
    let guard = swap_in(&restored, &verified, &[DB, INDEX]).unwrap();
    let rdb = restored.join(DB);
    let ok: String = Connection::open(&rdb)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(count(&rdb, "documents"), 300);
    assert_eq!(
        std::fs::read(restored.join(INDEX)).unwrap(),
        std::fs::read(data.join(INDEX)).unwrap()
    );
    guard.commit().unwrap();

    // a tampered object is rejected before anything is extracted
    let key = ObjPath::from("prod/node-1/s3-one.tar.gz");
    let mut bytes = store
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x80;
    store.put(&key, bytes.into()).await.unwrap();
    let staging2 = tmp.path().join("staging2");
    let err = fetch(&source, &staging2, backup::no_progress())
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::Checksum { ref file, .. } if file == "s3-one.tar.gz"),
        "{err}"
    );
    assert!(!staging2.exists());

    // retention
    backup::delete_backup(&dest, "s3-one").await.unwrap();
    assert!(list_backups(&dest).await.unwrap().is_empty());
    assert!(matches!(
        backup::delete_backup(&dest, "s3-one").await,
        Err(BackupError::NotFound(_))
    ));
    let err = fetch(&source, &tmp.path().join("staging3"), backup::no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::NotFound(_)), "{err}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_s3_endpoint_fails_after_bounded_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join(DB);
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    // a port nothing listens on
    let port = free_port();
    let dest = Location::parse_with(
        &format!("s3://bkt/p?endpoint=http://127.0.0.1:{port}&allow_http=true&{CREDS}"),
        creds_dir(),
    )
    .unwrap();
    let started = Instant::now();
    let err = backup::create_backup(BackupRequest::new(&db, dest), backup::no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::ObjectStore(_)), "{err}");
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "retries are bounded"
    );
}

fn unreachable_s3(port: u16) -> String {
    format!("s3://bkt/p?endpoint=http://127.0.0.1:{port}&allow_http=true&{CREDS}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_opens_the_breaker_after_repeated_failures_then_calls_fail_fast() {
    let port = free_port();
    let breaker = CircuitBreaker::new(
        "object_storage",
        BreakerConfig {
            failure_threshold: 2,
            cool_down: Duration::from_secs(3600),
            ..BreakerConfig::default()
        },
    );
    let loc = Location::parse_with(&unreachable_s3(port), creds_dir())
        .unwrap()
        .with_resilience(breaker.clone(), RetrySpec::default_for(OBJECT_STORAGE));
    for failures in 1..=2 {
        // each operation is retried inside the breaker and counts as one failure
        let err = list_backups(&loc).await.unwrap_err();
        assert!(matches!(err, BackupError::ObjectStore(_)), "{err}");
        assert_eq!(breaker.consecutive_failures(), failures);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    // refused without a request: nothing is recorded and the error names the breaker
    let err = list_backups(&loc).await.unwrap_err();
    assert!(matches!(err, BackupError::CircuitOpen { .. }), "{err}");
    assert!(err.to_string().contains("circuit breaker"), "{err}");
    let (folder, name) = Location::parse_object_with(
        &format!("s3://bkt/p/x.tar.gz?endpoint=http://127.0.0.1:{port}&allow_http=true&{CREDS}"),
        creds_dir(),
    )
    .unwrap();
    let err = backup::fetch_and_verify_from(
        folder,
        name,
        &tempfile::tempdir().unwrap().path().join("st"),
        backup::no_progress(),
    )
    .await
    .unwrap_err();
    // a location parsed without the breaker does not share its state
    assert!(matches!(err, BackupError::ObjectStore(_)), "{err}");
    let (folder, name) = Location::parse_object_with(
        &format!("s3://bkt/p/x.tar.gz?endpoint=http://127.0.0.1:{port}&allow_http=true&{CREDS}"),
        creds_dir(),
    )
    .unwrap();
    let err = backup::fetch_and_verify_from(
        folder.with_resilience(breaker.clone(), RetrySpec::default_for(OBJECT_STORAGE)),
        name,
        &tempfile::tempdir().unwrap().path().join("st"),
        backup::no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::CircuitOpen { .. }), "{err}");
    assert_eq!(breaker.consecutive_failures(), 2);
}

use common::ADMIN_TOKEN as TOKEN;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_storage_breaker_opens_over_http_and_shows_in_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut cfg = common::config(&dir.path().join("data"));
    cfg.admin_token_file = Some(token_file);
    cfg.backup.credentials_dir = creds_dir().to_path_buf();
    let engine = common::open_without_model(cfg).await;
    let threshold = engine
        .breakers
        .get("object_storage")
        .config()
        .failure_threshold;
    let s = common::TestServer::start(engine).await;
    let c = reqwest::Client::new();
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert!(
        m.contains("instantdb_circuit_breaker_state{dependency=\"object_storage\"} 0"),
        "{m}"
    );
    let dest = unreachable_s3(free_port());
    let list = |c: reqwest::Client| {
        let url = s.url("/admin/backups");
        let dest = dest.clone();
        async move {
            let r = c
                .get(url)
                .query(&[("destination", dest)])
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for _ in 0..threshold {
        let (status, body) = list(c.clone()).await;
        assert_eq!(status, 503, "{body}");
        assert!(!body.to_string().contains("circuit breaker"), "{body}");
        assert!(
            !body.to_string().contains("secret_access_key=testing"),
            "{body}"
        );
    }
    let (status, body) = list(c.clone()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.to_string().contains("circuit breaker"), "{body}");
    // an integrity check publishes a fresh health snapshot at once
    let r = c
        .post(s.url("/admin/integrity"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let health: Value = common::get_json(&c, s.url("/health/detailed")).await;
    let breakers = &health["components"]["circuit_breakers"];
    assert_eq!(breakers["details"]["object_storage"], "open", "{health}");
    assert_eq!(breakers["status"], "degraded", "{health}");
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert!(
        m.contains("instantdb_circuit_breaker_state{dependency=\"object_storage\"} 2"),
        "{m}"
    );

    // `instant-db backup --server`: a backup that fails on the server exits 1 and says why; a
    // destination the server rejects exits 2
    let (base, dest, scratch) = (s.base.clone(), dest.clone(), dir.path().join("cli"));
    let (failed, rejected) = tokio::task::spawn_blocking(move || {
        let cli = |to: &str| {
            std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"))
                .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
                .args(["--log-level", "warn", "--data-dir"])
                .arg(&scratch)
                .args(["backup", "--server", &base, "--to", to])
                .env("INSTANT_DB_ADMIN_TOKEN", TOKEN)
                .output()
                .unwrap()
        };
        (cli(&dest), cli("ftp://nowhere/x"))
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed on the server") && stderr.contains("circuit breaker"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret_access_key=testing"), "{stderr}");
    assert_eq!(
        rejected.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&rejected.stderr)
    );
    s.stop().await;
}

/// A store that answers every request with 503 (transient), counting the requests.
fn always_unavailable() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                // One request per connection: answer and close.
                if stream.read(&mut buf).unwrap_or(0) > 0 {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = stream.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    (port, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_object_storage_retries_decide_how_often_an_operation_is_tried() {
    let mut attempts_seen = vec![];
    for max_attempts in [1, 3] {
        let (port, requests) = always_unavailable();
        let cfg: ResilienceConfig = serde_norway::from_str(&format!(
            "retries: {{object_storage: {{strategy: fixed, max_attempts: {max_attempts}, delay_ms: 10, jitter: false}}}}"
        ))
        .unwrap();
        cfg.validate().unwrap();
        let loc = Location::parse_with(&unreachable_s3(port), creds_dir())
            .unwrap()
            .with_resilience(
                CircuitBreaker::new("object_storage", BreakerConfig::default()),
                cfg.retry(OBJECT_STORAGE),
            );
        let err = list_backups(&loc).await.unwrap_err();
        assert!(matches!(err, BackupError::ObjectStore(_)), "{err}");
        attempts_seen.push(requests.load(std::sync::atomic::Ordering::SeqCst));
    }
    // object_store's client retries each request a fixed number of times on its own; the
    // engine's policy multiplies that by its attempts.
    let per_attempt = attempts_seen[0];
    assert!(per_attempt >= 1, "{attempts_seen:?}");
    assert_eq!(attempts_seen[1], 3 * per_attempt, "{attempts_seen:?}");
}
