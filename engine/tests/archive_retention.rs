//! Archive retention: deleting backups from a folder deletes the archived changes no kept
//! backup needs (the segment straddling the oldest kept base stays, a generation with no base
//! left goes whole, the one being written to stays), and what is left still restores every
//! time inside the window exactly, while a time before it is refused naming the earliest one.
//! On a directory destination and on S3 (moto_server; fails, never skips, without it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::archiving::{DocSet, archiving_config, delete, doc_set, open, put, restore_fresh};
use futures::TryStreamExt;
use instant_db::archive::retention::{self, BackupDeletion};
use instant_db::archive::segment::{SegmentName, parse_generation_object};
use instant_db::archive::{TargetTime, final_flush};
use instant_db::backup::BackupReport;
use instant_db::engine::Engine;
use object_store::ObjectStore;

/// Where the archive objects of a destination can be listed by the test.
enum Dest {
    Dir(std::path::PathBuf),
    S3(object_store::aws::AmazonS3, &'static str),
}

impl Dest {
    /// The object names under `archive/`, sorted.
    async fn archive_names(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Dest::Dir(d) => std::fs::read_dir(d.join("archive"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            Dest::S3(store, prefix) => {
                let p = object_store::path::Path::from(format!("{prefix}/archive"));
                store
                    .list(Some(&p))
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap()
                    .iter()
                    .filter_map(|m| m.location.filename().map(str::to_string))
                    .collect()
            }
        };
        out.sort();
        out
    }

    async fn segments(&self) -> Vec<SegmentName> {
        let mut s: Vec<SegmentName> = self
            .archive_names()
            .await
            .iter()
            .filter_map(|n| SegmentName::parse(n))
            .collect();
        s.sort_by_key(|s| (s.first, s.last));
        s
    }

    async fn generations(&self) -> Vec<String> {
        self.archive_names()
            .await
            .iter()
            .filter_map(|n| parse_generation_object(n))
            .collect()
    }
}

async fn backup(writer: &Arc<Engine>, dest: &str) -> BackupReport {
    let r = instant_db::maintenance::backup(
        writer.clone(),
        dest,
        None,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    // a backup's time is never equal to a recorded point or a change
    tokio::time::sleep(Duration::from_millis(5)).await;
    r
}

fn base_seq(b: &BackupReport) -> i64 {
    b.manifest.extra["archive"]["seq"].as_i64().unwrap()
}

async fn record(writer: &Engine, history: &mut Vec<(DateTime<Utc>, DocSet)>) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    history.push((Utc::now(), doc_set(writer)));
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn delete_backup(writer: &Arc<Engine>, dest: &str, id: &str) -> BackupDeletion {
    let loc = instant_db::maintenance::location(writer, dest).unwrap();
    let d = retention::delete_backup(writer, &loc, id).await.unwrap();
    assert_eq!(d.archive.error, None, "{d:?}");
    d
}

/// Restores each recorded point at or after `from` into a fresh directory and compares.
async fn assert_restores(
    root: &Path,
    dest: &str,
    creds: Option<&Path>,
    history: &[(DateTime<Utc>, DocSet)],
    from: DateTime<Utc>,
    tag: &str,
) {
    for (n, (at, expected)) in history.iter().enumerate().filter(|(_, (t, _))| *t >= from) {
        let (engine, report) = restore_fresh(
            root,
            &format!("{tag}-{n}"),
            dest,
            TargetTime::At(*at),
            creds,
        )
        .await
        .unwrap_or_else(|e| panic!("{tag}: restore to point {n} ({at}): {e}"));
        assert_eq!(&doc_set(&engine), expected, "{tag}: point {n} {report:?}");
        assert!(engine.store.integrity_check().unwrap().ok);
    }
}

async fn scenario(root: &Path, dest: &str, creds: Option<&Path>, listing: &Dest) {
    let writer = open(archiving_config(&root.join("writer"), dest, creds));
    final_flush(writer.clone()).await.unwrap();
    let first_gen = writer.store.change_log_state().unwrap().generation.unwrap();
    let mut history = vec![];
    put(&writer, "a", 1);
    put(&writer, "b", 1);
    final_flush(writer.clone()).await.unwrap();
    record(&writer, &mut history).await;
    let b1 = backup(&writer, dest).await;
    put(&writer, "a", 2);
    put(&writer, "c", 1);
    final_flush(writer.clone()).await.unwrap();
    record(&writer, &mut history).await;
    // d is not shipped yet when b2 is taken: the next segment straddles b2's position
    put(&writer, "d", 1);
    let b2 = backup(&writer, dest).await;
    put(&writer, "e", 1);
    delete(&writer, "c");
    final_flush(writer.clone()).await.unwrap();
    record(&writer, &mut history).await;
    put(&writer, "a", 3);
    final_flush(writer.clone()).await.unwrap();
    record(&writer, &mut history).await;
    let b3 = backup(&writer, dest).await;
    put(&writer, "f", 1);
    delete(&writer, "b");
    final_flush(writer.clone()).await.unwrap();
    record(&writer, &mut history).await;
    let before = listing.segments().await;
    assert_eq!(before.len(), 5, "{before:?}");

    // 1. the oldest backup goes: the empty start (older than it) stops being a recovery point
    // and every segment wholly at or before b2's position goes; the straddling one stays
    let d = delete_backup(&writer, dest, &b1.id).await;
    assert_eq!(
        d.archive.empty_starts_dropped,
        std::slice::from_ref(&first_gen),
        "{d:?}"
    );
    let after = listing.segments().await;
    let b2_seq = base_seq(&b2);
    let expected: Vec<_> = before.iter().filter(|s| s.last > b2_seq).cloned().collect();
    assert_eq!(after, expected);
    assert!(after.len() < before.len());
    assert_eq!(
        d.archive.segments_deleted as usize,
        before.len() - after.len()
    );
    assert!(
        after.iter().any(|s| s.first <= b2_seq && s.last > b2_seq),
        "the segment straddling b2 (seq {b2_seq}) went: {after:?}"
    );
    assert_eq!(
        listing.generations().await,
        std::slice::from_ref(&first_gen)
    );
    // pruning again changes nothing
    let loc = instant_db::maintenance::location(&writer, dest).unwrap();
    let again = retention::prune(&writer, &loc, None).await.unwrap();
    assert_eq!(again.segments_deleted, 0, "{again:?}");
    assert_eq!(listing.segments().await, after);

    // every time from b2 on restores exactly; a time before it is refused, naming b2's time
    assert_restores(root, dest, creds, &history, b2.manifest.created_at, "w1").await;
    let too_early = history[1].0;
    assert!(too_early < b2.manifest.created_at);
    let e = restore_fresh(root, "early", dest, TargetTime::At(too_early), creds)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    let earliest = instant_db::store::changes::format_time(b2.manifest.created_at);
    assert!(
        e.contains(&format!(
            "the earliest time this destination can restore to is {earliest}"
        )),
        "{e}"
    );
    let window = instant_db::archive::pitr::window(&loc, Some(&first_gen))
        .await
        .unwrap();
    assert_eq!(window.first.as_deref(), Some(earliest.as_str()));

    // 2. the writer goes back in place (a new generation begins on the restored file) and
    // keeps writing; the old generation keeps only what b3 needs
    delete_backup(&writer, dest, &b2.id).await;
    assert!(
        listing
            .segments()
            .await
            .iter()
            .all(|s| s.last > base_seq(&b3))
    );
    instant_db::archive::restore_to_time(
        writer.clone(),
        dest,
        TargetTime::Latest,
        instant_db::backup::no_progress(),
        Arc::new(|_| {}),
    )
    .await
    .unwrap();
    final_flush(writer.clone()).await.unwrap();
    put(&writer, "g", 1);
    final_flush(writer.clone()).await.unwrap();
    let second_gen = writer.store.change_log_state().unwrap().generation.unwrap();
    assert_ne!(second_gen, first_gen);
    let new_segments: Vec<_> = listing
        .segments()
        .await
        .into_iter()
        .filter(|s| s.generation == second_gen)
        .collect();
    assert!(!new_segments.is_empty());

    // 3. b3 goes: the old generation has no base left and goes whole; the current one has no
    // base yet and is kept whole
    let d = delete_backup(&writer, dest, &b3.id).await;
    assert_eq!(
        d.archive.generations_deleted,
        std::slice::from_ref(&first_gen),
        "{d:?}"
    );
    assert_eq!(
        listing.generations().await,
        std::slice::from_ref(&second_gen)
    );
    assert_eq!(listing.segments().await, new_segments);
    // once it has a base, the current generation restores to latest exactly
    let _b4 = backup(&writer, dest).await;
    put(&writer, "h", 1);
    final_flush(writer.clone()).await.unwrap();
    let (restored, report) = restore_fresh(root, "latest", dest, TargetTime::Latest, creds)
        .await
        .unwrap();
    assert_eq!(doc_set(&restored), doc_set(&writer), "{report:?}");
    assert_eq!(report.generation, second_gen);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_backups_from_a_directory_prunes_the_archive_and_keeps_the_window_restorable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dest");
    scenario(
        tmp.path(),
        &dir.to_string_lossy(),
        None,
        &Dest::Dir(dir.clone()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_backups_from_s3_prunes_the_archive_and_keeps_the_window_restorable() {
    let moto = common::moto::start_moto().await;
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/keep"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let creds = tempfile::tempdir().unwrap();
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        std::fs::write(creds.path().join(format!("moto.{key}")), "testing\n").unwrap();
    }
    let dest = format!(
        "s3://keep/node-1?endpoint={endpoint}&region=us-east-1&allow_http=true&credentials=moto"
    );
    let tmp = tempfile::tempdir().unwrap();
    let listing = Dest::S3(common::bucket_client(&endpoint, "keep"), "node-1");
    scenario(tmp.path(), &dest, Some(creds.path()), &listing).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_delete_endpoint_answers_what_the_archive_lost_and_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest").to_string_lossy().into_owned();
    let mut cfg = common::admin_config(&tmp.path().join("data"));
    cfg.archive.destination = Some(dest.clone());
    let engine = open(cfg.clone());
    final_flush(engine.clone()).await.unwrap();
    put(&engine, "a", 1);
    final_flush(engine.clone()).await.unwrap();
    let old = backup(&engine, &dest).await;
    put(&engine, "b", 1);
    final_flush(engine.clone()).await.unwrap();
    backup(&engine, &dest).await;
    drop(engine);
    // the same data directory, served
    let engine = Engine::open(cfg, instant_db::engine::ModelLoading::Skip).unwrap();
    let server = common::TestServer::start(engine).await;
    let c = common::admin_client();
    let r = c
        .delete(server.url(&format!("/admin/backups/{}", old.id)))
        .query(&[("destination", &dest)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], old.id.as_str());
    assert_eq!(body["archive"]["segments_deleted"], 2, "{body}");
    assert!(body["archive"]["error"].is_null(), "{body}");
    let metrics = common::get_text(&c, server.url("/metrics")).await;
    assert!(
        metrics.contains("instantdb_archive_pruned_objects_total 3"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prune_that_fails_still_deletes_the_backup_and_says_why_and_the_next_one_prunes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dest");
    let dest = dir.to_string_lossy().into_owned();
    let writer = open(archiving_config(&tmp.path().join("writer"), &dest, None));
    final_flush(writer.clone()).await.unwrap();
    put(&writer, "a", 1);
    final_flush(writer.clone()).await.unwrap();
    let old = backup(&writer, &dest).await;
    put(&writer, "b", 1);
    final_flush(writer.clone()).await.unwrap();
    let kept = backup(&writer, &dest).await;
    let listing = Dest::Dir(dir.clone());
    let before = listing.segments().await;
    // what the kept backup is a base of cannot be read: nothing may be pruned
    let manifest = dir.join(format!("{}.manifest.json", kept.id));
    let good = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, b"{ not json").unwrap();
    let loc = instant_db::maintenance::location(&writer, &dest).unwrap();
    let d = retention::delete_backup(&writer, &loc, &old.id)
        .await
        .unwrap();
    assert!(d.archive.error.is_some(), "{d:?}");
    assert_eq!(d.archive.segments_deleted, 0);
    assert!(!dir.join(format!("{}.tar.gz", old.id)).exists());
    assert_eq!(listing.segments().await, before);
    assert_eq!(writer.metrics.archive_prune_failures.get(), 1);
    // once it reads again, the next prune does what the failed one left
    std::fs::write(&manifest, good).unwrap();
    let r = retention::prune(&writer, &loc, Some(old.manifest.created_at))
        .await
        .unwrap();
    assert_eq!(r.segments_deleted, 2, "{r:?}");
    assert!(listing.segments().await.is_empty());
}
