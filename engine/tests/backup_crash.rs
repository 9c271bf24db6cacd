//! A restore interrupted at each step of its swap (simulated by stopping there, as a crash
//! would: nothing after the step runs) leaves a data directory that the next start turns back
//! into the previous data, or keeps as the restored data once committed; never an empty one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use instant_db::backup::{
    self, BackupError, BackupRequest, Counts, Location, PREVIOUS_PREFIX, RESTORE_JOURNAL, Recovery,
    RestoreLock, SwapPlan, VerifiedBackup, fetch_and_verify, recover_interrupted_restore, swap_in,
};
use instant_db::engine::{Engine, ModelLoading};
use rusqlite::Connection;

const DB: &str = "instant-db.sqlite";
const INDEX_DIR: &str = "index";
const INDEX_FILE: &str = "index/vectors.bin";

fn insert(c: &Connection, n: usize) {
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..n {
        tx.execute(
            "INSERT INTO documents(title) VALUES (?1)",
            [format!("doc {i}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn count(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .unwrap()
}

fn previous_dirs(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(PREVIOUS_PREFIX)
        })
        .collect()
}

/// A data directory whose database has 10 documents in the backup and 15 live, and whose index
/// file reads "backup" in the backup and "live" live; plus the verified backup, staged inside
/// the data directory as the engine does.
async fn backed_up_then_changed(tmp: &Path) -> (PathBuf, VerifiedBackup) {
    let data = tmp.join("data");
    std::fs::create_dir_all(data.join(INDEX_DIR)).unwrap();
    let db = data.join(DB);
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE documents(id INTEGER PRIMARY KEY, title TEXT);",
    )
    .unwrap();
    insert(&c, 10);
    std::fs::write(data.join(INDEX_FILE), "backup").unwrap();
    let mut req = BackupRequest::new(
        &db,
        Location::parse(tmp.join("b").to_str().unwrap()).unwrap(),
    );
    req.extra_files = vec![(INDEX_FILE.into(), data.join(INDEX_FILE))];
    req.counts = Counts::Sql {
        documents: "SELECT count(*) FROM documents".into(),
        chunks: "SELECT 0".into(),
    };
    let report = backup::create_backup(req, backup::no_progress())
        .await
        .unwrap();
    insert(&c, 5);
    drop(c);
    std::fs::write(data.join(INDEX_FILE), "live").unwrap();
    let verified = fetch_and_verify(
        &report.location,
        &data.join(".restore-staging-test"),
        backup::no_progress(),
    )
    .await
    .unwrap();
    (data, verified)
}

fn assert_previous_data_is_live(data: &Path) {
    assert_eq!(count(&data.join(DB)), 15, "the previous database is live");
    assert_eq!(
        std::fs::read_to_string(data.join(INDEX_FILE)).unwrap(),
        "live"
    );
    assert!(!data.join(RESTORE_JOURNAL).exists());
    assert!(previous_dirs(data).is_empty(), "{:?}", previous_dirs(data));
    assert!(
        !data.join(".restore-staging-test").exists(),
        "staging of the interrupted restore is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_saving_the_previous_data_leaves_the_live_data_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    let mut plan = SwapPlan::new(&data, &verified, &[DB, INDEX_DIR]).unwrap();
    plan.save_previous().unwrap();
    let previous = plan.previous_dir().to_path_buf();
    assert_eq!(count(&previous.join(DB)), 15);
    drop(plan); // the crash
    assert_eq!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::Clean
    );
    assert_eq!(count(&data.join(DB)), 15);
    assert_eq!(
        std::fs::read_to_string(data.join(INDEX_FILE)).unwrap(),
        "live"
    );
    // no journal: the leftover copy is only reported, never brought back
    assert!(previous.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_journal_is_rolled_back_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    let mut plan = SwapPlan::new(&data, &verified, &[DB, INDEX_DIR]).unwrap();
    plan.save_previous().unwrap();
    plan.write_journal().unwrap();
    let previous = plan.previous_dir().to_path_buf();
    drop(plan);
    assert!(data.join(RESTORE_JOURNAL).exists());
    assert_eq!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::RolledBack {
            previous_dir: previous
        }
    );
    assert_previous_data_is_live(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_database_and_the_index_swap_is_rolled_back_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    let mut plan = SwapPlan::new(&data, &verified, &[DB, INDEX_DIR]).unwrap();
    plan.save_previous().unwrap();
    plan.write_journal().unwrap();
    assert!(plan.replace_next().unwrap());
    // the database path named a whole database at every moment: now the restored one
    assert_eq!(count(&data.join(DB)), 10);
    assert_eq!(
        std::fs::read_to_string(data.join(INDEX_FILE)).unwrap(),
        "live"
    );
    drop(plan);
    assert!(matches!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::RolledBack { .. }
    ));
    assert_previous_data_is_live(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_still_running_in_another_process_is_not_taken_for_an_interrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    let lock = RestoreLock::acquire(&data).unwrap();
    let mut plan = SwapPlan::new(&data, &verified, &[DB, INDEX_DIR]).unwrap();
    plan.save_previous().unwrap();
    plan.write_journal().unwrap();
    assert!(plan.replace_next().unwrap());
    // someone opens the data directory meanwhile (e.g. `instant-db stats`): nothing changes
    assert_eq!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::Clean
    );
    assert!(data.join(RESTORE_JOURNAL).exists());
    assert!(data.join(".restore-staging-test").exists());
    assert_eq!(count(&data.join(DB)), 10);
    assert!(matches!(
        RestoreLock::acquire(&data),
        Err(BackupError::RestoreInProgress)
    ));
    // the restoring process dies, and its lock with it
    drop(plan);
    drop(lock);
    assert!(matches!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::RolledBack { .. }
    ));
    assert_previous_data_is_live(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_every_file_is_swapped_but_before_commit_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    let guard = swap_in(&data, &verified, &[DB, INDEX_DIR]).unwrap();
    assert_eq!(count(&data.join(DB)), 10);
    assert_eq!(
        std::fs::read_to_string(data.join(INDEX_FILE)).unwrap(),
        "backup"
    );
    std::mem::forget(guard); // neither commit nor rollback ran
    assert!(matches!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::RolledBack { .. }
    ));
    assert_previous_data_is_live(&data);
    // and rolling back twice (a crash during the first rollback) changes nothing more
    assert_eq!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::Clean
    );
    assert_eq!(count(&data.join(DB)), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_commit_point_keeps_the_restored_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    let guard = swap_in(&data, &verified, &[DB, INDEX_DIR]).unwrap();
    let previous = guard.previous_dir().to_path_buf();
    // commit removes the journal first; stop right after that
    std::fs::remove_file(data.join(RESTORE_JOURNAL)).unwrap();
    std::mem::forget(guard);
    assert_eq!(
        recover_interrupted_restore(&data, DB).unwrap(),
        Recovery::Clean
    );
    assert_eq!(count(&data.join(DB)), 10, "the restored database stays");
    assert_eq!(
        std::fs::read_to_string(data.join(INDEX_FILE)).unwrap(),
        "backup"
    );
    assert!(previous.exists(), "left for the operator to delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_restore_leaves_no_journal_and_no_previous_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, verified) = backed_up_then_changed(tmp.path()).await;
    swap_in(&data, &verified, &[DB, INDEX_DIR])
        .unwrap()
        .commit()
        .unwrap();
    assert_eq!(count(&data.join(DB)), 10);
    assert!(!data.join(RESTORE_JOURNAL).exists());
    assert!(previous_dirs(&data).is_empty());
}

fn set_marker(db: &Path, value: &str) {
    Connection::open(db)
        .unwrap()
        .execute(
            "INSERT INTO meta(key, value) VALUES ('test_marker', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [value],
        )
        .unwrap();
}

fn marker(db: &Path) -> String {
    Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'test_marker'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_engine_rolls_an_interrupted_restore_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    drop(Engine::open(common::config(&data), ModelLoading::Skip).unwrap());
    let db = data.join(DB);
    set_marker(&db, "backup");
    let report = backup::create_backup(
        BackupRequest::new(
            &db,
            Location::parse(tmp.path().join("b").to_str().unwrap()).unwrap(),
        ),
        backup::no_progress(),
    )
    .await
    .unwrap();
    set_marker(&db, "live");
    let verified = fetch_and_verify(
        &report.location,
        &data.join(".restore-staging-x"),
        backup::no_progress(),
    )
    .await
    .unwrap();
    let mut plan = SwapPlan::new(&data, &verified, &[DB]).unwrap();
    plan.save_previous().unwrap();
    plan.write_journal().unwrap();
    while plan.replace_next().unwrap() {}
    drop(plan);
    assert_eq!(marker(&db), "backup");

    let engine = Engine::open(common::config(&data), ModelLoading::Skip).unwrap();
    drop(engine);
    assert_eq!(
        marker(&db),
        "live",
        "the interrupted restore was rolled back"
    );
    assert!(!data.join(RESTORE_JOURNAL).exists());
    assert!(previous_dirs(&data).is_empty());
}

#[test]
fn the_engine_refuses_to_create_an_empty_database_over_previous_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    drop(Engine::open(common::config(&data), ModelLoading::Skip).unwrap());
    let db = data.join(DB);
    set_marker(&db, "precious");
    // what the old swap left after a crash between "move out" and "move in"
    let previous = data.join("previous-20260101T000000.000Z");
    std::fs::create_dir_all(&previous).unwrap();
    std::fs::rename(&db, previous.join(DB)).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::rename(
            data.join(format!("{DB}{suffix}")),
            previous.join(format!("{DB}{suffix}")),
        );
    }

    let err = match Engine::open(common::config(&data), ModelLoading::Skip) {
        Ok(_) => panic!("the engine started over missing data"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains("interrupted"), "{msg}");
    assert!(msg.contains(&previous.display().to_string()), "{msg}");
    assert!(msg.contains("move the files"), "{msg}");
    assert!(!db.exists(), "no empty database was created");
    assert_eq!(err.exit_code(), 1);

    // following the advice brings the data back
    for name in [DB.to_string(), format!("{DB}-wal"), format!("{DB}-shm")] {
        let _ = std::fs::rename(previous.join(&name), data.join(&name));
    }
    std::fs::remove_dir_all(&previous).unwrap();
    drop(Engine::open(common::config(&data), ModelLoading::Skip).unwrap());
    assert_eq!(marker(&db), "precious");
}
