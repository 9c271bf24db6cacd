//! Continuous archiving to a directory destination and point-in-time restore: replaying any
//! prefix of the archive gives the writer's documents at that point, and restores to three
//! times (before a base snapshot, after it, latest) give exactly the documents of each time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::archiving::{
    DocSet, Rng, archiving_config, delete, doc_set, open, put, restore_fresh, segment_ranges,
};
use instant_db::archive::{TargetTime, final_flush};

/// Runs random writes (new documents, rewrites, deletes) on a writer archiving into `dest`,
/// shipping at random moments and taking one base snapshot in the middle. Returns the writer's
/// document set after each step and the time just after it.
async fn random_history(
    root: &std::path::Path,
    dest: &str,
    seed: u64,
    steps: usize,
) -> Vec<(DateTime<Utc>, DocSet)> {
    let writer = open(archiving_config(&root.join("writer"), dest, None));
    // The first pass starts the generation on the empty database.
    final_flush(writer.clone()).await.unwrap();
    let mut rng = Rng(seed);
    let mut live: Vec<String> = vec![];
    let mut next_id = 0;
    let mut history = vec![];
    for step in 0..steps {
        match (rng.below(3), live.is_empty()) {
            (0, false) => {
                let i = rng.below(live.len() as u64) as usize;
                delete(&writer, &live.swap_remove(i));
            }
            (1, false) => {
                let i = rng.below(live.len() as u64) as usize;
                put(&writer, &live[i], step as u32);
            }
            _ => {
                let id = format!("doc-{next_id}");
                next_id += 1;
                put(&writer, &id, step as u32);
                live.push(id);
            }
        }
        // a commit time is never equal to a recorded point
        tokio::time::sleep(Duration::from_millis(2)).await;
        history.push((Utc::now(), doc_set(&writer)));
        tokio::time::sleep(Duration::from_millis(2)).await;
        if rng.below(4) == 0 {
            final_flush(writer.clone()).await.unwrap();
        }
        if step == steps / 2 {
            instant_db::maintenance::backup(
                writer.clone(),
                dest,
                None,
                instant_db::backup::no_progress(),
            )
            .await
            .unwrap();
        }
    }
    final_flush(writer.clone()).await.unwrap();
    assert_eq!(writer.archive.status().pending_changes, 0);
    history
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_any_prefix_of_the_archive_gives_the_writers_documents_at_that_point() {
    for seed in [0x9e3779b97f4a7c15u64, 42, 7_777_777] {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let dest_url = dest.to_string_lossy().into_owned();
        let history = random_history(tmp.path(), &dest_url, seed, 30).await;
        // the archive holds every change once, in order, without a gap
        let ranges = segment_ranges(&dest.join("archive"));
        assert!(ranges.len() > 2, "{ranges:?}");
        for w in ranges.windows(2) {
            assert_eq!(w[1].0, w[0].1 + 1, "seed {seed}: {ranges:?}");
        }
        let mut rng = Rng(seed ^ 0xabcdef);
        let mut picks: Vec<usize> = (0..4)
            .map(|_| rng.below(history.len() as u64) as usize)
            .collect();
        picks.push(history.len() - 1);
        for (n, step) in picks.into_iter().enumerate() {
            let (at, expected) = &history[step];
            let (engine, report) = restore_fresh(
                tmp.path(),
                &format!("restore-{n}"),
                &dest_url,
                TargetTime::At(*at),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            assert_eq!(
                &doc_set(&engine),
                expected,
                "seed {seed}: restore to step {step} ({report:?})"
            );
            let check = engine.store.integrity_check().unwrap();
            assert!(check.ok, "{:?}", check.problems);
            // the restored vectors are in the vector index too
            assert_eq!(
                engine.index().len() as i64,
                engine.store.stats().unwrap().embeddings
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_to_three_times_gives_exactly_the_documents_of_each_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest").to_string_lossy().into_owned();
    let writer = open(archiving_config(&tmp.path().join("writer"), &dest, None));
    final_flush(writer.clone()).await.unwrap();
    put(&writer, "a", 1);
    put(&writer, "b", 1);
    final_flush(writer.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t1 = Utc::now();
    let at_t1 = doc_set(&writer);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let backup = instant_db::maintenance::backup(
        writer.clone(),
        &dest,
        None,
        instant_db::backup::no_progress(),
    )
    .await
    .unwrap();
    put(&writer, "a", 2);
    delete(&writer, "b");
    put(&writer, "c", 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t2 = Utc::now();
    let at_t2 = doc_set(&writer);
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&writer, "c", 2);
    put(&writer, "d", 1);
    final_flush(writer.clone()).await.unwrap();
    let latest = doc_set(&writer);
    assert!(at_t1 != at_t2 && at_t2 != latest);

    // t1 is before the only snapshot: the base is the generation's empty start
    let (e1, r1) = restore_fresh(tmp.path(), "r1", &dest, TargetTime::At(t1), None)
        .await
        .unwrap();
    assert_eq!(doc_set(&e1), at_t1);
    assert_eq!(r1.base_backup, None);
    // t2 is after it: the snapshot plus the changes after it, up to t2 only
    let (e2, r2) = restore_fresh(tmp.path(), "r2", &dest, TargetTime::At(t2), None)
        .await
        .unwrap();
    assert_eq!(doc_set(&e2), at_t2);
    assert_eq!(r2.base_backup.as_deref(), Some(backup.id.as_str()));
    assert_eq!(r2.replayed_changes, 3, "{r2:?}");
    let (e3, r3) = restore_fresh(tmp.path(), "r3", &dest, TargetTime::Latest, None)
        .await
        .unwrap();
    assert_eq!(doc_set(&e3), latest);
    assert_eq!(r3.replayed_changes, 5, "{r3:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_database_starts_a_new_generation_instead_of_forking_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest").to_string_lossy().into_owned();
    let writer = open(archiving_config(&tmp.path().join("writer"), &dest, None));
    final_flush(writer.clone()).await.unwrap();
    put(&writer, "a", 1);
    final_flush(writer.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t1 = Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&writer, "b", 1);
    final_flush(writer.clone()).await.unwrap();
    let first = writer.archive.status().generation.unwrap();
    // the writer itself goes back to t1, in place, and keeps writing
    let report = instant_db::archive::restore_to_time(
        writer.clone(),
        &dest,
        TargetTime::At(t1),
        instant_db::backup::no_progress(),
        std::sync::Arc::new(|_| {}),
    )
    .await
    .unwrap();
    assert_eq!(report.restore.documents, 1);
    // the archiver's next pass sees a file detached from the old generation
    final_flush(writer.clone()).await.unwrap();
    put(&writer, "c", 1);
    final_flush(writer.clone()).await.unwrap();
    let second = writer.archive.status().generation.unwrap();
    assert_ne!(first, second);
    // the old generation still restores its own history (it began on an empty database and has
    // no snapshot; the new one began on a restored database and needs one)
    let (old, r) = restore_fresh(tmp.path(), "old", &dest, TargetTime::Latest, None)
        .await
        .map(|(e, r)| (doc_set(&e), r))
        .unwrap();
    assert_eq!(old.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(r.generation, first);
    // the new generation began on a non-empty database: it needs a base snapshot, and says so
    let log = writer.store.change_log_state().unwrap();
    assert_eq!(log.generation.as_deref(), Some(second.as_str()));
    let listed: Vec<_> = std::fs::read_dir(tmp.path().join("dest/archive"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&second))
        .collect();
    assert!(
        listed.iter().any(|n| n.ends_with(".ndjson.gz")),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_written_to_the_destination_while_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let writer = open(archiving_config(
        &tmp.path().join("writer"),
        &dest.to_string_lossy(),
        None,
    ));
    let task = tokio::spawn(instant_db::archive::run(writer.clone()));
    put(&writer, "a", 1);
    // shipped within max_lag (1 s) by the background task
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while writer.archive.status().shipped_seq < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            writer.archive.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = std::fs::read_dir(dest.join("archive")).unwrap().count();
    let shipped = writer.archive.status().segments_shipped;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(writer.archive.status().segments_shipped, shipped);
    assert_eq!(
        std::fs::read_dir(dest.join("archive")).unwrap().count(),
        before
    );
    task.abort();
}

async fn wait_archived(c: &reqwest::Client, s: &common::TestServer) -> serde_json::Value {
    for _ in 0..300 {
        let a = common::admin_get_json(c, s, "/admin/archive").await;
        if a["pending_changes"] == 0
            && a["generation"].is_string()
            && a["last_seq"] == a["shipped_seq"]
        {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("changes were not archived within 30 s");
}

async fn titles(c: &reqwest::Client, s: &common::TestServer) -> Vec<String> {
    let docs: serde_json::Value = c
        .get(s.url("/api/documents?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = docs["documents"]
        .as_array()
        .or(docs.as_array())
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<String> = list
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d["title"].as_str().unwrap_or(""),
                d["content_hash"].as_str().unwrap_or("")
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_job_with_a_target_time_goes_back_to_it_and_the_archive_reports_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest").to_string_lossy().into_owned();
    let data = tmp.path().join("data");
    let mut cfg = common::admin_config(&data);
    cfg.archive.destination = Some(dest.clone());
    cfg.archive.max_lag_secs = 1;
    let engine =
        instant_db::engine::Engine::open(cfg, instant_db::engine::ModelLoading::Skip).unwrap();
    let server = common::TestServer::start(engine).await;
    let c = common::admin_client();
    let add = |name: &'static str, text: &'static str| {
        let (c, url) = (c.clone(), server.url("/api/documents"));
        async move {
            let r = c
                .post(url)
                .json(&serde_json::json!({"name": name, "title": name, "text": text}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    add("a", "alpha first version").await;
    add("b", "beta").await;
    let first = wait_archived(&c, &server).await;
    // a generation begun on an empty database is recoverable from its start, no snapshot needed
    assert!(first["first_recoverable_time"].is_string(), "{first}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t1 = Utc::now();
    let at_t1 = titles(&c, &server).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    add("a", "alpha second version").await;
    add("c", "gamma").await;
    wait_archived(&c, &server).await;
    assert_ne!(titles(&c, &server).await, at_t1);

    let (status, body) = common::admin(
        &c,
        &server,
        "/admin/restores",
        serde_json::json!({"source": dest, "target_time": "last tuesday"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("RFC 3339"), "{body}");

    let target = t1.to_rfc3339();
    let (status, job) = common::admin(
        &c,
        &server,
        "/admin/restores",
        serde_json::json!({"id": "pitr-1", "source": dest, "target_time": target}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let mut done = serde_json::Value::Null;
    for _ in 0..300 {
        done = common::admin_get_json(&c, &server, "/admin/restores/pitr-1").await;
        if ["completed", "failed", "rolled_back"].contains(&done["phase"].as_str().unwrap_or("")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["phase"], "completed", "{done}");
    assert!(
        done["target_time"].is_string() && done["restored_to"].is_string(),
        "{done}"
    );
    assert_eq!(titles(&c, &server).await, at_t1);

    // the restored database archives into a new generation, which has no base yet
    add("d", "delta").await;
    let after = wait_archived(&c, &server).await;
    assert_ne!(after["generation"], first["generation"]);
    assert!(after["first_recoverable_time"].is_null(), "{after}");
    assert!(
        after["note"].as_str().unwrap().contains("take a backup"),
        "{after}"
    );
    let (status, b) = common::admin(
        &c,
        &server,
        "/admin/backups",
        serde_json::json!({"destination": dest}),
    )
    .await;
    assert!(status == 202 || status == 200, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    common::wait_backup(&c, &server, &id).await;
    let window = common::admin_get_json(&c, &server, "/admin/archive").await;
    assert!(window["first_recoverable_time"].is_string(), "{window}");
    assert!(window["last_recoverable_time"].is_string(), "{window}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_archive_report_counts_a_write_made_after_the_shippers_last_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest").to_string_lossy().into_owned();
    let writer = open(archiving_config(&tmp.path().join("writer"), &dest, None));
    // one pass: the generation starts and the status says nothing waits
    final_flush(writer.clone()).await.unwrap();
    let before = instant_db::archive::report(&writer).await.unwrap();
    assert_eq!(before.status.pending_changes, 0);
    // no shipper runs here, so no poll comes between the write and the report: a report made
    // from the last poll's figures would say nothing waits (and a reader waiting for "all
    // shipped" would stop at once)
    put(&writer, "doc-1", 1);
    let after = instant_db::archive::report(&writer).await.unwrap();
    assert_eq!(after.status.pending_changes, 1, "{:?}", after.status);
    assert_eq!(after.status.last_seq, before.status.last_seq + 1);
    assert_eq!(after.status.generation, before.status.generation);
}
