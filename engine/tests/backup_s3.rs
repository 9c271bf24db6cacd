//! Backup to a real S3-compatible server (moto_server from PyPI `moto[server]`)
//! and restore. The test fails (never skips) when `moto_server` is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use instant_db::backup::{
    self, BackupError, BackupRequest, Counts, Location, fetch_and_verify, list_backups, swap_in,
};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use rusqlite::Connection;

const DB: &str = "instant-db.sqlite";
const INDEX: &str = "index/vectors.bin";
const CREDS: &str = "access_key_id=testing&secret_access_key=testing";

/// Kills the server when dropped (also when the test panics).
struct MotoServer {
    child: Child,
    port: u16,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_moto() -> MotoServer {
    let Some(bin) = find_on_path("moto_server") else {
        panic!(
            "moto_server was not found on PATH. This test needs a real S3-compatible server: \
             install it with `pip install 'moto[server]'`"
        );
    };
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn moto_server");
    let server = MotoServer { child, port };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on port {port} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
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
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..12 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.join(INDEX), noise).unwrap();
    path
}

/// A direct client on the bucket, to look at and tamper with the stored objects.
fn raw_store(endpoint: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("idb-backups")
        .with_region("us-east-1")
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap()
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
    let dest = Location::parse(&folder).unwrap();

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
            "s3://idb-backups/prod/node-1/s3-one.tar.gz?endpoint={endpoint}&region=us-east-1&allow_http=true"
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
    let source = format!("{}&{CREDS}", report.location);
    let restored = tmp.path().join("restored");
    let verified = fetch_and_verify(&source, &tmp.path().join("staging"), backup::no_progress())
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
    let err = fetch_and_verify(&source, &staging2, backup::no_progress())
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
    let err = fetch_and_verify(&source, &tmp.path().join("staging3"), backup::no_progress())
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
    let dest = Location::parse(&format!(
        "s3://bkt/p?endpoint=http://127.0.0.1:{port}&allow_http=true&{CREDS}"
    ))
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
