//! Backup verification over real HTTP with the real model, real SQLite files and a real
//! S3-compatible server (moto_server; the tests fail, never skip, without it): a good backup
//! verifies `passed`, an archive damaged after upload or cut short fails at its checksums, a
//! backup that holds damage fails at its integrity check, and no scratch space is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::moto::start_moto;
use common::{TestServer, admin, admin_get_json, wait_backup};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use serde_json::{Value, json};

const BUCKET: &str = "idb-verify";

fn credentials(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        std::fs::write(dir.join(format!("moto.{key}")), "testing\n").unwrap();
    }
}

async fn start(data: &Path, creds: &Path) -> TestServer {
    let (data, creds) = (data.to_path_buf(), creds.to_path_buf());
    let engine = tokio::task::spawn_blocking(move || {
        let mut cfg = common::admin_config(&data);
        cfg.backup.credentials_dir = creds;
        let engine =
            instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Required)
                .unwrap();
        let r = instant_db::ingest::ingest_paths(
            &engine,
            &[common::demo_corpus()],
            &common::demo_options(),
            &instant_db::ingest::NoProgress,
        )
        .unwrap();
        assert_eq!(r.failed, 0);
        engine
    })
    .await
    .unwrap();
    TestServer::start(engine).await
}

/// Polls `path` until its verification record (at `pointer`) is final.
async fn wait_verified(c: &reqwest::Client, s: &TestServer, path: &str, pointer: &str) -> Value {
    for _ in 0..1200 {
        let v = admin_get_json(c, s, path).await;
        let rec = v.pointer(pointer).cloned().unwrap_or(Value::Null);
        if rec["phase"] == "passed" || rec["phase"] == "failed" {
            return rec;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path}: verification did not finish");
}

async fn verify_on_demand(c: &reqwest::Client, s: &TestServer, source: &str) -> Value {
    let (status, job) = admin(c, s, "/admin/verifications", json!({"source": source})).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["phase"], "pending", "{job}");
    let id = job["id"].as_str().unwrap();
    wait_verified(c, s, &format!("/admin/verifications/{id}"), "").await
}

fn no_scratch_left(data: &Path) {
    let left: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch space left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backup_is_verified_and_a_damaged_or_truncated_archive_fails_its_checksums() {
    let moto = start_moto().await;
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let c = common::admin_client();
    let r = c.put(format!("{endpoint}/{BUCKET}")).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    credentials(&creds);
    let data = tmp.path().join("data");
    let s = start(&data, &creds).await;
    let dest = format!(
        "s3://{BUCKET}/verify?endpoint={endpoint}&region=us-east-1&allow_http=true&credentials=moto"
    );

    // A good backup: verified after it completes, every check passed, including the searches.
    let (status, job) = admin(&c, &s, "/admin/backups", json!({"destination": dest})).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let job = wait_backup(&c, &s, &id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let v = wait_verified(&c, &s, &format!("/admin/backups/{id}"), "/verification").await;
    assert_eq!(v["phase"], "passed", "{v}");
    assert!(v["verified_at"].is_string() && v["error"].is_null(), "{v}");
    for check in [
        "checksums",
        "compatibility",
        "integrity",
        "counts",
        "keyword_search",
        "vector_search",
    ] {
        assert_eq!(v["checks"][check]["passed"], true, "{check}: {v}");
    }
    assert!(
        v["checks"]["counts"]["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("{} documents", job["document_count"])),
        "{v}"
    );
    no_scratch_left(&data);

    // The same archive verified on demand passes too.
    let location = job["location"].as_str().unwrap().to_string();
    let v = verify_on_demand(&c, &s, &location).await;
    assert_eq!(v["phase"], "passed", "{v}");

    // Bytes of the stored object overwritten after upload: the checksums catch it.
    let store = common::bucket_client(&endpoint, BUCKET);
    let key = ObjPath::from(format!("verify/{id}.tar.gz"));
    let mut bytes = store
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let good = bytes.clone();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xa5;
    }
    store.put(&key, bytes.into()).await.unwrap();
    let v = verify_on_demand(&c, &s, &location).await;
    assert_eq!(v["phase"], "failed", "{v}");
    assert_eq!(v["checks"]["checksums"]["passed"], false, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("failed its checksums check")
            && e.contains("checksum mismatch")
            && e.contains("Do not restore")
            && e.contains("take a new backup"),
        "{e}"
    );
    assert!(v["checks"]["integrity"].is_null(), "{v}");
    no_scratch_left(&data);

    // Cut short (an interrupted copy): fails too.
    store
        .put(&key, good[..good.len() / 3].to_vec().into())
        .await
        .unwrap();
    let v = verify_on_demand(&c, &s, &location).await;
    assert_eq!(v["phase"], "failed", "{v}");
    assert_eq!(v["checks"]["checksums"]["passed"], false, "{v}");
    no_scratch_left(&data);

    // Secrets never show: the record names the credentials, not the keys.
    assert!(!v.to_string().contains("testing"), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_holds_damage_fails_its_integrity_check_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let creds = tmp.path().join("creds");
    credentials(&creds);
    let data = tmp.path().join("data");
    let backups = tmp.path().join("backups");
    let s = start(&data, &creds).await;
    let c = common::admin_client();
    // Lost chunks (source damage that does not stop SQLite from opening the file): the backup
    // is taken, its checksums are right, and only the unpacked database's check can tell.
    rusqlite::Connection::open(data.join("instant-db.sqlite"))
        .unwrap()
        .execute_batch("DELETE FROM chunks WHERE id IN (SELECT id FROM chunks LIMIT 5)")
        .unwrap();
    let (status, job) = admin(&c, &s, "/admin/backups", json!({"destination": backups})).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(wait_backup(&c, &s, &id).await["status"], "completed");
    let v = wait_verified(&c, &s, &format!("/admin/backups/{id}"), "/verification").await;
    assert_eq!(v["phase"], "failed", "{v}");
    assert_eq!(v["checks"]["checksums"]["passed"], true, "{v}");
    assert_eq!(v["checks"]["integrity"]["passed"], false, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains(&format!("backup {id} failed its integrity check"))
            && e.contains("chunks are missing")
            && e.contains("Do not restore"),
        "{e}"
    );
    no_scratch_left(&data);
    s.stop().await;
}

#[test]
fn scratch_space_left_by_a_crash_is_removed_when_the_engine_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join("tmp/verify-0123abcd/data");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("instant-db.sqlite"), b"half a copy").unwrap();
    let _engine = instant_db::engine::Engine::open(
        common::config(tmp.path()),
        instant_db::engine::ModelLoading::Skip,
    )
    .unwrap();
    assert!(!tmp.path().join("tmp/verify-0123abcd").exists());
}
