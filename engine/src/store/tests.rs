use super::*;

pub(crate) fn doc(id: &str, source: &str) -> DocumentRecord {
    DocumentRecord {
        id: id.into(),
        source: source.into(),
        title: Some("Title".into()),
        extension: Some("txt".into()),
        mime: Some("text/plain".into()),
        doc_type: "other".into(),
        size_bytes: 10,
        modified_at: None,
        content_hash: "h1".into(),
        char_count: 10,
        word_count: 2,
        line_count: 1,
        chunk_count: 0,
        metadata: serde_json::json!({"team": "core"}),
        format_metadata: serde_json::json!({}),
        ingested_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

pub(crate) fn chunk(text: &str) -> NewChunk {
    NewChunk {
        section_path: vec!["Intro".into()],
        text: text.into(),
        content_start: 0,
        doc_start: 0,
        doc_end: text.len(),
        token_count: 3,
        embedding: Some(vec![1.0, 0.0]),
    }
}

#[test]
fn put_replaces_old_chunks_and_keeps_fts_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let d = doc("d1", "/a.txt");
    let first = store
        .put_document(&d, &[chunk("alpha one"), chunk("alpha two")], "m")
        .unwrap();
    assert_eq!(first.added.len(), 2);
    let second = store.put_document(&d, &[chunk("beta")], "m").unwrap();
    assert_eq!(second.removed_chunk_ids.len(), 2);
    let stats = store.stats().unwrap();
    assert_eq!((stats.documents, stats.chunks, stats.embeddings), (1, 1, 1));
    let report = store.integrity_check().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(store.get_document("d1").unwrap().chunk_count, 1);
}

#[test]
fn a_failed_document_write_leaves_the_previous_version_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let d = doc("d1", "/a.txt");
    store.put_document(&d, &[chunk("old text")], "m").unwrap();
    // A second document claiming the same source violates UNIQUE(source) on its document row,
    // after the transaction already deleted the chunks of that id (none here). The part-way
    // failure after chunks were written is covered by the next test.
    let clash = doc("d2", "/a.txt");
    assert!(
        store
            .put_document(&clash, &[chunk("new text")], "m")
            .is_err()
    );
    let stats = store.stats().unwrap();
    assert_eq!((stats.documents, stats.chunks), (1, 1));
    assert_eq!(store.chunks_of("d1").unwrap()[0].text, "old text");
    assert!(store.integrity_check().unwrap().ok);
}

fn keyword_hits(store: &Store, word: &str) -> i64 {
    store
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?1",
                [word],
                |r| r.get(0),
            )?)
        })
        .unwrap()
}

#[test]
fn a_write_failing_after_some_new_chunks_were_stored_leaves_no_trace_and_the_old_version_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let d = doc("d1", "/a.txt");
    let old: Vec<NewChunk> = ["old alpha", "old bravo"].map(chunk).to_vec();
    store.put_document(&d, &old, "m").unwrap();
    // A real SQLite failure deep inside the write: the third embedding of the new version is
    // refused, after the old chunks were deleted and the document row, three new chunks, three
    // FTS rows and two embeddings of the new version were written in the same transaction.
    store
        .with_writer(|c| {
            Ok(c.execute_batch(
                "CREATE TEMP TRIGGER fail_late BEFORE INSERT ON main.embeddings
                 WHEN (SELECT count(*) FROM main.embeddings e JOIN main.chunks k ON k.id = e.chunk_id
                       WHERE k.text LIKE 'new %') >= 2
                 BEGIN SELECT RAISE(ABORT, 'injected failure after two new embeddings'); END;",
            )?)
        })
        .unwrap();
    let mut newer = d.clone();
    newer.content_hash = "h2".into();
    newer.title = Some("Newer".into());
    let new: Vec<NewChunk> = ["new charlie", "new delta", "new echo", "new foxtrot"]
        .map(chunk)
        .to_vec();
    let err = store
        .put_document(&newer, &new, "m")
        .unwrap_err()
        .to_string();
    // The message proves the failure struck where intended, with new rows already written.
    assert!(
        err.contains("injected failure after two new embeddings"),
        "{err}"
    );
    store
        .with_writer(|c| Ok(c.execute_batch("DROP TRIGGER temp.fail_late")?))
        .unwrap();
    // Checked on a fresh connection too, so nothing is answered from the writer's cache.
    drop(store);
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let kept = store.get_document("d1").unwrap();
    assert_eq!(
        (
            kept.content_hash.as_str(),
            kept.title.as_deref(),
            kept.chunk_count
        ),
        ("h1", Some("Title"), 2)
    );
    let texts: Vec<String> = store
        .chunks_of("d1")
        .unwrap()
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert_eq!(texts, ["old alpha", "old bravo"]);
    let stats = store.stats().unwrap();
    assert_eq!((stats.documents, stats.chunks, stats.embeddings), (1, 2, 2));
    assert_eq!(keyword_hits(&store, "bravo"), 1);
    for word in ["charlie", "delta", "echo", "new"] {
        assert_eq!(
            keyword_hits(&store, word),
            0,
            "{word} of the failed write is visible"
        );
    }
    let report = store.integrity_check().unwrap();
    assert!(report.ok, "{:?}", report.problems);
    // The same write goes through once the cause is gone.
    store.put_document(&newer, &new, "m").unwrap();
    assert_eq!(keyword_hits(&store, "charlie"), 1);
    assert_eq!(keyword_hits(&store, "bravo"), 0);
}

#[test]
fn delete_removes_chunks_embeddings_and_fts_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .put_document(&doc("d1", "/a.txt"), &[chunk("gone soon")], "m")
        .unwrap();
    let ids = store.delete_document("d1").unwrap();
    assert_eq!(ids.len(), 1);
    let r = store.integrity_check().unwrap();
    assert!(r.ok && r.fts_rows == 0 && r.embeddings == 0, "{r:?}");
    assert!(matches!(
        store.delete_document("d1"),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn fts_drift_is_reported_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .put_document(&doc("d1", "/a.txt"), &[chunk("some words")], "m")
        .unwrap();
    store
        .with_writer(|c| Ok(c.execute("DELETE FROM chunks_fts", [])?))
        .unwrap();
    let r = store.integrity_check().unwrap();
    assert!(!r.ok);
    assert!(
        r.problems.iter().any(|p| p.contains("full-text")),
        "{:?}",
        r.problems
    );
    store.rebuild_fts().unwrap();
    let after = store.integrity_check().unwrap();
    assert!(after.ok, "{:?}", after.problems);
}

#[test]
fn generation_increases_with_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    let g0 = store.generation().unwrap();
    store
        .put_document(&doc("d1", "/a.txt"), &[chunk("x")], "m")
        .unwrap();
    assert!(store.generation().unwrap() > g0);
}

#[test]
fn vectors_round_trip_through_blobs() {
    let v = vec![0.5f32, -1.25, 3.0];
    assert_eq!(blob_to_vector(&vector_to_blob(&v)), v);
}

#[test]
fn cached_counts_follow_every_write_and_file_swap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let store = Store::open(&path).unwrap();
    let counts = |s: &Store| {
        let st = s.stats().unwrap();
        (st.documents, st.chunks, st.embeddings)
    };
    assert_eq!(counts(&store), (0, 0, 0));
    store
        .put_document(&doc("d1", "/a.txt"), &[chunk("one"), chunk("two")], "m")
        .unwrap();
    assert_eq!(counts(&store), (1, 2, 2));
    assert_eq!(counts(&store), (1, 2, 2));
    store
        .put_document(&doc("d2", "/b.txt"), &[chunk("three")], "m")
        .unwrap();
    assert_eq!(counts(&store), (2, 3, 3));
    store.delete_document("d1").unwrap();
    assert_eq!(counts(&store), (1, 1, 1));

    // Another file with the same generation number: the swap alone must invalidate the counts.
    let other_path = dir.path().join("other.sqlite");
    {
        let other = Store::open(&other_path).unwrap();
        other
            .put_document(
                &doc("x", "/x.txt"),
                &[chunk("a"), chunk("b"), chunk("c")],
                "m",
            )
            .unwrap();
        let generation = store.generation().unwrap().to_string();
        other
            .with_writer(|c| {
                c.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'generation'",
                    [&generation],
                )?;
                Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
            })
            .unwrap();
        assert_eq!(other.generation().unwrap(), store.generation().unwrap());
    }
    store.checkpoint().unwrap();
    store
        .with_file_replaced(|| {
            std::fs::copy(&other_path, &path).unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(counts(&store), (1, 3, 3));
}

#[test]
fn writes_are_refused_once_closed_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
    store
        .put_document(&doc("d1", "/a.txt"), &[chunk("one")], "m")
        .unwrap();
    store.close_writes().unwrap();
    let e = store
        .put_document(&doc("d2", "/b.txt"), &[chunk("two")], "m")
        .unwrap_err();
    assert_eq!(e.code(), "unavailable");
    assert_eq!(store.stats().unwrap().documents, 1);
}

#[test]
fn the_full_check_waits_for_a_long_write_instead_of_colliding_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&dir.path().join("db.sqlite")).unwrap());
    store
        .put_document(&doc("d1", "/a.txt"), &[chunk("alpha")], "m")
        .unwrap();
    // A write holding the write lock longer than the 5 s busy timeout (a large ingest
    // transaction); the FTS5 check must neither fail nor make the write fail.
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.write(|tx| {
                tx.execute("UPDATE documents SET title = 'x'", [])?;
                started_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5500));
                Ok(())
            })
        })
    };
    started_rx.recv().unwrap();
    let report = store.integrity_check().unwrap();
    writer.join().unwrap().unwrap();
    assert!(report.ok, "{:?}", report.problems);
}

/// Processes opening a new data directory at once (a `sync --watch` and a `search` started
/// together) each migrated the empty file: all but one failed with "table documents already
/// exists". The migration now takes the write lock first and looks at the version again.
#[test]
fn stores_opened_at_once_on_a_new_file_all_open_and_migrate_it_once() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("instant.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let opened: Vec<std::result::Result<(), String>> = (0..4)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(drop).map_err(|e| e.to_string())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        for o in &opened {
            assert!(o.is_ok(), "round {round}: {opened:?}");
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.stats().unwrap().schema_version,
            schema::latest_version()
        );
    }
}
