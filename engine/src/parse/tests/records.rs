//! Record and text formats: JSON, JSONL, YAML, CSV/TSV, logs, plain text, email.

use super::super::*;
use super::*;

#[test]
fn json_records_are_flattened() {
    let d = JsonParser
        .parse(br#"{"name": "cfg", "flags": [{"key": "a", "on": true}, {"key": "b", "on": false}], "limits": {"max": 3, "tags": ["x", "y"]}}"#)
        .unwrap_or_default();
    assert_eq!(d.title.as_deref(), Some("cfg"));
    assert!(has(&d, BlockKind::Record, &["flags"], "key: a\non: true"));
    assert!(has(&d, BlockKind::Record, &["flags"], "key: b\non: false"));
    assert!(has(
        &d,
        BlockKind::Record,
        &[],
        "limits.max: 3\nlimits.tags: x, y"
    ));
    assert!(has(&d, BlockKind::Record, &[], "name: cfg"));
    let d = JsonParser
        .parse(br#"[{"a": 1}, {"a": [{"b": null}]}]"#)
        .unwrap_or_default();
    assert_eq!(texts(&d).len(), 2);
    assert!(has(&d, BlockKind::Record, &[], "a[0].b: null"));
    assert_eq!(d.metadata.get("record_count"), Some(&serde_json::json!(2)));
    // Keys keep document order; numbers keep their form.
    let d = JsonParser
        .parse(br#"{"z": {"b": 1.5, "a": -2}, "m": 1}"#)
        .unwrap_or_default();
    assert_eq!(d.full_text(), "z.b: 1.5\nz.a: -2\n\nm: 1");
    assert_eq!(
        d.metadata.get("top_level_keys"),
        Some(&serde_json::json!(["z", "m"]))
    );
}

#[test]
fn jsonl_lines_are_records() {
    let d = ok("sample.jsonl");
    assert_eq!(d.blocks.len(), 2);
    assert!(d.blocks.iter().all(|b| b.kind == BlockKind::Record));
    assert!(has(
        &d,
        BlockKind::Record,
        &[],
        "id: 1\ntitle: first\ntags: a, b"
    ));
    assert!(has(&d, BlockKind::Record, &[], "id: 2\nnested.k: v"));
    let e = JsonlParser.parse(b"{\"a\":1}\n\n{\"b\": }\n").err();
    assert_eq!(e.map(syntax_pos), Some(("JSON", 3, 7)));
}

#[test]
fn yaml_documents_are_flattened() {
    let d = ok("sample.yaml");
    assert_eq!(d.title.as_deref(), Some("Lumen config"));
    assert!(has(
        &d,
        BlockKind::Record,
        &["servers"],
        "host: b.example\nport: 8443"
    ));
    assert!(has(
        &d,
        BlockKind::Record,
        &[],
        "features.sync: true\nfeatures.themes: light, dark"
    ));
    assert!(has(&d, BlockKind::Record, &[], "second: doc"));
    assert_eq!(
        d.metadata.get("yaml_documents"),
        Some(&serde_json::json!(2))
    );
}

#[test]
fn csv_and_tsv_rows_are_records() {
    let d = ok("sample.tsv");
    assert_eq!(
        texts(&d).into_iter().map(|t| t.2).collect::<Vec<_>>(),
        ["name: Ana; age: 31; city: Lisbon", "name: Bo; city: Oslo"]
    );
    assert_eq!(
        d.metadata.get("columns"),
        Some(&serde_json::json!(["name", "age", "city"]))
    );
    assert_eq!(d.metadata.get("row_count"), Some(&serde_json::json!(2)));
    let d = CsvParser
        .parse(b"plan,note\nPro,\"quoted, with comma\"\n")
        .unwrap_or_default();
    assert!(has(
        &d,
        BlockKind::Record,
        &[],
        "plan: Pro; note: quoted, with comma"
    ));
    // No header when the first row is numeric.
    let d = CsvParser.parse(b"1,2\n3,4\n").unwrap_or_default();
    assert!(has(&d, BlockKind::Record, &[], "column1: 1; column2: 2"));
    assert_eq!(d.blocks.len(), 2);
    assert!(CsvParser.parse(b"").is_ok_and(|d| d.blocks.is_empty()));
    // Empty header cells get a name; TSV treats quotes literally.
    let d = CsvParser.parse(b"a,\nx,y\n").unwrap_or_default();
    assert!(has(&d, BlockKind::Record, &[], "a: x; column2: y"));
    let d = TsvParser.parse(b"q\tn\n\"hi\tthere\n").unwrap_or_default();
    assert!(has(&d, BlockKind::Record, &[], "q: \"hi; n: there"));
}

#[test]
fn log_entries_keep_continuation_lines() {
    let d = ok("sample.log");
    assert_eq!(d.blocks.len(), 4);
    assert!(d.blocks[2].text.ends_with("at main (main.rs:3)"));
    assert_eq!(
        d.metadata.get("log_levels"),
        Some(&serde_json::json!({"error": 1, "info": 2, "warn": 1}))
    );
}

#[test]
fn plain_text_numbered_headings_become_sections() {
    let d = ok("numbered.txt");
    assert_eq!(d.title.as_deref(), Some("Lumen Manual"));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["1. Introduction"],
        "Lumen is a notes app."
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["1. Introduction", "1.1 Scope"],
        "This covers sync."
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Chapter 2 Setup"],
        "Install it."
    ));
    // A numbered list is not a heading.
    assert!(has(
        &d,
        BlockKind::ListItem,
        &["Chapter 2 Setup"],
        "1. Buy milk"
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Chapter 2 Setup", "2.3.1 Deep Detail"],
        "Deep text. It has sentences."
    ));
}

#[test]
fn numbered_heading_detection() {
    use super::txt::numbered_heading_level as lvl;
    assert_eq!(lvl("1."), Some(1));
    assert_eq!(lvl("1.2 Title"), Some(2));
    assert_eq!(lvl("3.4.5. Deep Title"), Some(3));
    assert_eq!(lvl("Chapter 3"), Some(1));
    assert_eq!(lvl("CHAPTER IV: The End"), Some(1));
    assert_eq!(lvl("1. We went to the shop and bought milk."), None);
    assert_eq!(lvl("42"), None);
    assert_eq!(lvl("2026 was a good year for us"), None);
    assert_eq!(lvl(""), None);
}

#[test]
fn email_headers_give_title_and_metadata() {
    let d = TextParser
        .parse(b"From: a@x.example\nTo: b@x.example\nSubject: Re: Launch plan\n\nHello.")
        .unwrap_or_default();
    assert_eq!(d.title.as_deref(), Some("Re: Launch plan"));
    assert_eq!(
        d.metadata.get("from"),
        Some(&serde_json::json!("a@x.example"))
    );
}
