//! Repair rebuilds the derived data (full-text index, vector index) from the source tables:
//! damaged on purpose, repaired with `instant-db repair` (locally and `--server`) and
//! `POST /admin/repair`, then checked and searched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TestServer;
use instant_db::engine::{Engine, ModelLoading};
use serde_json::{Value, json};

use common::ADMIN_TOKEN as TOKEN;

fn run(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instant-db"));
    cmd.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir());
    cmd.args(["--log-level", "warn", "--format", "json", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("INSTANT_DB_ADMIN_TOKEN")
        .env_remove("INSTANT_DB_ADMIN_TOKEN_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Empties the full-text index behind the engine's back (a separate connection, as damage would).
fn delete_fts_rows(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = c.execute("DELETE FROM chunks_fts", []).unwrap();
    assert!(n > 0);
}

fn index_files(data: &Path) -> usize {
    std::fs::read_dir(data.join("index"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn top_source(r: &Value) -> String {
    r["hits"][0]["document"]["source"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn cli_repair_rebuilds_the_fts_and_the_vector_index_and_search_works_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let chunks = common::engine_with_demo(&data)
        .stats()
        .unwrap()
        .store
        .chunks;
    let db = data.join("instant-db.sqlite");
    delete_fts_rows(&db);
    std::fs::remove_dir_all(data.join("index")).unwrap();

    let out = run(&data, &["check"], &[]);
    assert_eq!(out.status.code(), Some(1), "the damage went unnoticed");
    let report = stdout_json(&out);
    assert!(
        report["problems"].to_string().contains("full-text"),
        "{report}"
    );
    let out = run(
        &data,
        &[
            "search",
            "What does the Pro plan cost?",
            "--mode",
            "keyword",
        ],
        &[],
    );
    assert!(stdout_json(&out)["hits"].as_array().unwrap().is_empty());

    let out = run(&data, &["repair"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout_json(&out);
    assert_eq!(report["integrity_ok"], true, "{report}");
    assert_eq!(report["fts_rows"], chunks, "{report}");
    assert_eq!(report["vectors"], chunks, "{report}");
    assert!(
        index_files(&data) > 0,
        "the vector index was not persisted again"
    );

    assert_eq!(run(&data, &["check"], &[]).status.code(), Some(0));
    for mode in ["keyword", "vector", "hybrid"] {
        let out = run(
            &data,
            &["search", "What does the Pro plan cost?", "--mode", mode],
            &[],
        );
        assert!(out.status.success(), "{mode}");
        assert!(
            top_source(&stdout_json(&out)).ends_with("pricing.csv"),
            "{mode}"
        );
    }
}

async fn admin(c: &reqwest::Client, s: &TestServer, path: &str) -> (u16, Value) {
    let r = c
        .post(s.url(path))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn search(c: &reqwest::Client, s: &TestServer, mode: &str) -> Value {
    c.post(s.url("/api/search"))
        .json(&json!({"query": "What caused the login outage in February?", "mode": mode}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_repair_and_cli_repair_with_server_rebuild_a_running_engine() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let d = data.clone();
    let tf = token_file.clone();
    let engine = tokio::task::spawn_blocking(move || {
        drop(common::engine_with_demo(&d));
        let mut cfg = common::config(&d);
        cfg.admin_token_file = Some(tf);
        Engine::open(cfg, ModelLoading::Required).unwrap()
    })
    .await
    .unwrap();
    let chunks = engine.stats().unwrap().store.chunks;
    let s = TestServer::start(engine).await;
    // the admin token also opens /api/search
    let c = common::admin_client();
    let db = data.join("instant-db.sqlite");

    for round in ["api", "cli"] {
        delete_fts_rows(&db);
        std::fs::remove_dir_all(data.join("index")).unwrap();
        let (_, check) = admin(&c, &s, "/admin/integrity").await;
        assert_eq!(check["ok"], false, "{round}: {check}");
        assert!(
            search(&c, &s, "keyword").await["hits"]
                .as_array()
                .unwrap()
                .is_empty()
        );

        let report = if round == "api" {
            let (status, report) = admin(&c, &s, "/admin/repair").await;
            assert_eq!(status, 200, "{report}");
            report
        } else {
            let (base, tf) = (s.base.clone(), token_file.clone());
            let scratch = dir.path().join("unused");
            let out = tokio::task::spawn_blocking(move || {
                run(
                    &scratch,
                    &["repair", "--server", &base],
                    &[("INSTANT_DB_ADMIN_TOKEN_FILE", tf.to_str().unwrap())],
                )
            })
            .await
            .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout_json(&out)
        };
        assert_eq!(report["integrity_ok"], true, "{round}: {report}");
        assert_eq!(report["fts_rows"], chunks, "{round}: {report}");
        assert_eq!(report["vectors"], chunks, "{round}: {report}");
        assert!(index_files(&data) > 0, "{round}: index not persisted");
        let (_, check) = admin(&c, &s, "/admin/integrity").await;
        assert_eq!(check["ok"], true, "{round}: {check}");
        for mode in ["keyword", "vector"] {
            let r = search(&c, &s, mode).await;
            assert!(
                top_source(&r).ends_with("incident-postmortem-2026-02-outage.md"),
                "{round} {mode}: {r}"
            );
        }
    }

    // without a token the CLI says how to give one (exit 2); with a wrong one the server refuses
    let base = s.base.clone();
    let scratch = dir.path().join("unused");
    let out = tokio::task::spawn_blocking(move || {
        let none = run(&scratch, &["repair", "--server", &base], &[]);
        let wrong = run(
            &scratch,
            &["repair", "--server", &base],
            &[("INSTANT_DB_ADMIN_TOKEN", "wrong-token-0123456789")],
        );
        (none, wrong)
    })
    .await
    .unwrap();
    assert_eq!(out.0.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.0.stderr).contains("INSTANT_DB_ADMIN_TOKEN"));
    assert_eq!(out.1.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.1.stderr).contains("admin token"));
    s.stop().await;
}
