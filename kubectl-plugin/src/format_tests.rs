//! Unit tests of the screens, from objects.
#![allow(clippy::unwrap_used)]

use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn ages_read_like_kubectls() {
    let now = t("2026-12-01T10:00:00Z");
    assert_eq!(age(now, t("2026-12-01T09:59:15Z")), "45s");
    assert_eq!(age(now, t("2026-12-01T09:30:00Z")), "30m");
    assert_eq!(age(now, t("2026-12-01T04:00:00Z")), "6h");
    assert_eq!(age(now, t("2026-11-26T10:00:00Z")), "5d");
    // A clock a little ahead of ours is "0s", not negative.
    assert_eq!(age(now, t("2026-12-01T10:00:05Z")), "0s");
}

#[test]
fn sizes_are_binary_units() {
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(3_500_000), "3.3 MiB");
    assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
}

#[test]
fn tables_align_columns_and_leave_the_last_unpadded() {
    let out = table(
        &["NAME", "PHASE", "MESSAGE"],
        &[
            vec!["a".into(), "Completed".into(), "".into()],
            vec![
                "longer-name".into(),
                "Failed".into(),
                "bucket missing".into(),
            ],
        ],
    );
    assert_eq!(
        out,
        "  NAME         PHASE      MESSAGE\n  a            Completed\n  longer-name  Failed     bucket missing\n"
    );
}

#[test]
fn progress_lines_show_phase_and_what_the_status_says() {
    assert_eq!(
        progress_line(None, None, None),
        "waiting for the operator to pick it up"
    );
    assert_eq!(
        progress_line(
            Some(OperationPhase::Pending),
            Some("engine pod docs-0 is not running yet"),
            None
        ),
        "Pending: engine pod docs-0 is not running yet"
    );
    assert_eq!(
        progress_line(Some(OperationPhase::Running), Some(""), None),
        "Running"
    );
    assert_eq!(
        progress_line(
            Some(OperationPhase::Failed),
            Some("old"),
            Some("access denied")
        ),
        "Failed: access denied"
    );
}

#[test]
fn recent_events_keeps_the_newest_oldest_first() {
    let ev = |reason: &str, at: &str| -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": reason}, "eventTime": at, "reason": reason
        }))
        .unwrap()
    };
    let events = vec![
        ev("c", "2026-12-01T10:03:00.000000Z"),
        ev("a", "2026-12-01T10:01:00.000000Z"),
        ev("b", "2026-12-01T10:02:00.000000Z"),
    ];
    let kept: Vec<String> = recent_events(events, 2)
        .into_iter()
        .map(|e| e.reason.unwrap())
        .collect();
    assert_eq!(kept, ["b", "c"]);
}

#[test]
fn the_status_screen_of_a_new_instance_says_the_operator_has_not_written_status() {
    let db: InstantDb = serde_json::from_value(serde_json::json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "docs", "namespace": "search", "generation": 1},
        "spec": {"storage": {"size": "1Gi"}}
    }))
    .unwrap();
    let screen = status_screen(
        t("2026-12-01T10:00:00Z"),
        &StatusView {
            db: &db,
            pod: None,
            pvc: None,
            backups: vec![],
            restore: None,
            events: &[],
        },
    );
    for want in [
        "InstantDb search/docs: (no status yet) — the operator has not written status yet (is it running?)",
        "Conditions:\n  none yet",
        "Pod docs-0: not found",
        "Data: PVC data-docs-0 not found (spec.storage.size 1Gi)",
        "Documents: -",
        "none; take one with `kubectl instantdb backup NAME`",
        "Recovery: autoRestore off; integrity check not reported yet",
        "Events:\n  none",
    ] {
        assert!(screen.contains(want), "missing {want:?} in:\n{screen}");
    }
}

#[test]
fn search_hits_show_rank_title_source_score_and_the_highlight() {
    let answer = serde_json::json!({
        "query": "retention", "mode": "keyword", "took_ms": 1.25, "degraded": null,
        "hits": [{
            "rank": 1, "score": 2.5,
            "document": {"id": "d1", "source": "docs/backup.md", "title": "Backups", "doc_type": "md", "metadata": {}},
            "chunk": {"id": 1, "index": 0, "section_path": [], "text": "full chunk text"},
            "highlights": ["keep the last 7 <mark>retention</mark>\n  backups"]
        }]
    });
    assert_eq!(
        search_hits(&answer),
        "1. Backups  [docs/backup.md]  score 2.500\n   keep the last 7 <mark>retention</mark> backups\n1 hit(s) in 1.2 ms\n"
    );
    let none = serde_json::json!({"hits": [], "degraded": "the embedding model is not loaded: keyword search only"});
    assert_eq!(
        search_hits(&none),
        "note: the embedding model is not loaded: keyword search only\nno hits\n"
    );
}

#[test]
fn an_integrity_report_lists_problems_and_advice() {
    let (ok, text) = integrity_report(&serde_json::json!({
        "ok": false, "problems": ["fts index misses 2 chunks"], "documents": 3, "chunks": 9,
        "fts_rows": 7, "embeddings": 9, "source_damaged": false,
        "advice": "run instant-db repair"
    }));
    assert!(!ok);
    assert_eq!(
        text,
        "integrity check FAILED: 3 documents, 9 chunks, 7 keyword rows, 9 embeddings\n  problem: fts index misses 2 chunks\n  advice: run instant-db repair\n"
    );
}

#[test]
fn the_status_screen_shows_the_recovery_window_of_an_archived_instance() {
    let db: InstantDb = serde_json::from_value(serde_json::json!({
        "apiVersion": "instantdb.io/v1alpha1", "kind": "InstantDb",
        "metadata": {"name": "docs", "namespace": "search", "generation": 1},
        "spec": {"storage": {"size": "1Gi"}},
        "status": {"observedGeneration": 1, "phase": "Running",
            "firstRecoverabilityPoint": "2026-12-01T03:00:00Z",
            "lastArchivedTime": "2026-12-01T09:59:57Z",
            "conditions": [{"type": "ContinuousArchiving", "status": "True", "reason": "Archiving",
                "message": "every change reaches s3://b/search/docs within 5s (InstantDbBackupPolicy daily)",
                "lastTransitionTime": "2026-12-01T03:00:00Z"}]}
    }))
    .unwrap();
    let view = |db| StatusView {
        db,
        pod: None,
        pvc: None,
        backups: vec![],
        restore: None,
        events: &[],
    };
    let screen = status_screen(t("2026-12-01T10:00:00Z"), &view(&db));
    let want = "continuous archiving ok (Archiving): recovery window 2026-12-01T03:00:00Z .. 2026-12-01T09:59:57Z (last change archived 3s ago)";
    assert!(screen.contains(want), "missing {want:?} in:\n{screen}");
    assert!(screen.contains("within 5s"), "{screen}");
    // no archiving: no line
    let mut plain = db.clone();
    plain.status.as_mut().unwrap().conditions.clear();
    let screen = status_screen(t("2026-12-01T10:00:00Z"), &view(&plain));
    assert!(!screen.contains("continuous archiving"), "{screen}");
}
