//! Backup to a directory and restore, with a real SQLite database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use instant_db::backup::{
    self, BackupError, BackupProgress, BackupRequest, Counts, Location, Phase, ProgressSink,
    fetch_and_verify, list_backups, swap_in,
};
use rusqlite::Connection;

const DB: &str = "instant-db.sqlite";
const INDEX: &str = "index/vectors.bin";

fn counts_sql() -> Counts {
    Counts::Sql {
        documents: "SELECT count(*) FROM documents".into(),
        chunks: "SELECT count(*) FROM chunks".into(),
    }
}

/// A real database in WAL mode: each document has two chunks, inserted in one transaction.
fn make_db(dir: &Path, docs: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join("index")).unwrap();
    let path = dir.join(DB);
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE documents(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL);
         CREATE TABLE chunks(id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL REFERENCES documents(id), text TEXT NOT NULL);",
    )
    .unwrap();
    insert_docs(&c, docs);
    std::fs::write(dir.join(INDEX), b"vector index v1 ".repeat(1000)).unwrap();
    path
}

fn insert_docs(c: &Connection, n: usize) {
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..n {
        insert_one(&tx, i as u64);
    }
    tx.commit().unwrap();
}

fn insert_one(c: &Connection, i: u64) {
    let body = format!("document body {i} ").repeat(10);
    c.execute(
        "INSERT INTO documents(title, body) VALUES (?1, ?2)",
        (format!("doc {i}"), &body),
    )
    .unwrap();
    let id = c.last_insert_rowid();
    for k in 0..2 {
        c.execute(
            "INSERT INTO chunks(document_id, text) VALUES (?1, ?2)",
            (id, format!("chunk {k} of {i}")),
        )
        .unwrap();
    }
}

fn count(path: &Path, table: &str) -> i64 {
    let c = Connection::open(path).unwrap();
    c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn integrity(path: &Path) -> String {
    let c = Connection::open(path).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn recording_sink() -> (ProgressSink, Arc<std::sync::Mutex<Vec<BackupProgress>>>) {
    let log: Arc<std::sync::Mutex<Vec<BackupProgress>>> = Arc::default();
    let l2 = log.clone();
    (Arc::new(move |p| l2.lock().unwrap().push(p)), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_directory_then_restore_list_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = make_db(&data, 500);
    let dest_dir = tmp.path().join("backups");
    let dest = Location::parse(dest_dir.to_str().unwrap()).unwrap();

    let mut req = BackupRequest::new(&db, dest.clone());
    req.extra_files = vec![(INDEX.to_string(), data.join(INDEX))];
    req.counts = counts_sql();
    req.backup_id = Some("first".into());
    req.extra = serde_json::json!({"dimensions": 384});
    let (sink, log) = recording_sink();
    let report = backup::create_backup(req, sink).await.unwrap();

    assert_eq!(report.id, "first");
    let archive = dest_dir.join("first.tar.gz");
    assert_eq!(report.location, format!("file://{}", archive.display()));
    assert_eq!(
        report.size_bytes,
        std::fs::metadata(&archive).unwrap().len()
    );
    let sidecar = std::fs::read_to_string(dest_dir.join("first.sha256")).unwrap();
    assert_eq!(sidecar, format!("{}  first.tar.gz\n", report.sha256));
    assert!(!dest_dir.join("first.tar.gz.partial").exists());
    let m = &report.manifest;
    assert_eq!(
        (m.format_version, m.document_count, m.chunk_count),
        (1, 500, 1000)
    );
    assert_eq!(m.database, DB);
    assert_eq!(
        m.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        vec![DB, INDEX]
    );
    assert_eq!(m.extra["dimensions"], 384);
    let phases: Vec<Phase> = log.lock().unwrap().iter().map(|p| p.phase).collect();
    for ph in [Phase::Snapshot, Phase::Archive, Phase::Upload, Phase::Done] {
        assert!(phases.contains(&ph), "missing {ph:?} in {phases:?}");
    }
    assert_eq!(backup::read_manifest(&dest, "first").await.unwrap(), *m);

    let listed = list_backups(&dest).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].complete);
    assert_eq!(listed[0].url, report.location);

    // the live data changes after the backup
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("DELETE FROM chunks; DELETE FROM documents;")
            .unwrap();
        insert_docs(&c, 3);
    }
    std::fs::write(data.join(INDEX), b"changed").unwrap();

    // restore: verify everything first, then swap
    let staging = tmp.path().join("staging");
    let verified = fetch_and_verify(&report.location, &staging, backup::no_progress())
        .await
        .unwrap();
    assert_eq!(verified.manifest, *m);
    assert_eq!(verified.archive_sha256, report.sha256);
    assert_eq!(
        count(&db, "documents"),
        3,
        "nothing is touched before swap_in"
    );
    let guard = swap_in(&data, &verified, &[DB, INDEX]).unwrap();
    let previous = guard.previous_dir().to_path_buf();
    assert!(previous.join(DB).exists());
    assert_eq!(integrity(&db), "ok");
    assert_eq!(count(&db, "documents"), 500);
    assert_eq!(count(&db, "chunks"), 1000);
    assert_eq!(
        std::fs::read(data.join(INDEX)).unwrap(),
        b"vector index v1 ".repeat(1000)
    );
    guard.commit().unwrap();
    assert!(!previous.exists());

    // retention
    backup::delete_backup(&dest, "first").await.unwrap();
    assert!(list_backups(&dest).await.unwrap().is_empty());
    assert!(matches!(
        backup::delete_backup(&dest, "first").await,
        Err(BackupError::NotFound(_))
    ));
    assert!(matches!(
        backup::delete_backup(&dest, "../etc").await,
        Err(BackupError::InvalidId(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_brings_previous_data_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = make_db(&data, 10);
    let dest = Location::parse(&format!("file://{}", tmp.path().join("b").display())).unwrap();
    let mut req = BackupRequest::new(&db, dest.clone());
    req.counts = counts_sql();
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    {
        let c = Connection::open(&db).unwrap();
        insert_docs(&c, 5);
    }
    let verified = fetch_and_verify(
        &report.location,
        &tmp.path().join("st"),
        backup::no_progress(),
    )
    .await
    .unwrap();
    let guard = swap_in(&data, &verified, &[DB]).unwrap();
    assert_eq!(count(&db, "documents"), 10);
    guard.rollback().unwrap();
    assert_eq!(count(&db, "documents"), 15);
    assert_eq!(integrity(&db), "ok");
    // unknown file names are refused before anything moves
    assert!(matches!(
        swap_in(&data, &verified, &["nope.bin"]),
        Err(BackupError::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_archive_is_rejected_and_nothing_is_swapped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = make_db(&data, 200);
    let dest_dir = tmp.path().join("backups");
    let dest = Location::parse(dest_dir.to_str().unwrap()).unwrap();
    let mut req = BackupRequest::new(&db, dest);
    req.extra_files = vec![(INDEX.to_string(), data.join(INDEX))];
    req.backup_id = Some("b1".into());
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    let archive = dest_dir.join("b1.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();
    let before = std::fs::read(&db).unwrap();

    let staging = tmp.path().join("staging");
    let err = fetch_and_verify(&report.location, &staging, backup::no_progress())
        .await
        .unwrap_err();
    match &err {
        BackupError::Checksum {
            file,
            expected,
            actual,
        } => {
            assert_eq!(file, "b1.tar.gz");
            assert_eq!(*expected, report.sha256);
            assert_ne!(expected, actual);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
    assert!(!staging.exists(), "staging dir must be removed");
    assert_eq!(std::fs::read(&db).unwrap(), before, "live data untouched");
    assert!(!std::fs::read_dir(&data).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("previous-")
    }));

    assert!(!staging.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_without_its_sha256_sidecar_is_refused_as_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let db = make_db(&data, 20);
    let dest_dir = tmp.path().join("backups");
    let dest = Location::parse(dest_dir.to_str().unwrap()).unwrap();
    let mut req = BackupRequest::new(&db, dest);
    req.backup_id = Some("half".into());
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    // an intact archive and manifest, as an interrupted backup leaves them
    std::fs::remove_file(dest_dir.join("half.sha256")).unwrap();
    let staging = tmp.path().join("staging");
    let err = fetch_and_verify(&report.location, &staging, backup::no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Incomplete(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("incomplete") && msg.contains("complete backup"),
        "{msg}"
    );
    assert!(
        !staging.exists(),
        "nothing is downloaded for an incomplete backup"
    );
    // a missing archive is still "not found", not "incomplete"
    let err = fetch_and_verify(
        &report.location.replace("half", "none"),
        &staging,
        backup::no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::NotFound(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_concurrent_writes_is_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // ~3 MB so the snapshot takes many backup steps
    let db = make_db(&data, 6000);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let db = db.clone();
        let stop = stop.clone();
        let written = written.clone();
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut i = 1_000_000u64;
            while !stop.load(Ordering::SeqCst) {
                let tx = c.unchecked_transaction().unwrap();
                insert_one(&tx, i);
                tx.commit().unwrap();
                written.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    // let the writer get going
    while written.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let start_count = count(&db, "documents");
    let written_before = written.load(Ordering::SeqCst);
    let dest = Location::parse(tmp.path().join("b").to_str().unwrap()).unwrap();
    let mut req = BackupRequest::new(&db, dest);
    req.counts = counts_sql();
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    let end_count = count(&db, "documents");
    let during = written.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(
        during > written_before,
        "the writer kept writing during the backup ({written_before} -> {during})"
    );
    assert!(end_count > start_count);

    let verified = fetch_and_verify(
        &report.location,
        &tmp.path().join("st"),
        backup::no_progress(),
    )
    .await
    .unwrap();
    let snap = verified.dir.join(DB);
    assert_eq!(integrity(&snap), "ok");
    let docs = count(&snap, "documents");
    let chunks = count(&snap, "chunks");
    assert!(
        (start_count..=end_count).contains(&docs),
        "snapshot has {docs} documents, expected between {start_count} and {end_count}"
    );
    assert_eq!(
        chunks,
        docs * 2,
        "every document has its two chunks (transactional snapshot)"
    );
    assert_eq!(report.manifest.document_count, docs as u64);
    assert_eq!(report.manifest.chunk_count, chunks as u64);
    let orphans: i64 = Connection::open(&snap)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
}

#[tokio::test]
async fn bad_destination_urls_are_explained() {
    let err = Location::parse("ftp://host/dir").unwrap_err().to_string();
    assert!(err.contains("accepted forms"), "{err}");
    assert!(err.contains("s3://bucket/prefix"), "{err}");
    let staging = tempfile::tempdir().unwrap();
    let err = fetch_and_verify(
        "/nonexistent/x.zip",
        &staging.path().join("s"),
        backup::no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::InvalidLocation { .. }), "{err}");
    let err = fetch_and_verify(
        "/nonexistent/x.tar.gz",
        &staging.path().join("s"),
        backup::no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::NotFound(_)), "{err}");
    assert!(!staging.path().join("s").exists());
}
