//! Walking inputs: what is taken, what is skipped, and that one bad file never stops the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use instant_db::engine::{Engine, ModelLoading};
use instant_db::ingest::{FileOutcome, IngestOptions, NoProgress, ingest_paths};

fn engine(data: &std::path::Path) -> Engine {
    let mut cfg = common::config(data);
    cfg.ingest.max_file_bytes = 2048;
    // No model: these tests are about walking and parsing, not vectors.
    Engine::open(cfg, ModelLoading::Skip).unwrap()
}

#[test]
fn walking_skips_hidden_excluded_oversized_and_unsupported_files_and_survives_bad_ones() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("docs/deep/deeper")).unwrap();
    std::fs::create_dir_all(r.join(".git")).unwrap();
    std::fs::create_dir_all(r.join("build")).unwrap();
    std::fs::write(r.join("docs/a.md"), "# A\n\nalpha").unwrap();
    std::fs::write(r.join("docs/deep/deeper/b.txt"), "bravo").unwrap();
    std::fs::write(r.join("docs/.hidden.md"), "# hidden").unwrap();
    std::fs::write(r.join(".git/config.txt"), "hidden dir").unwrap();
    std::fs::write(r.join("build/out.txt"), "excluded").unwrap();
    std::fs::write(r.join("docs/big.txt"), "x ".repeat(2000)).unwrap();
    std::fs::write(r.join("docs/broken.json"), "{\"a\": ").unwrap();
    std::fs::write(r.join("docs/image.png"), [0u8, 1, 2]).unwrap();
    std::os::unix::fs::symlink(r.join("docs"), r.join("docs/deep/loop")).unwrap();
    let e = engine(data.path());
    let opts = IngestOptions {
        exclude: vec!["**/build/**".into()],
        ..Default::default()
    };
    let report = ingest_paths(&e, &[r.to_path_buf()], &opts, &NoProgress).unwrap();
    let added: Vec<&str> = report
        .files
        .iter()
        .filter(|f| f.outcome == FileOutcome::Added)
        .map(|f| f.source.as_str())
        .collect();
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(
        added.iter().any(|s| s.ends_with("docs/a.md"))
            && added.iter().any(|s| s.ends_with("b.txt"))
    );
    let problem = |needle: &str| {
        report
            .problems
            .iter()
            .find(|p| p.source.contains(needle))
            .map(|p| (p.outcome.clone(), p.reason.clone().unwrap_or_default()))
    };
    let (o, why) = problem("big.txt").expect("oversized file reported");
    assert_eq!(o, FileOutcome::Skipped);
    assert!(why.contains("max_file_bytes"), "{why}");
    let (o, why) = problem("broken.json").expect("broken file reported");
    assert_eq!(o, FileOutcome::Failed);
    assert!(why.contains("line 1"), "{why}");
    // An unsupported file is reported with its type, never dropped silently.
    let (o, why) = problem("image.png").expect("unsupported file reported");
    assert_eq!(o, FileOutcome::Skipped);
    assert!(why.contains("unsupported file type `.png`"), "{why}");
    let (_, why) = problem("loop").expect("symlink loop reported");
    assert!(why.contains("loop"), "{why}");
    assert!(report.files.iter().all(|f| !f.source.contains(".hidden")
        && !f.source.contains(".git")
        && !f.source.contains("build/")
        && !f.source.ends_with(".png")));
    // Named explicitly, a hidden file is taken.
    let report = ingest_paths(
        &e,
        &[r.join("docs/.hidden.md")],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.added, 1);
    // Not recursive: only the top level.
    let data2 = tempfile::tempdir().unwrap();
    let e2 = engine(data2.path());
    let flat = IngestOptions {
        recursive: Some(false),
        ..Default::default()
    };
    let report = ingest_paths(&e2, &[r.join("docs")], &flat, &NoProgress).unwrap();
    assert_eq!(report.added, 1, "{:?}", report.files);
}

#[test]
fn a_missing_path_is_reported_and_the_other_paths_are_still_ingested() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.md"), "# A\n\nalpha").unwrap();
    let e = engine(data.path());
    let missing = root.path().join("no-such-dir");
    let report = ingest_paths(
        &e,
        &[missing.clone(), root.path().to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!((report.added, report.failed), (1, 1), "{report:?}");
    let p = &report.problems[0];
    assert_eq!(p.outcome, FileOutcome::Failed);
    assert_eq!(p.source, missing.display().to_string());
    assert!(
        p.reason.as_deref().unwrap().contains("cannot read"),
        "{p:?}"
    );
}

#[test]
fn only_missing_paths_or_a_bad_exclude_pattern_is_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let e = engine(data.path());
    let err = ingest_paths(
        &e,
        &["/no/such/path".into(), "/no/such/other".into()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let msg = err.to_string();
    assert!(
        msg.contains("/no/such/path") && msg.contains("/no/such/other"),
        "{msg}"
    );
    let opts = IngestOptions {
        exclude: vec!["[".into()],
        ..Default::default()
    };
    let err = ingest_paths(&e, &[data.path().to_path_buf()], &opts, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("exclude pattern"), "{err}");
}

#[test]
fn a_database_write_failure_stops_the_ingest_with_advice_and_keeps_what_was_stored() {
    let data = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c", "d"] {
        std::fs::write(
            root.path().join(format!("{name}.md")),
            format!("# {name}\n\nword{name} appears here."),
        )
        .unwrap();
    }
    let e = engine(data.path());
    // A real SQLite failure in the middle of the run: the database refuses `c.md`.
    let db = rusqlite::Connection::open(e.config.db_path()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_c BEFORE INSERT ON documents WHEN NEW.source LIKE '%/c.md'
         BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;",
    )
    .unwrap();
    let report = ingest_paths(
        &e,
        &[root.path().to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!((report.added, report.failed), (2, 1), "{report:?}");
    let failed = &report.problems[0];
    assert!(failed.source.ends_with("c.md"), "{failed:?}");
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap()
            .contains("simulated write failure"),
        "{failed:?}"
    );
    let stopped = report
        .stopped
        .as_deref()
        .expect("the report says it stopped");
    assert!(stopped.contains("run the same ingest again"), "{stopped}");
    assert!(
        stopped.contains("1 of 4 inputs were not reached"),
        "{stopped}"
    );
    assert!(!report.files.iter().any(|f| f.source.ends_with("d.md")));
    // What was acknowledged is stored and searchable; `c.md` left nothing behind.
    for (word, hits) in [("worda", 1), ("wordb", 1), ("wordc", 0)] {
        let resp = e
            .search(&instant_db::search::SearchRequest {
                query: word.into(),
                mode: instant_db::search::Mode::Keyword,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(resp.hits.len(), hits, "{word}");
    }
    // Once the cause is gone, running the same ingest again completes it.
    db.execute_batch("DROP TRIGGER refuse_c").unwrap();
    let again = ingest_paths(
        &e,
        &[root.path().to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(
        (again.added, again.unchanged, again.failed),
        (2, 2, 0),
        "{again:?}"
    );
    assert!(again.stopped.is_none());
}
