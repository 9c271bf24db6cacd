//! Continuous archiving against a real S3-compatible server (moto_server) with an outage in
//! the middle: moto is stopped while documents keep coming, then restarted where it was. The
//! changes wait on the volume, reach the archive once it is back, with no gap and no
//! duplicate, and a restore of `latest` gives every document. Fails (never skips) without
//! moto_server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::archiving::{archiving_config, doc_set, open, put, restore_fresh};
use common::moto::{free_port, start_moto_at};
use futures::TryStreamExt;
use instant_db::archive::TargetTime;
use instant_db::archive::segment::SegmentName;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn creds_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        std::fs::write(dir.path().join(format!("moto.{key}")), "testing\n").unwrap();
    }
    dir
}

async fn create_bucket(endpoint: &str) {
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/arch"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn all_objects(
    store: &object_store::aws::AmazonS3,
) -> Vec<(object_store::path::Path, bytes::Bytes)> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut out = vec![];
    for m in metas {
        let b = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        out.push((m.location, b));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_in_the_middle_delays_changes_but_loses_none_and_ships_none_twice() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let moto = start_moto_at(port, &[]).await;
    create_bucket(&endpoint).await;
    let creds = creds_dir();
    let dest = format!(
        "s3://arch/node-1?endpoint={endpoint}&region=us-east-1&allow_http=true&credentials=moto"
    );
    let tmp = tempfile::tempdir().unwrap();
    let writer = open(archiving_config(
        &tmp.path().join("writer"),
        &dest,
        Some(creds.path()),
    ));
    let task = tokio::spawn(instant_db::archive::run(writer.clone()));

    for i in 0..10 {
        put(&writer, &format!("doc-{i}"), 1);
    }
    let w = writer.clone();
    wait_until("the first changes to be archived", 30, || {
        let s = w.archive.status();
        s.last_seq == 10 && s.shipped_seq == 10
    })
    .await;

    // S3 keeps objects across its own outages; moto keeps them in memory only, so the test
    // carries them across the restart.
    let raw = common::bucket_client(&endpoint, "arch");
    let kept = all_objects(&raw).await;
    assert!(kept.iter().any(|(p, _)| p.as_ref().ends_with(".ndjson.gz")));
    drop(moto);

    for i in 10..20 {
        put(&writer, &format!("doc-{i}"), 1);
    }
    put(&writer, "doc-3", 2);
    let w = writer.clone();
    wait_until("the outage to be reported", 60, || {
        let s = w.archive.status();
        s.last_error.is_some() && s.pending_changes == 11
    })
    .await;
    let s = writer.archive.status();
    assert!(s.lag_bytes > 0 && s.shipped_seq == 10, "{s:?}");
    assert!(writer.metrics.archive_lag_bytes.get() > 0);
    // the error names no credentials
    assert!(!s.last_error.unwrap().contains("testing"));
    // ingest goes on during the outage
    put(&writer, "doc-during", 1);

    let _moto = start_moto_at(port, &[]).await;
    create_bucket(&endpoint).await;
    for (p, b) in kept {
        raw.put(&p, PutPayload::from(b)).await.unwrap();
    }
    let w = writer.clone();
    // the breaker's cool-down (30 s) and the backoff decide when the first attempt goes out
    wait_until("the buffered changes to be archived", 150, || {
        let s = w.archive.status();
        s.last_seq == 22 && s.shipped_seq == 22
    })
    .await;
    assert_eq!(writer.archive.status().lag_bytes, 0);
    task.abort();

    // every change exactly once, in order
    let mut ranges: Vec<(i64, i64)> = raw
        .list(None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .filter_map(|m| SegmentName::parse(m.location.filename()?))
        .map(|s| (s.first, s.last))
        .collect();
    ranges.sort();
    assert_eq!(ranges.first().map(|r| r.0), Some(1), "{ranges:?}");
    assert_eq!(ranges.last().map(|r| r.1), Some(22), "{ranges:?}");
    for w in ranges.windows(2) {
        assert_eq!(w[1].0, w[0].1 + 1, "gap or duplicate: {ranges:?}");
    }

    let (restored, report) = restore_fresh(
        tmp.path(),
        "restored",
        &dest,
        TargetTime::Latest,
        Some(creds.path()),
    )
    .await
    .unwrap();
    assert_eq!(doc_set(&restored), doc_set(&writer), "{report:?}");
    assert_eq!(report.replayed_changes, 22);
    let _ = Path::new("");
}
