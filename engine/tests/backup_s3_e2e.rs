//! The demo corpus backed up to a real S3-compatible server (moto) and restored through the
//! paths users take: the `instant-db` binary (locally and with `--server`) and the admin API.
//! Every document must come back whole, search must work, and the credentials carried in the
//! URLs must appear in no output, job record, report or log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TestServer;
use common::moto::start_moto;
use instant_db::engine::{Engine, ModelLoading};
use serde_json::{Value, json};

use common::{ADMIN_TOKEN as TOKEN, admin, admin_get_json, wait_backup};
const KEY_ID: &str = "AKIDE2EKEYID0001";
const SECRET: &str = "e2eSecretValueNeverShown42";
/// The credentials name the URLs carry (a Secret's name in Kubernetes).
const CREDS: &str = "e2e-store";

/// The credentials directory as the operator mounts it: `<name>.AWS_ACCESS_KEY_ID` and
/// `<name>.AWS_SECRET_ACCESS_KEY`.
fn credentials_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("credentials");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{CREDS}.AWS_ACCESS_KEY_ID")),
        format!("{KEY_ID}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{CREDS}.AWS_SECRET_ACCESS_KEY")),
        format!("{SECRET}\n"),
    )
    .unwrap();
    dir
}

/// Runs the binary with JSON output and info logs (so the logs are checked for secrets too).
fn run(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_instant-db"));
    cmd.env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir());
    cmd.args([
        "--log-level",
        "info",
        "--log-format",
        "json",
        "--format",
        "json",
    ])
    .arg("--data-dir")
    .arg(data)
    .args(args)
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env_remove("INSTANT_DB_ADMIN_TOKEN")
    .env_remove("INSTANT_DB_ADMIN_TOKEN_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Asserts success and no secret in stdout or stderr; returns stdout as JSON.
fn ok_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "secret leaked:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// (source, chunk count, content hash, all chunk texts in order) of every document.
fn documents(db: &Path) -> Vec<(String, i64, String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT d.source, d.chunk_count, d.content_hash,
                    coalesce((SELECT group_concat(text, char(10)) FROM
                        (SELECT text FROM chunks c WHERE c.document_id = d.id ORDER BY chunk_index)), '')
             FROM documents d ORDER BY d.source",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn embeddings(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM embeddings", [], |r| r.get(0))
        .unwrap()
}

async fn start_server(data: &Path, credentials: &Path) -> TestServer {
    let token = data.join("admin-token");
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(&token, TOKEN).unwrap();
    let mut cfg = common::config(data);
    cfg.admin_token_file = Some(token);
    cfg.backup.credentials_dir = credentials.to_path_buf();
    let engine = tokio::task::spawn_blocking(move || Engine::open(cfg, ModelLoading::Required))
        .await
        .unwrap()
        .unwrap();
    TestServer::start(engine).await
}

fn assert_no_restore_leftovers(data: &Path) {
    for e in std::fs::read_dir(data).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with("previous-")
                && !name.starts_with(".restore-staging-")
                && name != instant_db::backup::RESTORE_JOURNAL,
            "{name} left in {}",
            data.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_documents_survive_s3_backup_and_restore_through_the_cli_and_the_admin_api() {
    // The servers below (in this process) must find their credentials in the files only.
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_none(),
        "unset AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY to run this test: it proves the server needs no credentials in its environment"
    );
    let moto = start_moto().await;
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    // the admin token also opens /api/*
    let c = common::admin_client();
    let r = c.put(format!("{endpoint}/e2e")).send().await.unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    // Credentials by reference: the URL names them, the server reads its credentials files.
    let folder = |prefix: &str| {
        format!("s3://e2e/{prefix}?endpoint={endpoint}&allow_http=true&credentials={CREDS}")
    };
    let tmp = tempfile::tempdir().unwrap();
    let creds = credentials_dir(tmp.path());
    let a = tmp.path().join("a");
    let ad = a.clone();
    tokio::task::spawn_blocking(move || drop(common::engine_with_demo(&ad)))
        .await
        .unwrap();
    let original = documents(&a.join("instant-db.sqlite"));
    assert_eq!(original.len(), 13);
    assert!(original.iter().all(|d| d.1 > 0 && !d.3.is_empty()));

    // 1. CLI, no server: backup and restore with the credentials in AWS_*.
    let aws_env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ];
    let (a2, dest) = (
        a.clone(),
        format!("s3://e2e/cli?endpoint={endpoint}&allow_http=true"),
    );
    let out = tokio::task::spawn_blocking(move || {
        run(&a2, &["backup", "--to", &dest, "--id", "cli-1"], &aws_env)
    })
    .await
    .unwrap();
    let backup = ok_json(&out);
    assert_eq!(backup["documents"], 13, "{backup}");
    let location = backup["location"].as_str().unwrap().to_string();
    assert!(
        location.starts_with("s3://e2e/cli/cli-1.tar.gz?"),
        "{location}"
    );
    let b = tmp.path().join("b");
    let (b2, from) = (b.clone(), location.clone());
    let out =
        tokio::task::spawn_blocking(move || run(&b2, &["restore", "--from", &from], &aws_env))
            .await
            .unwrap();
    let restored = ok_json(&out);
    assert_eq!(restored["documents"], 13, "{restored}");
    assert_eq!(documents(&b.join("instant-db.sqlite")), original);
    assert_eq!(
        embeddings(&b.join("instant-db.sqlite")),
        embeddings(&a.join("instant-db.sqlite"))
    );
    assert_no_restore_leftovers(&b);

    // 2. Admin API: a server on the original data backs up; a fresh server restores.
    let sa = start_server(&a, &creds).await;
    // credentials in the URL are refused, and not echoed
    let (status, refused) = admin(
        &c,
        &sa,
        "/admin/backups",
        json!({"destination": format!("s3://e2e/api?endpoint={endpoint}&allow_http=true&access_key_id={KEY_ID}&secret_access_key={SECRET}")}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("credentials=NAME") && message.contains("AWS_ACCESS_KEY_ID"),
        "{message}"
    );
    assert!(
        !message.contains(SECRET) && !message.contains(KEY_ID),
        "{message}"
    );
    // named credentials without files: a clear (retryable) error naming the files
    let (status, missing) = admin(
        &c,
        &sa,
        "/admin/backups",
        json!({"destination": format!("s3://e2e/api?endpoint={endpoint}&allow_http=true&credentials=not-mounted")}),
    )
    .await;
    assert_eq!(status, 503, "{missing}");
    let message = missing["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("credentials not-mounted not found")
            && message.contains("not-mounted.AWS_SECRET_ACCESS_KEY"),
        "{message}"
    );
    let (status, job) = admin(
        &c,
        &sa,
        "/admin/backups",
        json!({"destination": folder("api"), "id": "api-1"}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    assert!(
        !job.to_string().contains(SECRET) && !job.to_string().contains(KEY_ID),
        "{job}"
    );
    let job = wait_backup(&c, &sa, "api-1").await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(
        !job.to_string().contains(SECRET) && !job.to_string().contains(KEY_ID),
        "{job}"
    );
    // the archive's location still names its credentials, so it restores as it is
    assert!(
        job["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("&credentials={CREDS}")),
        "{job}"
    );
    assert_eq!(job["document_count"], 13);
    let listing = admin_get_json(&c, &sa, "/admin/backups").await;
    assert!(!listing.to_string().contains(SECRET), "{listing}");

    // 3. CLI with --server: the same server backs up to S3 (following the job) ...
    let token_file = a.join("admin-token");
    let (base, dest, tf) = (sa.base.clone(), folder("remote"), token_file.clone());
    let scratch = tmp.path().join("unused");
    let s2 = scratch.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(
            &s2,
            &[
                "backup",
                "--server",
                &base,
                "--admin-token-file",
                tf.to_str().unwrap(),
                "--to",
                &dest,
                "--id",
                "remote-1",
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let remote_backup = ok_json(&out);
    assert_eq!(remote_backup["documents"], 13, "{remote_backup}");
    assert!(
        remote_backup["location"]
            .as_str()
            .unwrap()
            .starts_with("s3://e2e/remote/remote-1.tar.gz?"),
        "{remote_backup}"
    );
    assert!(
        !scratch.join("instant-db.sqlite").exists(),
        "--server opened no local data"
    );
    sa.stop().await;

    // ... and a fresh server restores one backup over the API, the other with the CLI.
    let cdir = tmp.path().join("c");
    let sc = start_server(&cdir, &creds).await;
    let (status, report) = admin(
        &c,
        &sc,
        "/admin/restore",
        json!({"source": job["location"]}),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert!(!report.to_string().contains(SECRET), "{report}");
    assert_eq!(report["documents"], 13);
    assert_eq!(report["backup_id"], "api-1");
    assert_eq!(documents(&cdir.join("instant-db.sqlite")), original);
    common::assert_demo_questions_answered(&c, &sc).await;
    assert_no_restore_leftovers(&cdir);

    let (base, from) = (
        sc.base.clone(),
        remote_backup["location"].as_str().unwrap().to_string(),
    );
    let s2 = scratch.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(
            &s2,
            &["restore", "--server", &base, "--from", &from],
            &[("INSTANT_DB_ADMIN_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    let report = ok_json(&out);
    assert_eq!(report["backup_id"], "remote-1", "{report}");
    assert_eq!(report["documents"], 13);
    assert_eq!(documents(&cdir.join("instant-db.sqlite")), original);
    common::assert_demo_questions_answered(&c, &sc).await;
    sc.stop().await;
    drop(moto);
}

/// An S3-compatible store with a certificate of a private CA (an in-house MinIO, say) is trusted
/// through `AWS_CA_BUNDLE`, the AWS CLI's and SDKs' variable, and refused without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_private_ca_is_trusted_through_aws_ca_bundle_and_refused_without() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = common::certs::Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"]).write(tmp.path());
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let moto = common::moto::start_moto_tls(&cert, &key).await;
    let endpoint = format!("https://localhost:{}", moto.port);
    let r = common::certs::client_trusting(&ca.pem)
        .put(format!("{endpoint}/private-ca"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let ca_file = ca_file.display().to_string();
    let env = [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_CA_BUNDLE", ca_file.as_str()),
    ];
    let a = tmp.path().join("a");
    let ad = a.clone();
    tokio::task::spawn_blocking(move || drop(common::engine_with_demo(&ad)))
        .await
        .unwrap();
    let dest = format!("s3://private-ca/tls?endpoint={endpoint}");
    let backup = ok_json(&run(&a, &["backup", "--to", &dest, "--id", "tls-1"], &env));
    assert_eq!(backup["documents"], 13, "{backup}");
    let location = backup["location"].as_str().unwrap().to_string();
    let restored = ok_json(&run(
        &tmp.path().join("b"),
        &["restore", "--from", &location],
        &env,
    ));
    assert_eq!(restored["documents"], 13, "{restored}");
    let out = run(&a, &["backup", "--to", &dest, "--id", "tls-2"], &env[..2]);
    assert!(
        !out.status.success(),
        "a store with a certificate of an untrusted CA was used"
    );
}
