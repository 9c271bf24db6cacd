use std::path::{Path, PathBuf};

use super::*;

mod markup;
mod records;

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
