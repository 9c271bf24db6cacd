//! Every supported binary and office format, made in the test (`common::docs`), parsed through
//! the registry and ingested through the real engine (real SQLite, keyword search; no model).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::docs;
use instant_db::engine::{Engine, ModelLoading};
use instant_db::ingest::{FileOutcome, IngestOptions, NoProgress, ProblemKind, ingest_paths};
use instant_db::parse::{BlockKind, ParseError, ParsedDocument, ParserRegistry};

fn parse(name: &str, bytes: &[u8]) -> ParsedDocument {
    ParserRegistry::default()
        .parse_path(Path::new(name), bytes)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn has(d: &ParsedDocument, path: &[&str], text: &str) -> bool {
    d.blocks
        .iter()
        .any(|b| b.section_path == path && b.text.contains(text))
}

#[test]
fn pdf_pages_become_sections_and_a_password_is_an_encrypted_error() {
    let d = parse(
        "r.pdf",
        &docs::pdf(
            "Annual report",
            &[&["Revenue grew", "in the north"], &["Costs fell"]],
        ),
    );
    assert_eq!(d.title.as_deref(), Some("Annual report"));
    assert!(has(&d, &["Page 1"], "Revenue grew"), "{:?}", d.blocks);
    assert!(has(&d, &["Page 2"], "Costs fell"), "{:?}", d.blocks);
    let e = ParserRegistry::default()
        .parse_path(Path::new("s.pdf"), &docs::encrypted_pdf())
        .unwrap_err();
    assert!(matches!(e, ParseError::Encrypted { .. }), "{e:?}");
    let e = ParserRegistry::default()
        .parse_path(Path::new("c.pdf"), b"%PDF-1.5 garbage")
        .unwrap_err();
    assert!(matches!(e, ParseError::Corrupt { .. }), "{e:?}");
}

#[test]
fn docx_headings_are_sections_and_tables_rows() {
    let d = parse(
        "a.docx",
        &docs::docx(
            "Runbook",
            &[
                (Some("Heading1"), "Failover"),
                (None, "Promote the replica first."),
                (Some("ListParagraph"), "check lag"),
            ],
            &[&["host", "role"], &["db1", "primary"]],
        ),
    );
    assert_eq!(d.title.as_deref(), Some("Runbook"));
    assert!(has(&d, &["Failover"], "Promote the replica first."));
    assert!(
        d.blocks
            .iter()
            .any(|b| b.kind == BlockKind::ListItem && b.text == "check lag")
    );
    assert!(has(&d, &["Failover"], "db1 | primary"));
    assert_eq!(
        d.metadata.get("author"),
        Some(&serde_json::json!("Ada Lovelace"))
    );
}

#[test]
fn pptx_slides_keep_presentation_order_and_speaker_notes() {
    let d = parse(
        "p.pptx",
        &docs::pptx(&[
            ("Welcome", "Agenda for today", Some("Greet the board")),
            ("Numbers", "Churn is down", None),
        ]),
    );
    let headings: Vec<&str> = d
        .blocks
        .iter()
        .filter(|b| b.kind == BlockKind::Heading)
        .map(|b| b.text.as_str())
        .collect();
    assert_eq!(headings, ["Slide 1: Welcome", "Slide 2: Numbers"]);
    assert!(has(&d, &["Slide 1: Welcome"], "Agenda for today"));
    assert!(has(&d, &["Slide 1: Welcome", "Notes"], "Greet the board"));
    assert!(has(&d, &["Slide 2: Numbers"], "Churn is down"));
    // the slide number placeholder is not text
    assert!(!d.full_text().contains("\n\n2\n\n") && !d.blocks.iter().any(|b| b.text == "1"));
}

#[test]
fn spreadsheets_give_sheets_as_sections_and_rows_as_column_value_records() {
    let rows: &[&[&str]] = &[&["region", "sales"], &["north", "120"], &["south", "80"]];
    for (name, bytes) in [
        ("s.xlsx", docs::xlsx(&[("Q1", rows), ("Empty", &[])])),
        ("s.ods", docs::ods(&[("Q1", rows)])),
    ] {
        let d = parse(name, &bytes);
        assert!(
            has(&d, &["Q1"], "region: north; sales: 120"),
            "{name}: {:?}",
            d.blocks
        );
        assert!(has(&d, &["Q1"], "region: south; sales: 80"), "{name}");
    }
    let e = ParserRegistry::default()
        .parse_path(Path::new("x.xlsx"), b"PK\x03\x04 broken")
        .unwrap_err();
    assert!(matches!(e, ParseError::Corrupt { .. }), "{e:?}");
}

#[test]
fn odt_outline_levels_and_odp_pages_with_notes() {
    let d = parse(
        "g.odt",
        &docs::odt(
            &[(1, "Setup"), (0, "Install the agent."), (2, "Linux")],
            false,
        ),
    );
    assert_eq!(d.title.as_deref(), Some("Field guide"));
    assert!(has(&d, &["Setup"], "Install the agent."));
    assert!(
        d.blocks
            .iter()
            .any(|b| b.section_path == ["Setup", "Linux"])
    );
    assert!(d.blocks.iter().any(|b| b.text == "first  item"));
    let e = ParserRegistry::default()
        .parse_path(Path::new("g.odt"), &docs::odt(&[(0, "x")], true))
        .unwrap_err();
    assert!(matches!(e, ParseError::Encrypted { .. }), "{e:?}");
    let d = parse(
        "t.odp",
        &docs::odp(&[("Roadmap", "Ship sync", "Mention the beta")]),
    );
    assert!(
        has(&d, &["Slide 1: Roadmap"], "Ship sync"),
        "{:?}",
        d.blocks
    );
    assert!(has(&d, &["Slide 1: Roadmap", "Notes"], "Mention the beta"));
}

#[test]
fn rtf_epub_notebook_and_code() {
    let d = parse(
        "n.rtf",
        br"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard First {\b bold} para.\par Second para.\par}",
    );
    assert!(
        d.blocks.iter().any(|b| b.text == "First bold para."),
        "{:?}",
        d.blocks
    );
    assert!(d.blocks.iter().any(|b| b.text == "Second para."));
    let d = parse(
        "b.epub",
        &docs::epub(
            "The Book",
            &[("Beginnings", "It was dark."), ("Endings", "It was light.")],
        ),
    );
    assert_eq!(d.title.as_deref(), Some("The Book"));
    assert!(has(&d, &["Beginnings"], "It was dark."), "{:?}", d.blocks);
    assert!(has(&d, &["Endings"], "It was light."));
    let nb = docs::notebook("Analysis", "print(total)", "42 rows");
    let d = parse("a.ipynb", nb.as_bytes());
    assert!(has(&d, &["Analysis"], "print(total)"), "{:?}", d.blocks);
    assert!(
        !d.full_text().contains("42 rows"),
        "outputs are off by default"
    );
    let with = instant_db::parse::ParserRegistry::with_options(instant_db::parse::ParseOptions {
        notebook_outputs: true,
    });
    let d = with
        .parse_path(Path::new("a.ipynb"), nb.as_bytes())
        .unwrap();
    assert!(d.full_text().contains("42 rows"));
    let src = "use std::io;\n\n/// Adds.\nfn add(a: i32) -> i32 {\n    a + 1\n}\n\npub struct Point {\n    x: i32,\n}\n";
    let d = parse("m.rs", src.as_bytes());
    assert!(has(&d, &[], "use std::io;"));
    assert!(
        has(&d, &["fn add(a: i32) -> i32"], "/// Adds.\nfn add"),
        "{:?}",
        d.blocks
    );
    assert!(has(&d, &["pub struct Point"], "x: i32"));
    let d = parse(
        "m.py",
        b"import os\n\n\ndef run():\n    pass\n\n\nclass A:\n    def m(self):\n        pass\n",
    );
    assert!(has(&d, &["def run()"], "pass"), "{:?}", d.blocks);
    assert!(has(&d, &["class A"], "def m(self)"));
}

#[test]
fn eml_headers_are_metadata_and_attachments_are_listed_and_handed_over() {
    let bytes = docs::eml(
        "Q3 numbers",
        "Hi Bob,\n\nthe figures are attached.",
        &[
            ("figures.csv", "text/csv", b"k,v\nmargin,12\n"),
            ("logo.png", "image/png", &[1, 2, 3]),
        ],
    );
    let d = parse("m.eml", bytes.as_bytes());
    assert_eq!(d.title.as_deref(), Some("Q3 numbers"));
    assert_eq!(
        d.metadata.get("from"),
        Some(&serde_json::json!("Alice Example <alice@example.com>"))
    );
    assert!(d.full_text().contains("the figures are attached."));
    assert!(d.full_text().contains("Attachments: figures.csv (text/csv"));
    let names: Vec<&str> = d.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["figures.csv", "logo.png"]);
    let mbox = format!(
        "From alice@example.com Tue Dec  1 10:00:00 2026\n{}\nFrom bob@example.com Tue Dec  1 11:00:00 2026\n{}",
        docs::eml("First", "one", &[]).replace("\r\n", "\n"),
        docs::eml("Second", "two", &[]).replace("\r\n", "\n")
    );
    let d = parse("box.mbox", mbox.as_bytes());
    assert_eq!(d.metadata.get("message_count"), Some(&serde_json::json!(2)));
    assert!(
        d.blocks
            .iter()
            .any(|b| b.section_path[0].contains("Second") && b.text == "two"),
        "{:?}",
        d.blocks
    );
}

#[test]
fn the_registry_reads_at_least_24_extensions() {
    let exts = ParserRegistry::default().extensions();
    for e in [
        "pdf", "docx", "pptx", "xlsx", "xls", "ods", "odt", "odp", "rtf", "epub", "eml", "mbox",
        "ipynb", "rs", "py", "js", "ts", "go", "java", "c", "h", "cpp", "rb", "sh",
    ] {
        assert!(exts.contains(&e), "{e} missing");
    }
    assert!(exts.len() >= 24);
}

#[test]
fn a_folder_of_every_format_ingests_with_searchable_text_and_reports_what_it_skipped() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = |name: &str, bytes: &[u8]| std::fs::write(d.join(name), bytes).unwrap();
    w(
        "report.pdf",
        &docs::pdf("Report", &[&["zebracrossing revenue"]]),
    );
    w(
        "runbook.docx",
        &docs::docx(
            "Runbook",
            &[
                (Some("Heading1"), "Failover"),
                (None, "quokkaflip procedure"),
            ],
            &[],
        ),
    );
    w(
        "deck.pptx",
        &docs::pptx(&[("Intro", "narwhalpitch slide", Some("okapinote"))]),
    );
    w(
        "sales.xlsx",
        &docs::xlsx(&[("Q1", &[&["region", "sales"], &["tapirland", "5"]])]),
    );
    w(
        "sales.ods",
        &docs::ods(&[("Q2", &[&["region"], &["axolotlia"]])]),
    );
    w(
        "guide.odt",
        &docs::odt(&[(1, "Setup"), (0, "lemurstep install")], false),
    );
    w(
        "talk.odp",
        &docs::odp(&[("Plan", "wombatplan", "ibexnote")]),
    );
    w("memo.rtf", br"{\rtf1\ansi\pard marmosetmemo text\par}");
    w(
        "book.epub",
        &docs::epub("Book", &[("One", "pangolinchapter text")]),
    );
    w(
        "mail.eml",
        docs::eml(
            "Hello",
            "gerenukbody",
            &[("att.csv", "text/csv", b"k,v\ncapybarattach,1\n")],
        )
        .as_bytes(),
    );
    w(
        "box.mbox",
        format!(
            "From a@b Tue Dec  1 10:00:00 2026\n{}",
            docs::eml("Box", "dugongbox", &[]).replace("\r\n", "\n")
        )
        .as_bytes(),
    );
    w(
        "nb.ipynb",
        docs::notebook("Notes", "x = 'kinkajoucode'", "").as_bytes(),
    );
    w("lib.rs", b"fn meerkatfn() {}\n");
    w("tool.py", b"def fossafn():\n    pass\n");
    // what must be skipped, each with its reason
    w("photo.png", &[0x89, b'P', b'N', b'G']);
    w("locked.pdf", &docs::encrypted_pdf());
    w("broken.docx", b"PK\x03\x04 not really a zip");
    let e = Engine::open(common::config(data.path()), ModelLoading::Skip).unwrap();
    let report = ingest_paths(
        &e,
        &[d.to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let kind_of = |name: &str| {
        report
            .problems
            .iter()
            .find(|p| p.source.ends_with(name))
            .map(|p| {
                (
                    p.kind,
                    p.outcome.clone(),
                    p.reason.clone().unwrap_or_default(),
                )
            })
    };
    let (k, o, why) = kind_of("photo.png").expect("png reported");
    assert_eq!(
        (k, o),
        (Some(ProblemKind::Unsupported), FileOutcome::Skipped)
    );
    assert!(why.contains(".png"), "{why}");
    let (k, _, why) = kind_of("locked.pdf").expect("encrypted pdf reported");
    assert_eq!(k, Some(ProblemKind::Encrypted), "{why}");
    assert!(why.contains("password"), "{why}");
    let (k, _, why) = kind_of("broken.docx").expect("corrupt docx reported");
    assert_eq!(k, Some(ProblemKind::Corrupt), "{why}");
    assert_eq!(report.added, 15, "{:#?}", report.problems); // 14 files + the csv attachment
    for word in [
        "zebracrossing",
        "quokkaflip",
        "narwhalpitch",
        "okapinote",
        "tapirland",
        "axolotlia",
        "lemurstep",
        "wombatplan",
        "ibexnote",
        "marmosetmemo",
        "pangolinchapter",
        "gerenukbody",
        "capybarattach",
        "dugongbox",
        "kinkajoucode",
        "meerkatfn",
        "fossafn",
    ] {
        let resp = e
            .search(&instant_db::search::SearchRequest {
                query: word.into(),
                mode: instant_db::search::Mode::Keyword,
                ..Default::default()
            })
            .unwrap();
        assert!(!resp.hits.is_empty(), "{word} not searchable");
    }
    let text = e.metrics.render();
    assert!(
        text.contains(r#"instantdb_ingest_problems_total{reason="unsupported"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"instantdb_ingest_problems_total{reason="encrypted"} 1"#));
    assert!(text.contains(r#"instantdb_ingest_problems_total{reason="corrupt"} 1"#));
}

#[test]
fn a_folder_of_only_unsupported_files_says_nothing_was_ingested_and_what_to_do() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), [1u8]).unwrap();
    std::fs::write(dir.path().join("b.exe"), [2u8]).unwrap();
    let e = Engine::open(common::config(data.path()), ModelLoading::Skip).unwrap();
    let report = ingest_paths(
        &e,
        &[dir.path().to_path_buf()],
        &IngestOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert_eq!((report.added, report.skipped), (0, 2));
    let msg = report.nothing_ingested.clone().unwrap_or_default();
    assert!(msg.starts_with("0 files ingested, 2 skipped"), "{msg}");
    assert!(
        msg.contains(".exe, .png") && msg.contains("convert"),
        "{msg}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["problems"][0]["kind"], "unsupported");
}
