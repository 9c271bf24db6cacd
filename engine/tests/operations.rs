//! Production behaviour over real HTTP with real SQLite files: health, metrics, admin auth,
//! backup during writes, corruption → failed integrity → restore, kill -9, SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;
use serde_json::{Value, json};

use common::moto::free_port;
use common::{admin, wait_backup};

use common::HOST_INDEPENDENT_CONFIG;

fn engine_with_token(data: &Path, with_demo: bool) -> instant_db::engine::Engine {
    let engine = instant_db::engine::Engine::open(
        common::admin_config(data),
        instant_db::engine::ModelLoading::Required,
    )
    .unwrap();
    if with_demo {
        let r = instant_db::ingest::ingest_paths(
            &engine,
            &[common::demo_corpus()],
            &common::demo_options(),
            &instant_db::ingest::NoProgress,
        )
        .unwrap();
        assert_eq!(r.failed, 0);
    }
    engine
}

async fn start(data: &Path, with_demo: bool) -> TestServer {
    let p = data.to_path_buf();
    let engine = tokio::task::spawn_blocking(move || engine_with_token(&p, with_demo))
        .await
        .unwrap();
    TestServer::start(engine).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_and_metrics_report_the_engine_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), true).await;
    let c = common::admin_client();
    for path in ["/health", "/health/live", "/health/ready"] {
        let r = c.get(s.url(path)).send().await.unwrap();
        let status = r.status();
        assert_eq!(status, 200, "{path}: {}", r.text().await.unwrap());
    }
    let d: Value = common::get_json(&c, s.url("/health/detailed")).await;
    for comp in [
        "database",
        "vector_index",
        "embedding_model",
        "integrity",
        "system",
        "circuit_breakers",
    ] {
        assert!(
            d["components"][comp]["status"].is_string(),
            "{comp} missing: {d}"
        );
        assert!(d["components"][comp]["response_time_ms"].is_number());
    }
    assert_eq!(d["document_count"], 13);
    assert_eq!(
        d["components"]["circuit_breakers"]["details"]["object_storage"], "closed",
        "{d}"
    );
    c.post(s.url("/api/search"))
        .json(&json!({"query": "password"}))
        .send()
        .await
        .unwrap();
    let m = common::get_text(&c, s.url("/metrics")).await;
    for name in [
        "instantdb_http_requests_total{method=\"POST\",route=\"/api/search\",status=\"200\"}",
        "instantdb_http_request_duration_seconds_bucket",
        "instantdb_search_duration_seconds_bucket{mode=\"hybrid\"",
        "instantdb_ingest_documents_total",
        "instantdb_embedded_texts_total",
        "instantdb_documents 13",
        "instantdb_circuit_breaker_state{dependency=\"embedding\"}",
        "instantdb_circuit_breaker_state{dependency=\"object_storage\"} 0",
        "process_resident_memory_bytes",
        "instantdb_http_request_duration_seconds_count{method=\"POST\",route=\"/api/search\",status=\"200\"} 1",
        // the quick check at start has run, before the engine answered ready
        "instantdb_integrity_ok 1",
    ] {
        assert!(m.contains(name), "metrics lack {name}");
    }
    assert!(
        !m.contains("instantdb_integrity_last_check_timestamp_seconds 0"),
        "the startup check is not recorded: {m}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), false).await;
    let c = reqwest::Client::new();
    let none = c.post(s.url("/admin/integrity")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = c
        .post(s.url("/admin/integrity"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let (ok, report) = admin(&c, &s, "/admin/integrity", json!({})).await;
    assert_eq!(ok, 200);
    assert_eq!(report["ok"], true);
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert!(m.contains("instantdb_integrity_ok 1"), "{m}");
    assert!(!m.contains("instantdb_integrity_last_check_timestamp_seconds 0"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_restores_to_a_consistent_state() {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("a"), true).await;
    let c = common::admin_client();
    // One writer adds notes one after the other until told to stop; `written` counts the
    // acknowledged ones. The backup starts once some are in and the writer stops only after
    // more were acknowledged after the backup completed, so the snapshot is taken while
    // writes go on, whatever the speed of the machine.
    let (written_tx, mut written) = tokio::sync::watch::channel(0usize);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, url, stop) = (c.clone(), s.url("/api/documents"), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = c.post(&url).json(&json!({"name": format!("note-{i:04}"), "text": format!("Concurrent note number {i} about llamas.")})).send().await.unwrap();
                assert_eq!(r.status(), 200);
                i += 1;
                written_tx.send_replace(i);
            }
            i
        })
    };
    written.wait_for(|n| *n >= 5).await.unwrap();
    let (status, job) = admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": backups.path()}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let job = wait_backup(&c, &s, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    let at_completion = *written.borrow();
    written.wait_for(|n| *n >= at_completion + 3).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let total_notes = writer.await.unwrap();
    let in_backup = job["document_count"].as_u64().unwrap() as usize;
    // writes before the snapshot are in it, writes after it are not
    assert!(in_backup >= 13 + 5, "{job}");
    assert!(
        in_backup < 13 + total_notes,
        "{job} (writer wrote {total_notes})"
    );
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            backups
                .path()
                .join(format!("{}.manifest.json", job["id"].as_str().unwrap())),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["document_count"], job["document_count"]);
    s.stop().await;

    // Restore into a fresh engine: exactly the documents the manifest counted, all intact.
    let data_b = dir.path().join("b");
    let s2 = start(&data_b, false).await;
    let (status, report) = admin(
        &c,
        &s2,
        "/admin/restore",
        json!({"source": job["location"]}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["documents"], manifest["document_count"]);
    assert_eq!(report["chunks"], manifest["chunk_count"]);
    let (_, integrity) = admin(&c, &s2, "/admin/integrity", json!({})).await;
    assert_eq!(integrity["ok"], true, "{integrity}");
    {
        let conn = rusqlite::Connection::open(data_b.join("instant-db.sqlite")).unwrap();
        let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            q(
                "SELECT count(*) FROM documents d WHERE d.chunk_count = 0 OR d.chunk_count != (SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
            ),
            0,
            "a restored document is incomplete"
        );
        assert_eq!(
            q(
                "SELECT count(*) FROM chunks c LEFT JOIN embeddings e ON e.chunk_id = c.id WHERE e.chunk_id IS NULL"
            ),
            0,
            "a restored chunk has no embedding"
        );
        // the writer was sequential, so the snapshot holds exactly its first notes
        let notes: Vec<String> = conn
            .prepare("SELECT source FROM documents WHERE source LIKE 'api:note-%' ORDER BY source")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(notes.len(), in_backup - 13);
        for (i, source) in notes.iter().enumerate() {
            assert!(source.ends_with(&format!("note-{i:04}")), "{source} at {i}");
        }
    }
    let r: Value = c
        .post(s2.url("/api/search"))
        .json(&json!({"query": "How do I reset my password?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        r["hits"][0]["document"]["source"]
            .as_str()
            .unwrap()
            .ends_with("faq.md")
    );
    s2.stop().await;
}

/// Overwrites bytes in the middle of the database file, where the tables' pages are.
fn damage(db: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(db).unwrap().len();
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    for offset in [len / 3, len / 2, 2 * len / 3] {
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&[0xA5; 512]).unwrap();
    }
    f.sync_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_fail_integrity_and_readiness_until_a_restore_brings_everything_back() {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = start(&data, true).await;
    let c = common::admin_client();
    let (_, job) = admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": format!("file://{}", backups.path().display())}),
    )
    .await;
    let job = wait_backup(&c, &s, job["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    // Fold the WAL into the file so the damage lands on pages SQLite will read.
    let (_, _) = admin(&c, &s, "/admin/integrity", json!({})).await;
    {
        let db = data.join("instant-db.sqlite");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        drop(conn);
        damage(&db);
    }
    let (_, report) = admin(&c, &s, "/admin/integrity", json!({})).await;
    assert_eq!(report["ok"], false, "damage went unnoticed: {report}");
    let ready = c.get(s.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(body["reasons"].to_string().contains("integrity"), "{body}");
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert!(
        m.contains("instantdb_integrity_ok 0"),
        "integrity gauge not updated"
    );

    let (status, restored) =
        admin(&c, &s, "/admin/restore", json!({"source": job["location"]})).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["documents"], 13);
    let m = common::get_text(&c, s.url("/metrics")).await;
    assert!(
        m.contains("instantdb_restore_duration_seconds_count 1")
            && m.contains("instantdb_restore_total{result=\"success\"} 1"),
        "restore not measured"
    );
    assert_eq!(
        c.get(s.url("/health/ready")).send().await.unwrap().status(),
        200
    );
    common::assert_demo_questions_answered(&c, &s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_backup_is_refused_and_nothing_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("data"), true).await;
    let c = common::admin_client();
    let (_, job) = admin(
        &c,
        &s,
        "/admin/backups",
        json!({"destination": backups.path()}),
    )
    .await;
    let job = wait_backup(&c, &s, job["id"].as_str().unwrap()).await;
    let archive = job["location"]
        .as_str()
        .unwrap()
        .trim_start_matches("file://")
        .to_string();
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&archive, bytes).unwrap();
    c.post(s.url("/api/documents"))
        .json(&json!({"name": "after", "text": "Written after the backup."}))
        .send()
        .await
        .unwrap();
    let (status, err) = admin(&c, &s, "/admin/restore", json!({"source": job["location"]})).await;
    assert!(status >= 400, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("sha256")
            || err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("checksum"),
        "{err}"
    );
    let stats: Value = common::get_json(&c, s.url("/api/stats")).await;
    assert_eq!(
        stats["documents"], 14,
        "the failed restore touched the data"
    );
    s.stop().await;
}

#[test]
fn kill_9_during_ingest_loses_no_acknowledged_document_and_leaves_none_torn() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let corpus = tempfile::tempdir().unwrap();
    // Several sections per document, so each is written as several chunks, embeddings and FTS
    // rows: a kill in the middle of a document write could tear it.
    for i in 0..400 {
        let mut text = format!("# Note {i}\n\n");
        for part in 0..4 {
            text.push_str(&format!(
                "## Part {part}\n\nThis is part {part} of note number {i} about topic {}. \
                 It carries the marker token{i:04}x{part} so each part is its own chunk.\n\n",
                i % 7
            ));
        }
        std::fs::write(corpus.path().join(format!("doc-{i:04}.md")), text).unwrap();
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
        .args([
            "--log-format",
            "json",
            "--log-level",
            "instant_db=debug",
            "ingest",
        ])
        .arg(corpus.path())
        .env("INSTANT_DB_DATA_DIR", data.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut acknowledged = vec![];
    for line in stderr.lines() {
        let line = line.unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["fields"]["message"] == "file ingested" {
            acknowledged.push(v["fields"]["source"].as_str().unwrap().to_string());
            if acknowledged.len() == 30 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(
        acknowledged.len(),
        30,
        "the ingest finished before it could be killed"
    );
    {
        let conn = rusqlite::Connection::open(data.path().join("instant-db.sqlite")).unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        for source in &acknowledged {
            let chunks: i64 = conn
                .query_row("SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source = ?1", [source], |r| r.get(0))
                .unwrap();
            assert!(
                chunks >= 4,
                "{source} was acknowledged but has {chunks} chunks after kill -9"
            );
        }
        // Every stored document is whole: all its chunks, each with its embedding and FTS row.
        let torn: i64 = conn
            .query_row("SELECT count(*) FROM documents d WHERE chunk_count < 4 OR chunk_count != (SELECT count(*) FROM chunks WHERE document_id = d.id)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(torn, 0);
        let (chunks, embeddings, fts): (i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM chunks), (SELECT count(*) FROM embeddings),
                        (SELECT count(*) FROM chunks_fts)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((embeddings, fts), (chunks, chunks));
    }
    // A restarted engine rebuilds its vector index from what the database holds.
    let engine = instant_db::engine::Engine::open(
        common::config(data.path()),
        instant_db::engine::ModelLoading::Required,
    )
    .unwrap();
    let stats = engine.stats().unwrap();
    assert_eq!(stats.index.vectors as i64, stats.store.embeddings);
    let report = engine.store.integrity_check().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    let last = acknowledged.last().unwrap();
    let (id, _) = engine.store.hash_of_source(last).unwrap().unwrap();
    let chunk_count = engine.store.get_document(&id).unwrap().chunk_count;
    let found = engine
        .search(&instant_db::search::SearchRequest {
            query: "part 3 of the note".into(),
            mode: instant_db::search::Mode::Vector,
            filter: Some(serde_json::from_value(json!({ "source": last })).unwrap()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        found.hits.len() as i64,
        chunk_count,
        "{last} is missing from the rebuilt vector index"
    );
}

/// Starts the real binary's `serve` on a free port and waits until it accepts connections.
fn spawn_server(
    data: &Path,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> (std::process::Child, u16) {
    let port = free_port();
    std::fs::create_dir_all(data).unwrap();
    let config = data.join("test-config.yaml");
    std::fs::write(&config, HOST_INDEPENDENT_CONFIG).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_instant-db"));
    cmd.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir());
    cmd.arg("--config")
        .arg(&config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("INSTANT_DB_DATA_DIR", data)
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    common::wait_listening(&mut child, port);
    (child, port)
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to end; the bound only keeps a broken shutdown from hanging the suite.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..1200 {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the server did not stop after SIGTERM");
}

fn wal_len(data: &Path) -> u64 {
    std::fs::metadata(data.join("instant-db.sqlite-wal")).map_or(0, |m| m.len())
}

#[test]
fn sigterm_flushes_the_last_log_line_to_the_log_file() {
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("logs/engine.log");
    let (mut child, _) = spawn_server(
        data.path(),
        &[
            ("INSTANT_DB_LOG_FILE", log.to_str().unwrap()),
            ("INSTANT_DB_LOG_FORMAT", "json"),
        ],
        std::process::Stdio::null(),
    );
    sigterm(&child);
    let code = wait_exit(&mut child);
    assert!(code.success(), "exit status {code:?}");
    // The file rotates daily: `engine.log.YYYY-MM-DD`.
    let mut text = String::new();
    for entry in std::fs::read_dir(data.path().join("logs")).unwrap() {
        text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let last: Value = serde_json::from_str(text.lines().last().expect("empty log file")).unwrap();
    assert_eq!(last["fields"]["message"], "stopped cleanly", "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_http_ingest_keeps_acknowledged_documents_checkpoints_and_exits_zero() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    // A short grace period so the ingest below is still running when it ends.
    let (mut child, port) = spawn_server(
        data.path(),
        &[
            ("INSTANT_DB_LOG_FORMAT", "json"),
            ("INSTANT_DB_LOG_LEVEL", "info,instant_db=debug"),
            ("INSTANT_DB_SHUTDOWN_GRACE_PERIOD_SECS", "1"),
        ],
        std::process::Stdio::piped(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let docs: Vec<Value> = (0..1500)
        .map(|i| json!({"name": format!("note-{i:04}"), "text": format!("Note {i}. The walrus committee meets on day {} to discuss topic {}.", i % 28, i % 13)}))
        .collect();
    let request = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/documents"))
            .json(&json!({ "documents": docs }))
            .timeout(Duration::from_secs(300))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok::<_, reqwest::Error>((status, r.json::<Value>().await?))
    });
    let mut acknowledged = vec![];
    let mut abandoned = false;
    let mut terminated = false;
    for v in rx.iter() {
        match v["fields"]["message"].as_str() {
            Some("file ingested") => {
                acknowledged.push(v["fields"]["source"].as_str().unwrap().to_string());
                if !terminated {
                    sigterm(&child);
                    terminated = true;
                }
            }
            Some("grace period over: abandoning the requests still in flight") => abandoned = true,
            _ => {}
        }
    }
    let code = wait_exit(&mut child);
    eprintln!(
        "acknowledged {} documents; abandoned: {abandoned}",
        acknowledged.len()
    );
    assert!(
        terminated,
        "no document was acknowledged before the server stopped"
    );
    assert!(code.success(), "exit status {code:?}");
    assert_eq!(wal_len(data.path()), 0, "WAL not checkpointed");

    let conn = rusqlite::Connection::open(data.path().join("instant-db.sqlite")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .unwrap();
    assert!(stored > 0, "nothing was written before the shutdown");
    for source in &acknowledged {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM documents WHERE source = ?1",
                [source],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{source} was acknowledged but is missing");
    }
    let torn: i64 = conn
        .query_row("SELECT count(*) FROM documents d WHERE chunk_count != (SELECT count(*) FROM chunks WHERE document_id = d.id)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(torn, 0, "a document was stored by half");
    match request.await.unwrap() {
        // Finished within the grace period: all of it is there.
        Ok((200, report)) if report["stopped"].is_null() => {
            assert!(!abandoned, "{report}");
            assert_eq!(report["added"], 1500, "{report}");
            assert_eq!(stored, 1500);
        }
        // Stopped at the end of the grace period with its answer still sent (the work sees the
        // cancellation before the connection closes): a 200 that says it stopped, and every
        // document it reports as added is stored.
        Ok((200, report)) => {
            assert!(abandoned, "{report}");
            let msg = report["stopped"].as_str().unwrap();
            assert!(msg.contains("shutting down"), "{msg}");
            let added: Vec<&str> = report["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["outcome"] == "added")
                .map(|f| f["source"].as_str().unwrap())
                .collect();
            assert_eq!(
                added.len() as i64,
                report["added"].as_i64().unwrap(),
                "{report}"
            );
            assert!(
                (added.len() as i64) < 1500 && added.len() as i64 <= stored,
                "{report}"
            );
            for source in added {
                let n: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM documents WHERE source = ?1",
                        [source],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(n, 1, "{source} was reported added but is missing");
            }
        }
        // Abandoned: the connection closed or the ingest was refused; only what was
        // acknowledged is promised, and it was checked above.
        Ok((status, body)) => assert!(abandoned, "{status} {body}"),
        Err(e) => assert!(abandoned, "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_can_come_from_the_environment_loses_to_the_file_and_is_never_logged() {
    let data = tempfile::tempdir().unwrap();
    let env_token = "env-admin-token-5f1c9e2a7b";
    let file_token = "file-admin-token-03d8a6c4e1";
    let token_file = data.path().join("admin-token");
    std::fs::write(&token_file, file_token).unwrap();
    let c = reqwest::Client::new();
    let status = |port: u16, token: &'static str| {
        let c = c.clone();
        async move {
            c.post(format!("http://127.0.0.1:{port}/admin/integrity"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let stderr_of = |name: &str| {
        let path = data.path().join(name);
        (
            std::process::Stdio::from(std::fs::File::create(&path).unwrap()),
            path,
        )
    };

    let (out, env_log) = stderr_of("env-only.log");
    let (mut child, port) = spawn_server(
        &data.path().join("a"),
        &[
            ("INSTANT_DB_ADMIN_TOKEN", env_token),
            ("INSTANT_DB_LOG_LEVEL", "debug"),
        ],
        out,
    );
    assert_eq!(status(port, env_token).await, 200);
    assert_eq!(status(port, "not-the-token-at-all").await, 401);
    sigterm(&child);
    assert!(wait_exit(&mut child).success());

    let (out, both_log) = stderr_of("both.log");
    let (mut child, port) = spawn_server(
        &data.path().join("b"),
        &[
            ("INSTANT_DB_ADMIN_TOKEN", env_token),
            ("INSTANT_DB_ADMIN_TOKEN_FILE", token_file.to_str().unwrap()),
            ("INSTANT_DB_LOG_LEVEL", "debug"),
        ],
        out,
    );
    assert_eq!(status(port, file_token).await, 200);
    assert_eq!(status(port, env_token).await, 401);
    sigterm(&child);
    assert!(wait_exit(&mut child).success());

    for log in [env_log, both_log] {
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("admin API enabled"), "{text}");
        assert!(
            !text.contains(env_token) && !text.contains(file_token),
            "a token was logged: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_load_leaves_the_server_up_degraded_with_keyword_search() {
    let data = tempfile::tempdir().unwrap();
    let model_dir = tempfile::tempdir().unwrap();
    std::fs::write(model_dir.path().join("model.onnx"), b"not an onnx model").unwrap();
    std::fs::write(
        model_dir.path().join("tokenizer.json"),
        b"{\"broken\": true",
    )
    .unwrap();
    let (mut child, port) = spawn_server(
        data.path(),
        &[("INSTANT_DB_MODEL_DIR", model_dir.path().to_str().unwrap())],
        std::process::Stdio::null(),
    );
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let c = reqwest::Client::new();

    let r = c.get(url("/health")).send().await.unwrap();
    let status = r.status();
    let h: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "degraded still serves: {h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["reasons"].to_string().contains("embedding model"), "{h}");
    let d: Value = common::get_json(&c, url("/health/detailed")).await;
    assert_eq!(
        d["components"]["embedding_model"]["status"], "degraded",
        "{d}"
    );
    assert!(d["components"]["embedding_model"]["details"]["error"].is_string());
    assert_eq!(
        c.get(url("/health/ready")).send().await.unwrap().status(),
        200
    );

    let r = c
        .post(url("/api/documents"))
        .json(&json!({"name": "walrus", "text": "Walruses hold their meetings on ice floes."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert!(report["degraded"].is_string(), "{report}");

    let search = |mode: &'static str| {
        let c = c.clone();
        let u = url("/api/search");
        async move {
            let r = c
                .post(u)
                .json(&json!({"query": "walrus meetings", "mode": mode}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, keyword) = search("keyword").await;
    assert_eq!(status, 200, "{keyword}");
    assert_eq!(keyword["hits"].as_array().unwrap().len(), 1, "{keyword}");
    let (status, hybrid) = search("hybrid").await;
    assert_eq!(status, 200, "{hybrid}");
    assert_eq!(hybrid["hits"].as_array().unwrap().len(), 1, "{hybrid}");
    assert!(
        hybrid["degraded"]
            .as_str()
            .unwrap()
            .contains("keyword-only"),
        "{hybrid}"
    );
    let (status, vector) = search("vector").await;
    assert_eq!(status, 503, "{vector}");
    assert_eq!(vector["error"]["code"], "model_unavailable", "{vector}");
    assert!(!vector["error"]["message"].as_str().unwrap().is_empty());

    assert!(child.try_wait().unwrap().is_none(), "the server crashed");
    assert_eq!(
        c.get(url("/health/live")).send().await.unwrap().status(),
        200
    );
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
}

/// The level file (`logging.level_file`, the operator's ConfigMap key `log-level`) changes the
/// level of a running engine: no restart, and a level that does not parse keeps the current one.
#[test]
fn the_log_level_follows_the_level_file_without_a_restart() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let level_file = data.path().join("log-level");
    std::fs::write(&level_file, "warn\n").unwrap();
    let (mut child, _) = spawn_server(
        data.path(),
        &[
            ("INSTANT_DB_LOG_FORMAT", "json"),
            ("INSTANT_DB_LOG_LEVEL", "debug"),
            ("INSTANT_DB_LOG_LEVEL_FILE", level_file.to_str().unwrap()),
        ],
        std::process::Stdio::piped(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    // Waits for a line matching `want`; returns the lines seen before it.
    let wait_for = |want: &dyn Fn(&Value) -> bool, what: &str| -> Vec<Value> {
        let mut seen = vec![];
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(v) = rx.recv_timeout(Duration::from_millis(200)) {
                if want(&v) {
                    return seen;
                }
                seen.push(v);
            }
        }
        panic!("no log line {what} within 30 s; saw {seen:?}");
    };
    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or("").to_string();
    // The file's level wins over INSTANT_DB_LOG_LEVEL: started at warn, so no INFO line yet.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&level_file, "chatty\n").unwrap();
    let before = wait_for(
        &|v| message(v).contains("does not parse"),
        "refusing the level `chatty`",
    );
    assert!(
        before
            .iter()
            .all(|v| v["level"] != "INFO" && v["level"] != "DEBUG"),
        "{before:?}"
    );
    std::fs::write(&level_file, "info\n").unwrap();
    wait_for(
        &|v| message(v) == "log level changed" && v["fields"]["to"] == "info",
        "saying the level changed to info",
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the engine restarted or stopped"
    );
    sigterm(&child);
    wait_for(
        &|v| message(v) == "stopped cleanly",
        "`stopped cleanly` at INFO",
    );
    assert!(wait_exit(&mut child).success());
}
