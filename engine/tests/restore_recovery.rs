//! Restore as the way out of damage (issue 10, engine side): a restore works when the live
//! database cannot be opened (CLI and HTTP), repair never hides lost source rows, damage is seen
//! at start, restores are jobs (idempotent, journaled, fenced against backups and writes), and
//! backups carry the uploads and are refused for another model or a newer schema.
//!
//! Real SQLite files and the real binary; the embedding model is not needed for any of this, so
//! the engines run keyword-only (`ModelLoading::Skip`), which keeps the tests quick.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{ADMIN_TOKEN as TOKEN, TestServer, admin, admin_get_json, wait_backup};
use instant_db::engine::{Engine, ModelLoading};
use serde_json::{Value, json};

const DB: &str = "instant-db.sqlite";

fn cli(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instant-db"));
    cmd.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir());
    cmd.args(["--log-level", "warn", "--format", "json", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("INSTANT_DB_ADMIN_TOKEN")
        .env_remove("INSTANT_DB_ADMIN_TOKEN_FILE")
        .env_remove("INSTANT_DB_SERVER");
    cmd.output().unwrap()
}

fn all_output(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", all_output(out)))
}

fn test_config(data: &Path) -> instant_db::config::Config {
    std::fs::create_dir_all(data).unwrap();
    let token_file = data.join("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut cfg = common::config(data);
    cfg.admin_token_file = Some(token_file);
    cfg.health.thresholds = common::host_independent_thresholds();
    cfg
}

/// A data directory holding the demo corpus (keyword-only), closed again. Returns its
/// document count.
fn seed_demo(data: &Path) -> i64 {
    let engine = Engine::open(test_config(data), ModelLoading::Skip).unwrap();
    let r = instant_db::ingest::ingest_paths(
        &engine,
        &[common::demo_corpus()],
        &common::demo_options(),
        &instant_db::ingest::NoProgress,
    )
    .unwrap();
    assert_eq!(r.failed, 0, "{:?}", r.problems);
    let n = engine.stats().unwrap().store.documents;
    engine.store.checkpoint().unwrap();
    drop(engine);
    n
}

fn sql(data: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(data.join(DB)).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    // as in the `sqlite3` shell and most tools: no cascades, so damage stays where it is made
    c.pragma_update(None, "foreign_keys", "OFF").unwrap();
    c
}

fn count(data: &Path, q: &str) -> i64 {
    sql(data).query_row(q, [], |r| r.get(0)).unwrap()
}

/// 4 KiB of (pseudo-)random bytes into the middle of the stopped database, as in the report.
fn corrupt(data: &Path) {
    use std::io::{Seek, SeekFrom};
    sql(data)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let db = data.join(DB);
    let len = std::fs::metadata(&db).unwrap().len();
    let noise = common::noise(4096);
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&noise).unwrap();
    f.sync_all().unwrap();
}

/// `instant-db backup --to DIR` on a stopped data directory: the archive URL.
fn cli_backup(data: &Path, to: &Path) -> String {
    let out = cli(data, &["backup", "--to", &to.display().to_string()]);
    assert!(out.status.success(), "{}", all_output(&out));
    stdout_json(&out)["location"].as_str().unwrap().to_string()
}

#[test]
fn cli_check_repair_and_restore_of_a_corrupted_data_dir_say_what_to_do_and_restore_brings_every_document_back()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let location = cli_backup(&data, &dir.path().join("backups"));
    corrupt(&data);

    for cmd in ["check", "repair"] {
        let out = cli(&data, &[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", all_output(&out));
        let text = all_output(&out);
        assert!(
            text.contains("instant-db restore") && text.contains("--from"),
            "{cmd} gives no advice: {text}"
        );
    }

    let out = cli(&data, &["restore", "--from", &location]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(stdout_json(&out)["documents"], documents);
    let out = cli(&data, &["check"]);
    assert!(out.status.success(), "{}", all_output(&out));
    assert_eq!(stdout_json(&out)["documents"], documents);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real binary's `serve` on a free port, once it accepts connections.
struct Served {
    child: std::process::Child,
    base: String,
}

impl Served {
    fn start(data: &Path) -> Served {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let config = data.join("test-config.yaml");
        std::fs::write(
            &config,
            format!(
                "{}  check_interval_secs: 1\n",
                common::HOST_INDEPENDENT_CONFIG
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_instant-db"))
            .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
            .arg("--config")
            .arg(&config)
            .args(["--log-level", "warn", "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("INSTANT_DB_DATA_DIR", data)
            .env("INSTANT_DB_ADMIN_TOKEN", TOKEN)
            .env_remove("INSTANT_DB_ADMIN_TOKEN_FILE")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Served {
                    child,
                    base: format!("http://127.0.0.1:{port}"),
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("serve exited before listening: {status:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("serve did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_restore(c: &reqwest::Client, base: &str, id: &str) -> Value {
    for _ in 0..1200 {
        let job: Value = c
            .get(format!("{base}/admin/restores/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let phase = job["phase"].as_str().unwrap_or_default();
        if ["completed", "rolled_back", "failed"].contains(&phase) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("restore {id} did not finish");
}

async fn wait_ready(c: &reqwest::Client, url: &str) -> u16 {
    let mut status = 0;
    for _ in 0..100 {
        status = c.get(url).send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_corrupted_data_dir_stays_up_unready_and_an_http_restore_brings_every_document_back()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let location = cli_backup(&data, &dir.path().join("backups"));
    corrupt(&data);

    let s = Served::start(&data);
    let c = common::admin_client();
    assert_eq!(
        c.get(s.url("/health/live")).send().await.unwrap().status(),
        200
    );
    let ready = c.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(body["reasons"].to_string().contains("integrity"), "{body}");
    let detailed: Value = common::get_json(&c, s.url("/health/detailed")).await;
    assert_eq!(detailed["last_integrity_check"]["ok"], false, "{detailed}");
    let metrics = common::get_text(&c, s.url("/metrics")).await;
    assert!(metrics.contains("instantdb_integrity_ok 0"), "{metrics}");
    let docs = c.get(s.url("/api/documents")).send().await.unwrap();
    assert_eq!(docs.status(), 503);
    let docs: Value = docs.json().await.unwrap();
    assert!(
        docs["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restore"),
        "{docs}"
    );

    let r = c
        .post(s.url("/admin/restores"))
        .bearer_auth(TOKEN)
        .json(&json!({"id": "fix-1", "source": location}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let job = wait_restore(&c, &s.base, "fix-1").await;
    assert_eq!(job["phase"], "completed", "{job}");
    assert_eq!(job["document_count"], documents, "{job}");
    assert_eq!(wait_ready(&c, &s.url("/health/ready")).await, 200);
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(stats["documents"], documents, "{stats}");
}

#[test]
fn repair_leaves_missing_chunks_and_orphan_embeddings_a_failed_check_that_recommends_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_demo(&data);
    let model = instant_db::config::Config::default().embedding.model;
    {
        let c = sql(&data);
        // embeddings as the model would have written them (the vectors' values do not matter)
        c.execute(
            "INSERT INTO embeddings (chunk_id, model, vector) SELECT id, ?1, zeroblob(1536) FROM chunks",
            [&model],
        )
        .unwrap();
        // foreign keys are off on this connection: the embeddings stay
        let n = c
            .execute(
                "DELETE FROM chunks WHERE id IN (SELECT id FROM chunks ORDER BY id DESC LIMIT 20)",
                [],
            )
            .unwrap();
        assert_eq!(n, 20);
    }
    let recorded = count(&data, "SELECT sum(chunk_count) FROM documents");

    let out = cli(&data, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let report = stdout_json(&out);
    let problems = report["problems"].to_string();
    assert!(problems.contains("20 chunks are missing"), "{problems}");
    assert!(problems.contains("20 embeddings"), "{problems}");

    let out = cli(&data, &["repair"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let report = stdout_json(&out);
    assert_eq!(report["integrity_ok"], false, "{report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("20 chunks are missing"), "{problems}");
    assert!(problems.contains("20 embeddings"), "{problems}");
    assert!(problems.contains("instant-db restore"), "{problems}");
    assert_eq!(
        count(&data, "SELECT sum(chunk_count) FROM documents"),
        recorded,
        "repair rewrote the documents' recorded chunk counts"
    );
}

#[test]
fn repair_leaves_a_missing_document_a_failed_check_that_recommends_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_demo(&data);
    sql(&data)
        .execute(
            "DELETE FROM documents WHERE id = (SELECT document_id FROM chunks LIMIT 1)",
            [],
        )
        .unwrap();
    let out = cli(&data, &["repair"]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let report = stdout_json(&out);
    let problems = report["problems"].to_string();
    assert!(problems.contains("belong to no document"), "{problems}");
    assert!(problems.contains("instant-db restore"), "{problems}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_deleted_full_text_rows_is_unready_from_the_first_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_demo(&data);
    let n = sql(&data).execute("DELETE FROM chunks_fts", []).unwrap();
    assert!(n > 0);
    let s = Served::start(&data);
    let c = common::admin_client();
    let ready = c.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("integrity") && reasons.contains("full-text"),
        "{body}"
    );
}

// ---- restore jobs, in process ----

async fn start(data: &Path) -> TestServer {
    let cfg = test_config(data);
    let engine =
        tokio::task::spawn_blocking(move || Engine::open(cfg, ModelLoading::Skip).unwrap())
            .await
            .unwrap();
    TestServer::start(engine).await
}

async fn backup_to_dir(c: &reqwest::Client, s: &TestServer, to: &Path) -> Value {
    let (status, job) = admin(
        c,
        s,
        "/admin/backups",
        json!({"destination": format!("file://{}", to.display())}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = wait_backup(c, s, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_job_id_is_idempotent_reports_its_phases_and_answers_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let s = start(&data).await;
    let c = common::admin_client();
    let backup = backup_to_dir(&c, &s, &dir.path().join("backups")).await;
    let source = backup["location"].as_str().unwrap();

    let (status, first) = admin(
        &c,
        &s,
        "/admin/restores",
        json!({"id": "r-1", "source": source}),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = admin(
        &c,
        &s,
        "/admin/restores",
        json!({"id": "r-1", "source": source}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], "r-1");
    assert_eq!(again["started_at"], first["started_at"]);
    let job = wait_restore(&c, &s.base, "r-1").await;
    assert_eq!(job["phase"], "completed", "{job}");
    assert_eq!(job["document_count"], documents);
    assert_eq!(job["backup_id"], backup["id"]);
    let phases: Vec<String> = job["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        phases,
        [
            "pending",
            "fetching",
            "verifying",
            "swapping",
            "checking",
            "completed"
        ],
        "{job}"
    );
    // Still one restore: the repeated id did not start a second one.
    let (status, third) = admin(
        &c,
        &s,
        "/admin/restores",
        json!({"id": "r-1", "source": source}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(third["finished_at"], job["finished_at"]);
    let (status, bad) = admin(
        &c,
        &s,
        "/admin/restores",
        json!({"id": "Bad_Id", "source": source}),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    s.stop().await;

    // A job cut by a restart before anything changed (as a crash would leave its record).
    std::fs::write(
        data.join("jobs/restore-cut.json"),
        serde_json::to_vec(&json!({
            "id": "cut", "source": source, "phase": "fetching",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": null, "error": null,
            "document_count": null, "chunk_count": null, "backup_id": null, "phases": []
        }))
        .unwrap(),
    )
    .unwrap();
    let s = start(&data).await;
    let job = admin_get_json(&c, &s, "/admin/restores/r-1").await;
    assert_eq!(job["phase"], "completed", "{job}");
    let cut = admin_get_json(&c, &s, "/admin/restores/cut").await;
    assert_eq!(cut["phase"], "failed", "{cut}");
    assert!(
        cut["error"].as_str().unwrap().contains("interrupted"),
        "{cut}"
    );
    let r = c
        .get(s.url("/admin/restores/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

/// An S3 endpoint that accepts connections and never answers: a backup to it stays running.
fn silent_s3() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (
        l,
        format!(
            "s3://bucket/stuck?endpoint=http://127.0.0.1:{port}&allow_http=true&region=us-east-1"
        ),
    )
}

async fn post_admin(c: &reqwest::Client, s: &Served, path: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(s.url(path))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_or_second_backup_while_a_backup_runs_is_refused_with_409_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_demo(&data);
    let good = cli_backup(&data, &dir.path().join("backups"));
    let (_listener, stuck) = silent_s3();
    // credentials only for signing the requests nobody answers
    let s = Served::start_with(
        &data,
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    let c = common::admin_client();
    let (status, running) = post_admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": stuck, "id": "slow-1"}),
    )
    .await;
    assert_eq!(status, 202, "{running}");

    let (status, refused) = post_admin(&c, &s, "/admin/restores", json!({"source": good})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["error"]["code"], "operation_in_progress",
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slow-1"),
        "{refused}"
    );
    let (status, refused) = post_admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": format!("file://{}", dir.path().join("b2").display())}),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        refused["error"]["code"], "operation_in_progress",
        "{refused}"
    );
}

/// A backup folder whose archive is a FIFO: a restore from it waits in `fetching` until the
/// test writes into the FIFO (then fails its checksum, changing nothing).
fn stalled_source(dir: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join("stalled.tar.gz");
    let st = Command::new("mkfifo").arg(&archive).status().unwrap();
    assert!(st.success());
    std::fs::write(
        dir.join("stalled.sha256"),
        format!("{}  stalled.tar.gz\n", "0".repeat(64)),
    )
    .unwrap();
    (archive.clone(), format!("file://{}", archive.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_running_restore_get_503_restore_in_progress_and_reads_continue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let s = start(&data).await;
    let c = common::admin_client();
    let (fifo, source) = stalled_source(&dir.path().join("stalled"));
    let (status, job) = admin(
        &c,
        &s,
        "/admin/restores",
        json!({"id": "slow", "source": source}),
    )
    .await;
    assert_eq!(status, 202, "{job}");

    let w = c
        .post(s.url("/api/documents"))
        .json(&json!({"title": "Late", "text": "Written during a restore."}))
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), 503);
    assert!(w.headers().get("retry-after").is_some(), "no Retry-After");
    let body: Value = w.json().await.unwrap();
    assert_eq!(body["error"]["code"], "restore_in_progress", "{body}");
    let any_id: String = sql(&data)
        .query_row("SELECT id FROM documents LIMIT 1", [], |r| r.get(0))
        .unwrap();
    let d = c
        .delete(s.url(&format!("/api/documents/{any_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 503);
    let list = c.get(s.url("/api/stats")).send().await.unwrap();
    assert_eq!(list.status(), 200, "reads continue during a restore");
    // the snapshot is refreshed when the restore starts; probes read the snapshot
    let mut detailed = Value::Null;
    for _ in 0..50 {
        detailed = common::get_json(&c, s.url("/health/detailed")).await;
        if detailed["components"]["restore"]["details"]["id"] == "slow" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        detailed["components"]["restore"]["details"]["running"], true,
        "{detailed}"
    );
    let (status, refused) = admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": format!("file://{}", dir.path().join("b").display())}),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slow")
    );

    // Let the download finish: garbage, so the restore fails before anything changed.
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        let _ = f.write_all(b"not an archive");
    })
    .join()
    .unwrap();
    let job = wait_restore(&c, &s.base, "slow").await;
    assert_eq!(job["phase"], "failed", "{job}");
    let w = c
        .post(s.url("/api/documents"))
        .json(&json!({"title": "Later", "text": "Written after the restore."}))
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), 200, "{}", w.text().await.unwrap());
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(stats["documents"], documents + 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_in_the_backup_and_come_back_on_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = start(&data).await;
    let c = common::admin_client();
    let bytes = b"# Wombats\n\nWombats dig the tunnels under the data centre.".to_vec();
    let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name("wombats.md");
    let r = c
        .post(s.url("/api/process/file"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let backup = backup_to_dir(&c, &s, &dir.path().join("backups")).await;
    s.stop().await;
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("backups")
                .join(format!("{}.manifest.json", backup["id"].as_str().unwrap())),
        )
        .unwrap(),
    )
    .unwrap();
    let entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().ends_with("/wombats.md"))
        .unwrap_or_else(|| panic!("no upload in the manifest: {manifest}"))
        .clone();
    assert!(entry["name"].as_str().unwrap().starts_with("uploads/"));
    use sha2::Digest;
    assert_eq!(entry["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));

    let fresh = dir.path().join("fresh");
    let s = start(&fresh).await;
    let (status, job) = admin(
        &c,
        &s,
        "/admin/restores",
        json!({"source": backup["location"]}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = wait_restore(&c, &s.base, job["id"].as_str().unwrap()).await;
    assert_eq!(job["phase"], "completed", "{job}");
    let restored = fresh.join(entry["name"].as_str().unwrap());
    let mut got = vec![];
    std::fs::File::open(&restored)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, bytes);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_another_model_or_a_newer_schema_is_refused_before_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let s = start(&data).await;
    let c = common::admin_client();
    let backups = dir.path().join("backups");
    let model = instant_db::config::Config::default().embedding.model;
    let latest = instant_db::store::schema::latest_version();
    for (id, extra, expect) in [
        (
            "other-model",
            json!({"model": "someone/other-model", "schema_version": latest}),
            "someone/other-model",
        ),
        (
            "newer-schema",
            json!({"model": model, "schema_version": latest + 1}),
            "schema",
        ),
    ] {
        let mut req = instant_db::backup::BackupRequest::new(
            data.join(DB),
            instant_db::backup::Location::parse(&backups.display().to_string()).unwrap(),
        );
        req.backup_id = Some(id.to_string());
        req.extra = extra;
        let report = instant_db::backup::create_backup(req, instant_db::backup::no_progress())
            .await
            .unwrap();
        let (status, job) = admin(
            &c,
            &s,
            "/admin/restores",
            json!({"source": report.location}),
        )
        .await;
        assert_eq!(status, 202, "{job}");
        let job = wait_restore(&c, &s.base, job["id"].as_str().unwrap()).await;
        assert_eq!(job["phase"], "failed", "{job}");
        let error = job["error"].as_str().unwrap();
        assert!(error.contains(expect), "{error}");
        let phases = job["phases"].to_string();
        assert!(!phases.contains("swapping"), "{job}");
    }
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(stats["documents"], documents);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_job_cut_mid_swap_by_a_restart_ends_rolled_back_with_the_previous_data_live() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let location = cli_backup(&data, &dir.path().join("backups"));
    {
        // the live data moves on after the backup: one document fewer
        let engine = Engine::open(test_config(&data), ModelLoading::Skip).unwrap();
        let id = engine.store.list_documents(0, 1).unwrap()[0].id.clone();
        engine.delete_document(&id).unwrap();
        engine.store.checkpoint().unwrap();
    }
    // A job swapping the backup in when the process died: files swapped, journal left.
    let verified = instant_db::backup::fetch_and_verify(
        &location,
        &data.join(".restore-staging-cut"),
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    let mut plan = instant_db::backup::SwapPlan::new(&data, &verified, &[DB]).unwrap();
    plan.save_previous().unwrap();
    plan.write_journal().unwrap();
    while plan.replace_next().unwrap() {}
    drop(plan);
    std::fs::create_dir_all(data.join("jobs")).unwrap();
    std::fs::write(
        data.join("jobs/restore-mid-swap.json"),
        serde_json::to_vec(&json!({
            "id": "mid-swap", "source": location, "phase": "swapping",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": null, "error": null,
            "document_count": null, "chunk_count": null, "backup_id": null, "phases": []
        }))
        .unwrap(),
    )
    .unwrap();

    let s = start(&data).await;
    let c = common::admin_client();
    let job = admin_get_json(&c, &s, "/admin/restores/mid-swap").await;
    assert_eq!(job["phase"], "rolled_back", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("interrupted"),
        "{job}"
    );
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(
        stats["documents"],
        documents - 1,
        "the previous data is live"
    );
    s.stop().await;
}

// ---- backup and verification records survive a restart (real binary) ----

async fn get_admin(c: &reqwest::Client, s: &Served, path: &str) -> (u16, Value) {
    let r = c.get(s.url(path)).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls a backup job until it and its verification (if any) have ended.
async fn wait_backup_verified(c: &reqwest::Client, s: &Served, id: &str) -> Value {
    for _ in 0..1200 {
        let (_, job) = get_admin(c, s, &format!("/admin/backups/{id}")).await;
        let verifying = ["pending", "running"]
            .contains(&job["verification"]["phase"].as_str().unwrap_or_default());
        if job["status"] != "running" && !verifying {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("backup {id} and its verification did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_backup_and_its_verification_answer_after_the_engine_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let documents = seed_demo(&data);
    let c = common::admin_client();
    let s = Served::start(&data);
    let to = format!("file://{}", dir.path().join("backups").display());
    let (status, job) = post_admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": to, "id": "kept-1"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let done = wait_backup_verified(&c, &s, "kept-1").await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["verification"]["phase"], "passed", "{done}");
    drop(s); // SIGKILL: nothing is flushed at exit, the record was already on the volume

    let s = Served::start(&data);
    let (status, after) = get_admin(&c, &s, "/admin/backups/kept-1").await;
    assert_eq!(status, 200, "{after}");
    for field in [
        "status",
        "location",
        "sha256",
        "size_bytes",
        "started_at",
        "finished_at",
    ] {
        assert_eq!(after[field], done[field], "{field}: {after}");
    }
    assert_eq!(after["document_count"], documents);
    assert_eq!(after["verification"]["phase"], "passed", "{after}");
    assert_eq!(
        after["verification"]["checks"],
        done["verification"]["checks"]
    );
    assert_eq!(
        after["verification"]["verified_at"],
        done["verification"]["verified_at"]
    );
    let (_, list) = get_admin(&c, &s, "/admin/backups").await;
    assert!(
        list.as_array().unwrap().iter().any(|j| j["id"] == "kept-1"),
        "{list}"
    );
    // the id stays taken: a completed backup is never overwritten by a second one
    let (status, again) = post_admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": to, "id": "kept-1"}),
    )
    .await;
    assert_eq!(status, 409, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_cut_by_a_kill_is_failed_after_the_restart_saying_it_was_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    seed_demo(&data);
    let (_listener, stuck) = silent_s3();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let c = common::admin_client();
    let s = Served::start_with(&data, &env);
    let (status, job) = post_admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": stuck, "id": "cut-1"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let (_, running) = get_admin(&c, &s, "/admin/backups/cut-1").await;
    assert_eq!(running["status"], "running", "{running}");
    drop(s); // SIGKILL mid-backup

    let s = Served::start_with(&data, &env);
    let (status, after) = get_admin(&c, &s, "/admin/backups/cut-1").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "failed", "{after}");
    assert!(after["finished_at"].is_string(), "{after}");
    let error = after["error"].as_str().unwrap();
    assert!(
        error.contains("interrupted by an engine restart") && error.contains("take a new backup"),
        "{error}"
    );
    // the fence is free and the failed id may be used again
    let to = format!("file://{}", dir.path().join("backups").display());
    let (status, retry) = post_admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": to, "id": "cut-1"}),
    )
    .await;
    assert_eq!(status, 202, "{retry}");
    let retried = wait_backup_verified(&c, &s, "cut-1").await;
    assert_eq!(retried["status"], "completed", "{retried}");
}
