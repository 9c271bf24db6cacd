//! The command line as users run it: the real binary, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

fn run(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
        .args(["--log-level", "warn", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn ingest_search_backup_and_restore_through_the_cli() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let corpus = common::demo_corpus();
    // The corpus as it ships, nothing excluded: its own files must not crowd out the answers.
    let out = run(
        a.path(),
        &["--format", "json", "ingest", corpus.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["added"], 13);
    for (question, expected) in common::every_demo_question() {
        let out = run(a.path(), &["--format", "json", "search", &question]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply = json(&out);
        let top = reply["hits"][0]["document"]["source"].as_str().unwrap();
        assert!(top.ends_with(&expected), "{question} → {top}");
    }
    let out = run(a.path(), &["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = run(
        a.path(),
        &[
            "--format",
            "json",
            "backup",
            "--to",
            backups.path().to_str().unwrap(),
            "--id",
            "cli-test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let location = json(&out)["location"].as_str().unwrap().to_string();
    assert!(location.ends_with("cli-test.tar.gz"), "{location}");
    let out = run(
        b.path(),
        &["--format", "json", "restore", "--from", &location],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["documents"], 13);
    // without its .sha256 sidecar the same backup is incomplete: refused, exit 2, nothing changed
    let sidecar = backups.path().join("cli-test.sha256");
    let kept = std::fs::read(&sidecar).unwrap();
    std::fs::remove_file(&sidecar).unwrap();
    let c = tempfile::tempdir().unwrap();
    let out = run(c.path(), &["restore", "--from", &location]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("incomplete") && stderr.contains("restore a complete backup"),
        "{stderr}"
    );
    std::fs::write(&sidecar, kept).unwrap();
    let out = run(
        b.path(),
        &[
            "--format",
            "json",
            "search",
            "What caused the login outage in February?",
            "--mode",
            "keyword",
        ],
    );
    assert!(
        json(&out)["hits"][0]["document"]["source"]
            .as_str()
            .unwrap()
            .ends_with("incident-postmortem-2026-02-outage.md")
    );
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let a = tempfile::tempdir().unwrap();
    let out = run(
        a.path(),
        &["search", "x", "--mode", "keyword", "--filter", "size>"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no value after"));
    let out = run(a.path(), &["search", "  ", "--mode", "keyword"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(a.path(), &["restore", "--from", "ftp://nowhere/x.tar.gz"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(a.path(), &["ingest", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/definitely/not/here"));
}

#[test]
fn a_missing_path_among_others_is_reported_and_exits_1_after_ingesting_the_rest() {
    let a = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("a.md"), "# A\n\nAardvarks dig.").unwrap();
    let out = run(
        a.path(),
        &[
            "--format",
            "json",
            "ingest",
            "/definitely/not/here",
            docs.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(
        (report["added"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["problems"][0]["source"], "/definitely/not/here");
    let out = Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
        .args(["search"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
    let out = Command::new(env!("CARGO_BIN_EXE_instant-db"))
        .env("INSTANT_DB_BACKUP_ALLOWED_ROOTS", std::env::temp_dir())
        .args(["config"])
        .env("INSTANT_DB_EMBEDDING_BATCH_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("embedding.batch_size"));
}

#[test]
fn bench_recall_measures_the_graph_on_an_existing_database_and_unknown_suites_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let corpus = common::demo_corpus();
    let out = run(data.path(), &["ingest", corpus.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        data.path(),
        &[
            "--format",
            "json",
            "bench",
            "--suite",
            "recall",
            "--queries",
            "20",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = &json(&out)["recall_on_stored_embeddings"];
    // The bench measures the database as stored: every chunk the engine holds (what the
    // chunker makes of the demo corpus is the chunker's tests' business, not this one's).
    let stats = json(&run(data.path(), &["--format", "json", "stats"]));
    assert!(stats["chunks"].as_i64().unwrap() > 20, "{stats}");
    assert_eq!(report["chunks"], stats["chunks"], "{report} vs {stats}");
    assert_eq!(report["queries"], 20, "{report}");
    // A graph over fewer than 256 chunks searched with a 256-wide candidate list sees every
    // node: anything short of full recall means the measurement itself is wrong.
    assert!(stats["chunks"].as_i64().unwrap() < 256, "{stats}");
    assert_eq!(report["recall_at_10"]["ef_256"], 1.0, "{report}");

    let out = run(data.path(), &["bench", "--suite", "everything"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("everything") && err.contains("recall"),
        "{err}"
    );
}

/// `restore --bootstrap` as the operator's init container runs it at every start of a new
/// instance's pod: into a fresh volume (with `lost+found`) it restores; at the next start, and
/// over a database the instance has since changed, it keeps what is there.
#[test]
fn a_bootstrap_restores_into_an_empty_data_directory_and_never_over_an_existing_database() {
    let source = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(
            docs.path().join(format!("note-{i}.txt")),
            format!("bootstrap note number {i} about the harbour crane"),
        )
        .unwrap();
    }
    let out = run(
        source.path(),
        &["--format", "json", "ingest", docs.path().to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        source.path(),
        &[
            "--format",
            "json",
            "backup",
            "--to",
            backups.path().to_str().unwrap(),
            "--id",
            "seed",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let location = json(&out)["location"].as_str().unwrap().to_string();

    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir(fresh.path().join("lost+found")).unwrap();
    let bootstrap = |dir: &std::path::Path| {
        run(
            dir,
            &[
                "--format",
                "json",
                "restore",
                "--bootstrap",
                "--from",
                &location,
            ],
        )
    };
    let out = bootstrap(fresh.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["restored"], true, "{report}");
    assert_eq!(report["documents"], 3, "{report}");
    assert!(!fresh.path().join(instant_db::bootstrap::MARKER).exists());

    // the instance lives on (a document added), then the pod restarts
    std::fs::write(
        docs.path().join("extra.txt"),
        "a document written after the bootstrap",
    )
    .unwrap();
    let out = run(
        fresh.path(),
        &[
            "--format",
            "json",
            "ingest",
            docs.path().join("extra.txt").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // as the init container runs it, its report also going to the termination message file
    let message = tempfile::NamedTempFile::new().unwrap();
    let out = run(
        fresh.path(),
        &[
            "--format",
            "json",
            "restore",
            "--bootstrap",
            "--from",
            &location,
            "--report-file",
            message.path().to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["restored"], false, "{report}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(message.path()).unwrap()).unwrap();
    assert_eq!(written, report, "the report file holds the same report");
    assert!(
        report["skipped"]
            .as_str()
            .unwrap()
            .contains("already holds a database"),
        "{report}"
    );
    let stats = json(&run(fresh.path(), &["--format", "json", "stats"]));
    assert_eq!(
        stats["documents"], 4,
        "the document added after the bootstrap is kept: {stats}"
    );

    // a bootstrap cut short (marker still there) restores again at the next start
    std::fs::write(fresh.path().join(instant_db::bootstrap::MARKER), "").unwrap();
    let report = json(&bootstrap(fresh.path()));
    assert_eq!(report["restored"], true, "{report}");
    assert_eq!(report["documents"], 3, "{report}");

    // a missing archive fails (exit 1 or 2, never 0) and leaves the marker for the retry
    let empty = tempfile::tempdir().unwrap();
    let missing = location.replace("seed.tar.gz", "absent.tar.gz");
    let out = run(
        empty.path(),
        &["restore", "--bootstrap", "--from", &missing],
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(empty.path().join(instant_db::bootstrap::MARKER).exists());
    let out = bootstrap(empty.path());
    assert_eq!(json(&out)["restored"], true);
}
