use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/parse_fixtures")
        .join(name)
}

fn parse_fixture(name: &str) -> Result<ParsedDocument, ParseError> {
    let path = fixture(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParserRegistry::default().parse_path(&path, &bytes)
}

fn ok(name: &str) -> ParsedDocument {
    parse_fixture(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn texts(d: &ParsedDocument) -> Vec<(BlockKind, Vec<String>, String)> {
    d.blocks
        .iter()
        .map(|b| (b.kind, b.section_path.clone(), b.text.clone()))
        .collect()
}

fn has(d: &ParsedDocument, kind: BlockKind, path: &[&str], text: &str) -> bool {
    d.blocks
        .iter()
        .any(|b| b.kind == kind && b.section_path == path && b.text == text)
}

fn syntax_pos(e: ParseError) -> (&'static str, usize, usize) {
    match e {
        ParseError::Syntax {
            format,
            line,
            column,
            ..
        } => (format, line, column),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn registry_resolves_every_required_extension() {
    let r = ParserRegistry::default();
    for ext in [
        "txt", "text", "md", "markdown", "rst", "log", "html", "htm", "xml", "json", "jsonl",
        "yaml", "yml", "csv", "tsv",
    ] {
        let p = r
            .for_extension(ext)
            .unwrap_or_else(|| panic!("no parser for {ext}"));
        assert!(p.extensions().contains(&ext));
        assert!(!p.mime().is_empty() && !p.name().is_empty());
    }
    assert_eq!(r.for_extension(".MD").map(|p| p.name()), Some("markdown"));
    assert_eq!(
        r.for_path(Path::new("/a/B.HTM")).map(|p| p.name()),
        Some("html")
    );
    assert!(r.for_path(Path::new("noext")).is_none());
    assert!(r.for_extension("exe").is_none());
    let exts = r.extensions();
    assert!(exts.windows(2).all(|w| w[0] < w[1]));
    assert!(matches!(
        r.parse_path(Path::new("x.bin"), b""),
        Err(ParseError::Unsupported(_))
    ));
}

struct Upper;
impl Parser for Upper {
    fn name(&self) -> &'static str {
        "upper"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["txt", "up"]
    }
    fn mime(&self) -> &'static str {
        "text/x-upper"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let mut b = DocBuilder::new();
        b.push(BlockKind::Paragraph, &decode(bytes).to_uppercase());
        Ok(b.finish(None, Default::default()))
    }
}

#[test]
fn registering_a_parser_adds_and_overrides_extensions() {
    let mut r = ParserRegistry::default();
    r.register(Box::new(Upper));
    assert_eq!(r.for_extension("up").map(|p| p.name()), Some("upper"));
    assert_eq!(r.for_extension("txt").map(|p| p.name()), Some("upper"));
    assert_eq!(r.for_extension("text").map(|p| p.name()), Some("text"));
    let d = r.parse_path(Path::new("a.up"), b"hi").unwrap_or_default();
    assert_eq!(d.full_text(), "HI");
}

#[test]
fn full_text_joins_blocks_with_blank_lines() {
    let d = ok("sample.md");
    let joined: Vec<&str> = d.blocks.iter().map(|b| b.text.as_str()).collect();
    assert_eq!(d.full_text(), joined.join("\n\n"));
    assert_eq!(ParsedDocument::default().full_text(), "");
}

#[test]
fn markdown_sections_front_matter_code_lists_tables() {
    let d = ok("sample.md");
    assert_eq!(d.title.as_deref(), Some("Sync design"));
    assert_eq!(d.metadata.get("version"), Some(&serde_json::json!(2)));
    assert_eq!(
        d.metadata.get("tags"),
        Some(&serde_json::json!(["sync", "offline"]))
    );
    assert!(has(&d, BlockKind::Heading, &["Sync design"], "Sync design"));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Sync design"],
        "Intro paragraph with emphasis and inline code."
    ));
    assert!(has(
        &d,
        BlockKind::ListItem,
        &["Sync design", "Goals"],
        "Fast merges"
    ));
    assert!(has(
        &d,
        BlockKind::ListItem,
        &["Sync design", "Goals"],
        "nested item"
    ));
    assert!(has(
        &d,
        BlockKind::Code,
        &["Sync design", "Goals"],
        "fn main() {\n    println!(\"hi\");\n}"
    ));
    assert!(has(
        &d,
        BlockKind::Quote,
        &["Sync design", "Goals"],
        "Quoted advice. Second line."
    ));
    assert!(has(
        &d,
        BlockKind::Table,
        &["Sync design", "Goals"],
        "Col A | Col B\n1 | 2"
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Sync design", "Goals", "Details"],
        "Final words."
    ));
    assert!(!d.full_text().contains("---"));
}

#[test]
fn markdown_without_or_with_broken_front_matter() {
    let md = MarkdownParser;
    let d = md
        .parse(b"Just text.\n\n## Later\n\nMore.")
        .unwrap_or_default();
    assert_eq!(d.title.as_deref(), Some("Later"));
    assert!(d.metadata.is_empty());
    // Invalid YAML in front matter is kept as text, not an error.
    let d = md.parse(b"---\na: [1\n---\n\nBody.").unwrap_or_default();
    assert!(d.metadata.is_empty());
    assert!(d.full_text().contains("Body."));
    // Raw HTML blocks keep their text; comments and scripts are dropped.
    let d = md
        .parse(b"<!-- hidden -->\n\n<details><summary>More</summary>\n\nInside.\n\n</details>\n\n<script>bad()</script>\n")
        .unwrap_or_default();
    let full = d.full_text();
    assert!(full.contains("More") && full.contains("Inside."), "{full}");
    assert!(
        !full.contains("hidden") && !full.contains("bad()"),
        "{full}"
    );
    // Setext headings and nested levels pop correctly.
    let d = md
        .parse(b"A\n=\n\n### deep\n\nx\n\n## mid\n\ny")
        .unwrap_or_default();
    assert!(has(&d, BlockKind::Paragraph, &["A", "deep"], "x"));
    assert!(has(&d, BlockKind::Paragraph, &["A", "mid"], "y"));
}

#[test]
fn rst_titles_lists_and_literal_blocks() {
    let d = ok("sample.rst");
    assert_eq!(d.title.as_deref(), Some("User Guide"));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["User Guide"],
        "Welcome to the guide."
    ));
    assert!(has(
        &d,
        BlockKind::ListItem,
        &["User Guide", "Installation"],
        "second item"
    ));
    assert!(has(
        &d,
        BlockKind::Code,
        &["User Guide", "Installation"],
        "lumen --sync\nlumen --help"
    ));
    assert!(has(
        &d,
        BlockKind::Code,
        &["User Guide", "Installation", "Advanced"],
        "print(\"x\")"
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["User Guide", "Installation", "Advanced"],
        "Done here."
    ));
}

#[test]
fn html_title_sections_meta_and_skipped_elements() {
    let d = ok("sample.html");
    assert_eq!(d.title.as_deref(), Some("Sample Page"));
    assert_eq!(
        d.metadata.get("description"),
        Some(&serde_json::json!("A sample page."))
    );
    assert_eq!(
        d.metadata.get("keywords"),
        Some(&serde_json::json!(["alpha", "beta", "gamma"]))
    );
    let full = d.full_text();
    for hidden in ["SCRIPT_TEXT", "NAV_TEXT", "color:red"] {
        assert!(!full.contains(hidden), "{hidden} leaked");
    }
    assert!(has(&d, BlockKind::Heading, &["Main Title"], "Main Title"));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Main Title"],
        "First paragraph with bold text."
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Main Title"],
        "Loose div text"
    ));
    assert!(has(&d, BlockKind::Paragraph, &["Main Title"], "inner para"));
    assert!(has(
        &d,
        BlockKind::ListItem,
        &["Main Title", "Sub"],
        "Two link"
    ));
    assert!(has(
        &d,
        BlockKind::Code,
        &["Main Title", "Sub"],
        "code  line 1\n  line 2"
    ));
    assert!(has(&d, BlockKind::Quote, &["Main Title", "Sub"], "Quoted."));
    assert!(has(
        &d,
        BlockKind::Table,
        &["Main Title", "Sub"],
        "H1 | H2\na | b"
    ));
    assert!(has(
        &d,
        BlockKind::Paragraph,
        &["Main Title", "Sub", "Deep"],
        "Deep text & entity."
    ));
}

#[test]
fn html_deep_nesting_does_not_overflow() {
    let html = format!(
        "{}deep{}",
        "<div><span>".repeat(3_000),
        "</span></div>".repeat(3_000)
    );
    let d = HtmlParser.parse(html.as_bytes()).unwrap_or_default();
    assert!(d.full_text().contains("deep"));
}

#[test]
fn deeply_nested_inputs_do_not_overflow() {
    let md = format!("{}deep quote\n", ">".repeat(1_000));
    assert!(
        MarkdownParser
            .parse(md.as_bytes())
            .is_ok_and(|d| d.full_text().contains("deep"))
    );
    let list: String = (0..300)
        .map(|i| format!("{}- item{i}\n", "  ".repeat(i)))
        .collect();
    assert!(MarkdownParser.parse(list.as_bytes()).is_ok());
    let yaml = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    assert!(YamlParser.parse(yaml.as_bytes()).is_err());
    let xml = format!("{}x{}", "<a>".repeat(50_000), "</a>".repeat(50_000));
    assert!(
        XmlParser
            .parse(xml.as_bytes())
            .is_ok_and(|d| d.full_text() == "x")
    );
}

#[test]
fn xml_text_without_element_names() {
    let d = ok("sample.xml");
    assert_eq!(d.title.as_deref(), Some("XML Book"));
    let full = d.full_text();
    for name in ["emph", "price", "para>", "book", "item", "name"] {
        assert!(!full.contains(name), "element name {name} emitted");
    }
    assert!(full.contains("Para one & more A."));
    assert!(full.contains("raw <cdata> text"));
    assert!(full.contains("widget 3"));
    assert!(has(
        &d,
        BlockKind::Heading,
        &["XML Book", "First chapter"],
        "First chapter"
    ));
    // The chapter's section ends with the chapter element.
    assert!(has(&d, BlockKind::Paragraph, &["XML Book"], "widget 3"));
    assert_eq!(
        d.metadata.get("root_element"),
        Some(&serde_json::json!("book"))
    );
}

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

#[test]
fn invalid_utf8_is_decoded_lossily() {
    let d = ok("invalid_utf8.txt");
    assert!(d.full_text().contains("Valid start"));
    assert!(d.full_text().contains('\u{fffd}'));
    assert!(d.full_text().ends_with("Second para."));
}

#[test]
fn broken_structured_files_name_line_and_column() {
    assert_eq!(
        parse_fixture("broken.json").err().map(syntax_pos),
        Some(("JSON", 4, 1))
    );
    assert_eq!(
        parse_fixture("broken.yaml").err().map(syntax_pos),
        Some(("YAML", 3, 2))
    );
    assert_eq!(
        parse_fixture("broken.csv").err().map(syntax_pos),
        Some(("CSV", 3, 3))
    );
    let (f, line, col) = parse_fixture("broken.xml")
        .err()
        .map(syntax_pos)
        .unwrap_or(("", 0, 0));
    assert_eq!((f, line), ("XML", 1));
    assert!(col > 1);
    let msg = parse_fixture("broken.json")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("line 4, column 1"), "{msg}");
    assert!(XmlParser.parse(b"<a><b>open").is_err());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(JsonParser.parse(deep.as_bytes()).is_err());
}

#[test]
fn crlf_and_bom_are_normalised() {
    let d = MarkdownParser
        .parse(b"\xef\xbb\xbf# T\r\n\r\nBody line.\r\n")
        .unwrap_or_default();
    assert_eq!(d.title.as_deref(), Some("T"));
    assert!(has(&d, BlockKind::Paragraph, &["T"], "Body line."));
}

/// Deterministic xorshift PRNG.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn parsers_never_panic_on_garbage_or_truncated_input() {
    let r = ParserRegistry::default();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(fixture("")) {
        for e in dir.flatten() {
            seeds.push(std::fs::read(e.path()).unwrap_or_default());
        }
    }
    let mut state = 0x1234_5678_9abc_def1u64;
    for _ in 0..40 {
        let len = (next(&mut state) % 300) as usize;
        seeds.push((0..len).map(|_| (next(&mut state) % 256) as u8).collect());
    }
    for ext in r.extensions() {
        let p = r.for_extension(ext).unwrap_or_else(|| panic!("{ext}"));
        for seed in &seeds {
            for cut in [seed.len(), seed.len() / 2, seed.len() / 3 + 1] {
                let bytes = seed.get(..cut).unwrap_or(seed);
                if let Ok(d) = p.parse(bytes) {
                    assert!(
                        d.blocks.iter().all(|b| !b.text.trim().is_empty()),
                        "{ext}: empty block"
                    );
                }
            }
        }
    }
}

fn corpus(name: &str) -> ParsedDocument {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../demo-corpus")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParserRegistry::default()
        .parse_path(&path, &bytes)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn demo_corpus_parses_with_expected_structure() {
    let d = corpus("pricing.csv");
    assert!(d.full_text().contains("plan: Pro; monthly_price_usd: 8"));
    let d = corpus("feature-flags.json");
    assert!(d.blocks.iter().any(|b| b.section_path == ["flags"]
        && b.text.contains("key: editor_toolbar_v2")
        && b.text.contains("rollout_percent: 25")));
    let d = corpus("onboarding-guide.html");
    assert_eq!(
        d.title.as_deref(),
        Some("Engineering onboarding guide — Lumen")
    );
    assert!(!d.full_text().contains("analytics"));
    assert!(
        d.blocks
            .iter()
            .any(|b| b.kind == BlockKind::Code && b.text.contains("bootstrap.sh"))
    );
    let d = corpus("howto-share-notebook.txt");
    assert!(
        d.blocks
            .iter()
            .any(|b| b.section_path == ["2. Invite people", "2.3 Choose a permission"])
    );
    let d = corpus("meeting-2026-03-02-roadmap-planning.md");
    assert_eq!(
        d.metadata.get("date"),
        Some(&serde_json::json!("2026-03-02"))
    );
    let d = corpus("email-thread-northwind-sso.txt");
    assert!(
        d.title
            .as_deref()
            .is_some_and(|t| t.contains("SAML single sign-on"))
    );
}

#[test]
fn demo_corpus_document_types() {
    use crate::doctype::{DocumentType as T, classify};
    for (name, want) in [
        ("faq.md", T::Faq),
        ("meeting-2026-03-02-roadmap-planning.md", T::MeetingNotes),
        ("meeting-2026-03-09-web-clipper-kickoff.md", T::MeetingNotes),
        ("howto-export-notes.md", T::HowTo),
        ("howto-share-notebook.txt", T::HowTo),
        ("release-notes-3.1.md", T::Report),
        ("incident-postmortem-2026-02-outage.md", T::Report),
        ("email-thread-northwind-sso.txt", T::Email),
        ("pricing.csv", T::Data),
        ("feature-flags.json", T::Data),
        ("onboarding-guide.html", T::HowTo),
        ("troubleshooting-crashes-and-attachments.md", T::HowTo),
        ("product-notes-smart-tags.md", T::ProductNotes),
    ] {
        let d = corpus(name);
        let got = classify(Path::new(name), d.title.as_deref(), &d.full_text());
        assert_eq!(got, want, "{name}");
    }
}

/// Throughput over the Rust toolchain's HTML documentation (run with `--ignored --nocapture`,
/// preferably with `--release`). `INSTANT_DB_PARSE_BENCH_LIMIT` caps the number of files.
#[test]
#[ignore = "slow: walks the Rust toolchain documentation"]
fn rust_docs_parse_and_chunk_throughput() {
    use crate::chunk::{ChunkConfig, WhitespaceTokenCounter, chunk_document};
    let Ok(out) = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
    else {
        return;
    };
    let root =
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html");
    let limit: usize = std::env::var("INSTANT_DB_PARSE_BENCH_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut stack = vec![root];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "html") {
                files.push(p);
            }
        }
    }
    files.sort();
    files.truncate(limit);
    let reg = ParserRegistry::default();
    let cfg = ChunkConfig::default();
    let (mut bytes, mut chunks, mut blocks) = (0usize, 0usize, 0usize);
    let (mut t_parse, mut t_chunk) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_default();
        bytes += data.len();
        let t = std::time::Instant::now();
        let d = reg.parse_path(f, &data).unwrap_or_default();
        t_parse += t.elapsed();
        let t = std::time::Instant::now();
        chunks += chunk_document(&d, &cfg, &WhitespaceTokenCounter).len();
        t_chunk += t.elapsed();
        blocks += d.blocks.len();
    }
    println!(
        "{} files, {:.1} MB, {blocks} blocks, {chunks} chunks; parse {:.2?} ({:.0} files/s), chunk {:.2?}",
        files.len(),
        bytes as f64 / 1e6,
        t_parse,
        files.len() as f64 / t_parse.as_secs_f64(),
        t_chunk
    );
}

#[test]
#[ignore = "debug helper: prints the blocks of the file in INSTANT_DB_PARSE_DUMP"]
fn dump_file() {
    let Ok(path) = std::env::var("INSTANT_DB_PARSE_DUMP") else {
        return;
    };
    let path = PathBuf::from(path);
    let bytes = std::fs::read(&path).unwrap_or_default();
    match ParserRegistry::default().parse_path(&path, &bytes) {
        Ok(d) => {
            println!("title={:?} meta={:?}", d.title, d.metadata);
            for b in &d.blocks {
                println!("{:?} {:?} {:?}", b.kind, b.section_path, b.text);
            }
        }
        Err(e) => println!("error: {e}"),
    }
}
