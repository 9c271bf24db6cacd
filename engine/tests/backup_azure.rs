//! Backup to a real Azure Blob Storage-compatible server (Azurite, npm `azurite`) and restore,
//! through `az://` URLs with the account key read from a credentials file by name, as the
//! operator mounts it. The test fails (never skips) when Azurite is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod common;

use common::azurite::{ACCOUNT, ACCOUNT_KEY, start_azurite};
use instant_db::backup::{self, BackupRequest, Counts, Location, list_backups, swap_in};
use rusqlite::Connection;

const DB: &str = "instant-db.sqlite";

fn make_db(dir: &Path, docs: usize) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(DB);
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE documents(id INTEGER PRIMARY KEY, title TEXT NOT NULL);
         CREATE TABLE chunks(id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL, text TEXT NOT NULL);",
    )
    .unwrap();
    for i in 0..docs {
        c.execute(
            "INSERT INTO documents(title) VALUES (?1)",
            [format!("doc {i}")],
        )
        .unwrap();
        c.execute(
            "INSERT INTO chunks(document_id, text) VALUES (?1, ?2)",
            (c.last_insert_rowid(), format!("chunk of {i}")),
        )
        .unwrap();
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_to_azure_blob_storage_with_named_credentials_lists_and_restores() {
    let server = start_azurite().await;
    server.create_container("idb-backups").await;
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("azure.AZURE_STORAGE_ACCOUNT_KEY"),
        format!("{ACCOUNT_KEY}\n"),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = make_db(&tmp.path().join("data"), 120);
    let dest = Location::parse_with(&folder_url(&server), creds.path()).unwrap();

    let mut req = BackupRequest::new(&db, dest.clone());
    req.counts = Counts::Sql {
        documents: "SELECT count(*) FROM documents".into(),
        chunks: "SELECT count(*) FROM chunks".into(),
    };
    req.backup_id = Some("az-one".into());
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    assert_eq!(
        report.location,
        format!(
            "az://idb-backups/prod/az-one.tar.gz?account={ACCOUNT}&endpoint={}&allow_http=true&credentials=azure",
            server.endpoint()
        )
    );
    assert!(!report.location.contains(ACCOUNT_KEY));
    let listed = list_backups(&dest).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].complete && listed[0].id == "az-one");

    // The archive URL alone (and the credentials directory) brings the data back.
    let (folder, name) = Location::parse_object_with(&report.location, creds.path()).unwrap();
    let verified = backup::fetch_and_verify_from(
        folder,
        name,
        &tmp.path().join("staging"),
        backup::no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(verified.archive_sha256, report.sha256);
    let restored = tmp.path().join("restored");
    let guard = swap_in(&restored, &verified, &[DB]).unwrap();
    let docs: i64 = Connection::open(restored.join(DB))
        .unwrap()
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .unwrap();
    assert_eq!(docs, 120);
    guard.commit().unwrap();

    // A wrong key is refused by the store: an error, not an empty listing.
    std::fs::write(
        creds.path().join("azure.AZURE_STORAGE_ACCOUNT_KEY"),
        "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=",
    )
    .unwrap();
    let dest = Location::parse_with(&folder_url(&server), creds.path()).unwrap();
    let e = list_backups(&dest).await.unwrap_err().to_string();
    assert!(!e.contains("d3Jvbmcga2V5"), "{e}");
}

fn folder_url(server: &common::azurite::Azurite) -> String {
    format!(
        "az://idb-backups/prod?account={ACCOUNT}&endpoint={}&allow_http=true&credentials=azure",
        server.endpoint()
    )
}
