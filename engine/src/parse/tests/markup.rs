//! Markup formats: Markdown, reStructuredText, HTML, XML.

use super::super::*;
use super::*;

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
