//! `sync`: folders kept in step with their files, through the real engine (real SQLite, keyword
//! search; no model) and over real HTTP for the server's `POST /api/sync`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{TestServer, docs};
use instant_db::engine::{Engine, ModelLoading};
use instant_db::ingest::{
    IngestOptions, NoProgress, SyncOptions, SyncReport, ingest_paths, sync_paths,
};
use instant_db::search::{Mode, SearchRequest};
use serde_json::{Value, json};

fn engine(data: &Path) -> Engine {
    Engine::open(common::config(data), ModelLoading::Skip).unwrap()
}

/// A canonical temporary directory (sources are stored by their real paths).
fn canonical_tempdir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = std::fs::canonicalize(t.path()).unwrap();
    (t, p)
}

fn sync(e: &Engine, roots: &[&Path], dry_run: bool, delete_missing: bool) -> SyncReport {
    let paths: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let opts = SyncOptions {
        dry_run,
        delete_missing,
        ingest: IngestOptions::default(),
    };
    sync_paths(e, &paths, &opts, None, &NoProgress).unwrap()
}

fn found(e: &Engine, word: &str) -> bool {
    !e.search(&SearchRequest {
        query: word.into(),
        mode: Mode::Keyword,
        ..Default::default()
    })
    .unwrap()
    .hits
    .is_empty()
}

fn sources(e: &Engine) -> Vec<String> {
    e.store
        .list_documents(0, 1000)
        .unwrap()
        .into_iter()
        .map(|d| d.source)
        .collect()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn sync_adds_new_files_replaces_changed_ones_skips_unchanged_and_deletes_only_when_asked() {
    let (_d, data) = canonical_tempdir();
    let (_f, dir) = canonical_tempdir();
    let (a, b, c) = (dir.join("a.md"), dir.join("b.md"), dir.join("sub/c.txt"));
    std::fs::write(&a, "# Alpha\n\nThe aardvarkword lives here.").unwrap();
    std::fs::write(&b, "# Beta\n\nThe oldbetaword lives here.").unwrap();
    let e = engine(&data);

    let r = sync(&e, &[&dir], false, false);
    assert_eq!(r.added, vec![s(&a), s(&b)], "{r:?}");
    assert!(r.changed.is_empty() && r.deleted.is_empty() && r.missing.is_empty());
    assert_eq!(r.roots, vec![s(&dir)]);

    // b changes, c is new, a goes
    std::fs::write(&b, "# Beta\n\nThe newbetaword lives here now.").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(&c, "gammaword").unwrap();
    std::fs::remove_file(&a).unwrap();
    let r = sync(&e, &[&dir], false, false);
    assert_eq!(
        (r.added.clone(), r.changed.clone()),
        (vec![s(&c)], vec![s(&b)])
    );
    assert_eq!(r.unchanged, 0);
    // without --delete-missing the document of a stays, listed as missing
    assert_eq!((r.deleted.len(), r.missing.clone()), (0, vec![s(&a)]));
    assert!(found(&e, "aardvarkword"));
    // the replaced document has only its new text
    assert!(found(&e, "newbetaword") && !found(&e, "oldbetaword"));

    let r = sync(&e, &[&dir], false, true);
    assert_eq!(r.deleted, vec![s(&a)], "{r:?}");
    assert!(r.added.is_empty() && r.changed.is_empty() && r.missing.is_empty());
    assert_eq!(r.unchanged, 2);
    assert!(!found(&e, "aardvarkword"));
    assert_eq!(sources(&e), vec![s(&b), s(&c)]);
    // once in step, a sync changes nothing
    let r = sync(&e, &[&dir], false, true);
    assert_eq!(
        (r.added.len(), r.changed.len(), r.deleted.len(), r.unchanged),
        (0, 0, 0, 2)
    );
}

/// Only documents under the given roots are candidates for deletion, compared by path
/// components: `/x/docs` does not cover `/x/docsx`, `/x/docs-old` or the file `/x/docs#1.md`,
/// whose sources all start with the characters `/x/docs`.
#[test]
fn delete_missing_leaves_documents_outside_the_roots_alone_even_siblings_sharing_a_prefix() {
    let (_d, data) = canonical_tempdir();
    let (_f, base) = canonical_tempdir();
    let root = base.join("docs");
    std::fs::create_dir(&root).unwrap();
    let inside = root.join("gone.md");
    std::fs::write(&inside, "insideword").unwrap();
    let mut outside = vec![];
    for (dir, name) in [("docsx", "x.md"), ("docs-old", "o.md"), ("other", "p.md")] {
        std::fs::create_dir(base.join(dir)).unwrap();
        outside.push(base.join(dir).join(name));
    }
    outside.push(base.join("docs#1.md"));
    outside.push(base.join("docs.md"));
    for f in &outside {
        std::fs::write(f, "outsideword").unwrap();
    }
    let e = engine(&data);
    // everything ingested, then every file deleted
    let r = ingest_paths(
        &e,
        std::slice::from_ref(&base),
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.added, 6, "{:?}", r.problems);
    std::fs::remove_file(&inside).unwrap();
    for f in &outside {
        std::fs::remove_file(f).unwrap();
    }
    // the root given in a non-canonical spelling is resolved first
    let spelled = base.join("docs/../docs/.");
    let r = sync(&e, &[&spelled], false, true);
    assert_eq!(r.roots, vec![s(&root)]);
    assert_eq!(r.deleted, vec![s(&inside)], "{r:?}");
    let left = sources(&e);
    assert_eq!(left.len(), 5, "{left:?}");
    for f in &outside {
        assert!(
            left.contains(&s(f)),
            "{} was deleted: {left:?}",
            f.display()
        );
    }
}

#[test]
fn a_mail_attachment_belongs_to_its_file_it_is_never_missing_alone_and_goes_with_it() {
    let (_d, data) = canonical_tempdir();
    let (_f, dir) = canonical_tempdir();
    let mail = dir.join("mail.eml");
    let attached = |body: &str, atts: &[(&str, &str, &[u8])]| docs::eml("Hello", body, atts);
    std::fs::write(
        &mail,
        attached(
            "gerenukbody",
            &[("att.csv", "text/csv", b"k,v\ncapybarattach,1\n")],
        ),
    )
    .unwrap();
    let e = engine(&data);
    let att = format!("{}#att.csv", s(&mail));
    let r = sync(&e, &[&dir], false, true);
    assert_eq!(r.added, vec![s(&mail), att.clone()], "{r:?}");
    // the attachment's source is no file, but its mail is there: nothing is missing
    let r = sync(&e, &[&dir], false, true);
    assert!(r.deleted.is_empty() && r.missing.is_empty(), "{r:?}");
    assert_eq!(r.unchanged, 1);
    let r = sync(&e, &[&dir], true, true);
    assert!(r.deleted.is_empty() && r.missing.is_empty(), "{r:?}");

    std::fs::remove_file(&mail).unwrap();
    let r = sync(&e, &[&dir], false, false);
    assert_eq!(r.missing, vec![s(&mail), att.clone()], "{r:?}");
    let r = sync(&e, &[&dir], false, true);
    assert_eq!(r.deleted, vec![s(&mail), att], "{r:?}");
    assert!(sources(&e).is_empty());
    assert!(!found(&e, "capybarattach"));
}

/// A mail rewritten without one of its attachments: the attachment is part of the mail's
/// content, so replacing the mail removes it (it used to stay searchable for good, its mail
/// being there, so not even `--delete-missing` removed it).
#[test]
fn a_changed_mail_that_lost_an_attachment_loses_its_document() {
    let (_d, data) = canonical_tempdir();
    let (_f, dir) = canonical_tempdir();
    let mail = dir.join("mail.eml");
    let one: &[u8] = b"k,v\nkeptattach,1\n";
    let two: &[u8] = b"k,v\ndroppedattach,1\n";
    std::fs::write(
        &mail,
        docs::eml(
            "Hello",
            "body",
            &[("one.csv", "text/csv", one), ("two.csv", "text/csv", two)],
        ),
    )
    .unwrap();
    let e = engine(&data);
    let r = sync(&e, &[&dir], false, true);
    assert_eq!(r.added.len(), 3, "{r:?}");
    std::fs::write(
        &mail,
        docs::eml("Hello", "new body", &[("one.csv", "text/csv", one)]),
    )
    .unwrap();
    let r = sync(&e, &[&dir], false, true);
    assert_eq!(r.changed, vec![s(&mail)], "{r:?}");
    assert_eq!(sources(&e), vec![s(&mail), format!("{}#one.csv", s(&mail))]);
    assert!(found(&e, "keptattach") && !found(&e, "droppedattach"));
}

#[test]
fn a_dry_run_lists_what_a_sync_would_do_reports_problems_and_changes_nothing() {
    let (_d, data) = canonical_tempdir();
    let (_f, dir) = canonical_tempdir();
    let (keep, edit, gone) = (
        dir.join("keep.md"),
        dir.join("edit.md"),
        dir.join("gone.md"),
    );
    std::fs::write(&keep, "keepword").unwrap();
    std::fs::write(&edit, "editoldword").unwrap();
    std::fs::write(&gone, "goneword").unwrap();
    let e = engine(&data);
    sync(&e, &[&dir], false, false);
    let generation = e.store.generation().unwrap();

    std::fs::write(&edit, "editnewword").unwrap();
    std::fs::remove_file(&gone).unwrap();
    let new = dir.join("new.md");
    std::fs::write(&new, "newword").unwrap();
    // a new file that would fail to parse, and one of a type nothing reads
    std::fs::write(dir.join("broken.docx"), b"PK\x03\x04 not really a zip").unwrap();
    std::fs::write(dir.join("photo.png"), [0x89, b'P', b'N', b'G']).unwrap();

    let plan = sync(&e, &[&dir], true, true);
    assert!(plan.dry_run);
    assert_eq!(plan.added, vec![s(&new)], "{plan:?}");
    assert_eq!(plan.changed, vec![s(&edit)]);
    assert_eq!(plan.unchanged, 1);
    assert_eq!(plan.deleted, vec![s(&gone)]);
    let mut problems: Vec<(String, Option<String>)> = plan
        .problems
        .iter()
        .map(|p| {
            (
                p.source.rsplit('/').next().unwrap().to_string(),
                p.kind.map(|k| k.as_str().to_string()),
            )
        })
        .collect();
    problems.sort();
    assert_eq!(
        problems,
        vec![
            ("broken.docx".into(), Some("corrupt".into())),
            ("photo.png".into(), Some("unsupported".into()))
        ]
    );
    assert_eq!(plan.failed(), 1);
    // nothing was written
    assert_eq!(e.store.generation().unwrap(), generation);
    assert!(found(&e, "goneword") && found(&e, "editoldword"));
    assert!(!found(&e, "newword") && !found(&e, "editnewword"));

    // the real run does what the dry run said
    let done = sync(&e, &[&dir], false, true);
    assert!(!done.dry_run);
    assert_eq!(
        (&done.added, &done.changed, done.unchanged, &done.deleted),
        (&plan.added, &plan.changed, plan.unchanged, &plan.deleted)
    );
    assert_eq!(done.problems.len(), 2);
    assert!(!found(&e, "goneword") && found(&e, "editnewword") && found(&e, "newword"));
}

const READ_KEY: &str = "sync-read-key-0123456789";
const WRITE_KEY: &str = "sync-write-key-0123456789";

/// A server with read and write keys whose `ingest.allowed_roots` is `root` alone.
async fn server(dir: &Path, root: &Path) -> TestServer {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("read"), format!("{READ_KEY}\n")).unwrap();
    std::fs::write(keys.join("write"), format!("{WRITE_KEY}\n")).unwrap();
    let mut cfg = common::config(&dir.join("data"));
    cfg.health.thresholds = common::host_independent_thresholds();
    cfg.auth.keys_dir = Some(keys);
    cfg.ingest.allowed_roots = vec![root.to_path_buf()];
    let engine =
        tokio::task::spawn_blocking(move || Engine::open(cfg, ModelLoading::Skip).unwrap())
            .await
            .unwrap();
    TestServer::start(engine).await
}

async fn post_sync(s: &TestServer, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(s.url("/api/sync")).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sync_needs_the_writer_role_and_refuses_paths_outside_the_allowed_roots() {
    let (_t, base) = canonical_tempdir();
    let root = base.join("shared");
    let sibling = base.join("shared-private");
    for d in [&root, &sibling] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(root.join("a.md"), "sharedword").unwrap();
    std::fs::write(sibling.join("secret.md"), "secretword").unwrap();
    let srv = server(&base.join("server"), &root).await;
    let body = json!({"paths": [root], "delete_missing": true});

    let (status, _) = post_sync(&srv, None, body.clone()).await;
    assert_eq!(status, 401);
    let (status, answer) = post_sync(&srv, Some(READ_KEY), body.clone()).await;
    assert_eq!(status, 403, "{answer}");
    // outside the roots: a sibling sharing the root's prefix, with or without an allowed path
    for paths in [json!([sibling]), json!([root, sibling])] {
        let (status, answer) = post_sync(
            &srv,
            Some(WRITE_KEY),
            json!({ "paths": paths, "dry_run": true }),
        )
        .await;
        assert_eq!(status, 403, "{answer}");
        assert!(answer.to_string().contains("allowed_roots"), "{answer}");
    }
    let (status, _) = post_sync(
        &srv,
        Some(WRITE_KEY),
        json!({"paths": [root.join("../shared-private")]}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_sync(&srv, Some(WRITE_KEY), json!({"paths": []})).await;
    assert_eq!(status, 400);

    let (status, r) = post_sync(
        &srv,
        Some(WRITE_KEY),
        json!({"paths": [root], "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["added"], json!([s(&root.join("a.md"))]));
    let (status, r) = post_sync(&srv, Some(WRITE_KEY), body.clone()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["added"], json!([s(&root.join("a.md"))]));
    std::fs::remove_file(root.join("a.md")).unwrap();
    let (status, r) = post_sync(&srv, Some(WRITE_KEY), body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["deleted"], json!([s(&root.join("a.md"))]), "{r}");

    // the description declares the operation, its body and its 401/403
    let spec = common::get_json(&reqwest::Client::new(), srv.url("/api/openapi.json")).await;
    let op = &spec["paths"]["/api/sync"]["post"];
    for status in ["200", "401", "403"] {
        assert!(op["responses"][status].is_object(), "{op}");
    }
    assert!(spec["components"]["schemas"]["SyncReport"].is_object());
    srv.stop().await;
}

mod watch {
    use super::*;
    use instant_db::ingest::watch::{Changes, apply_changes, changes_of};

    fn opts(delete_missing: bool) -> SyncOptions {
        SyncOptions {
            dry_run: false,
            delete_missing,
            ingest: IngestOptions {
                exclude: vec!["**/drafts/**".into()],
                ..Default::default()
            },
        }
    }

    /// Events are kept only for what a walk of the roots would ingest; a file inside a new
    /// directory goes with the directory's sync.
    #[test]
    fn watched_events_keep_what_a_walk_would_ingest_and_split_present_from_gone() {
        let (_f, root) = canonical_tempdir();
        let (_o, elsewhere) = canonical_tempdir();
        let data = root.join("data");
        let e = Engine::open(common::config(&data), ModelLoading::Skip).unwrap();
        for d in ["new-dir", "drafts", ".git"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        let files = [
            "a.md",
            ".a.md.swp",
            "photo.png",
            "drafts/d.md",
            ".git/HEAD.md",
            "new-dir/n.md",
        ];
        for f in files {
            std::fs::write(root.join(f), "x").unwrap();
        }
        std::fs::write(elsewhere.join("o.md"), "x").unwrap();
        let mut events: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
        events.extend([
            root.join("new-dir"),
            root.join("removed.md"),
            data.join("instant.db-wal.md"),
            elsewhere.join("o.md"),
        ]);
        let changes = changes_of(&e, std::slice::from_ref(&root), &opts(true), events).unwrap();
        assert_eq!(
            changes,
            Changes {
                present: vec![root.join("a.md"), root.join("new-dir")],
                gone: vec![root.join("removed.md")],
            }
        );
        // not recursive: only the top level counts
        let mut flat = opts(true);
        flat.ingest.recursive = Some(false);
        let changes = changes_of(
            &e,
            std::slice::from_ref(&root),
            &flat,
            [root.join("new-dir/n.md"), root.join("a.md")],
        )
        .unwrap();
        assert_eq!(changes.present, vec![root.join("a.md")]);
    }

    #[test]
    fn applied_changes_add_and_replace_and_remove_documents_only_with_delete_missing() {
        let (_d, data) = canonical_tempdir();
        let (_f, root) = canonical_tempdir();
        let e = engine(&data);
        let (a, b) = (root.join("a.md"), root.join("sub/b.md"));
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(&a, "watchalpha").unwrap();
        std::fs::write(&b, "watchbeta").unwrap();
        let roots = [root.clone()];
        let c = changes_of(&e, &roots, &opts(false), [a.clone(), root.join("sub")]).unwrap();
        let r = apply_changes(&e, &c, &opts(false), &NoProgress).unwrap();
        assert_eq!(r.added, vec![s(&a), s(&b)], "{r:?}");
        std::fs::write(&a, "watchgamma").unwrap();
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        let c = changes_of(
            &e,
            &roots,
            &opts(false),
            [a.clone(), b.clone(), root.join("sub")],
        )
        .unwrap();
        assert_eq!(c.gone, vec![root.join("sub"), b.clone()]);
        // without delete_missing the gone directory's document stays
        let r = apply_changes(&e, &c, &opts(false), &NoProgress).unwrap();
        assert_eq!(
            (r.changed.clone(), r.deleted.len()),
            (vec![s(&a)], 0),
            "{r:?}"
        );
        assert!(found(&e, "watchbeta") && found(&e, "watchgamma"));
        let r = apply_changes(&e, &c, &opts(true), &NoProgress).unwrap();
        assert_eq!(r.deleted, vec![s(&b)], "{r:?}");
        assert_eq!(r.unchanged, 1);
        assert!(!found(&e, "watchbeta"));
    }
}

mod cli {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn binary(data: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_instant-db"));
        c.args(["--log-level", "warn", "--data-dir"]).arg(data);
        c
    }

    #[test]
    fn sync_prints_what_it_would_do_and_what_it_did() {
        let (_d, data) = canonical_tempdir();
        let (_f, dir) = canonical_tempdir();
        std::fs::write(dir.join("a.md"), "clialpha").unwrap();
        let out = binary(&data)
            .args(["sync", "--dry-run"])
            .arg(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.starts_with("dry run (nothing changed): 1 to add, 0 to change, 0 unchanged"),
            "{text}"
        );
        assert!(
            text.contains(&format!("  + {}", s(&dir.join("a.md")))),
            "{text}"
        );
        let out = binary(&data)
            .args(["--format", "json", "sync", "--delete-missing"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["added"], json!([s(&dir.join("a.md"))]));
        assert_eq!(r["dry_run"], false);
    }

    /// Polls the database (a second process, reading) until `word` is found or not; on timeout
    /// the last search's error and the watch's own log (`log`) say why.
    fn wait_searchable(data: &Path, log: &Path, word: &str, wanted: bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = binary(data)
                .args(["--format", "json", "search", "--mode", "keyword", word])
                .output()
                .unwrap();
            if out.status.success() {
                let r: Value = serde_json::from_slice(&out.stdout).unwrap();
                let hits = r["hits"].as_array().map_or(0, Vec::len);
                if (hits > 0) == wanted {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{word} never became {}; last search: {} {}; watch log:\n{}",
                if wanted { "searchable" } else { "unsearchable" },
                out.status,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The real binary following a folder: a file written, then changed, then deleted, each
    /// applied while it runs; SIGTERM ends it with exit code 0.
    #[test]
    fn sync_watch_applies_changes_as_they_happen_and_ends_cleanly_on_sigterm() {
        let (_d, data) = canonical_tempdir();
        let (_f, dir) = canonical_tempdir();
        std::fs::write(dir.join("first.md"), "watchfirst").unwrap();
        let log = data.join("watch.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_instant-db"))
            .args(["--log-level", "info", "--log-format", "text", "--data-dir"])
            .arg(&data)
            .args(["sync", "--watch", "--delete-missing"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_searchable(&data, &log, "watchfirst", true);
        let note = dir.join("note.md");
        std::fs::write(&note, "watchnew").unwrap();
        wait_searchable(&data, &log, "watchnew", true);
        std::fs::write(&note, "watchedited").unwrap();
        wait_searchable(&data, &log, "watchedited", true);
        wait_searchable(&data, &log, "watchnew", false);
        std::fs::remove_file(&note).unwrap();
        wait_searchable(&data, &log, "watchedited", false);
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sync --watch did not end after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(status.code(), Some(0));
        // still readable and whole afterwards
        wait_searchable(&data, &log, "watchfirst", true);
    }
}
