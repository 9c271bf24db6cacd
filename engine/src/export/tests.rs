use super::*;

fn doc() -> DocumentRecord {
    DocumentRecord {
        id: "0123456789abcdef".into(),
        source: "/d/guide.md".into(),
        title: Some("Guide".into()),
        extension: Some("md".into()),
        mime: None,
        doc_type: "documentation".into(),
        size_bytes: 10,
        modified_at: None,
        content_hash: "h".into(),
        char_count: 0,
        word_count: 0,
        line_count: 0,
        chunk_count: 0,
        metadata: serde_json::json!({"team": "docs"}),
        format_metadata: serde_json::json!({}),
        ingested_at: "2026-12-02T00:00:00Z".into(),
        updated_at: "2026-12-02T00:00:00Z".into(),
    }
}

fn section(path: &[&str], text: &str) -> Section {
    Section {
        path: path.iter().map(|s| s.to_string()).collect(),
        text: text.into(),
    }
}

#[test]
fn markdown_gives_each_section_level_a_heading_once() {
    let sections = [
        section(&["Install"], "Run the installer."),
        section(&["Install", "Linux"], "Use the package."),
        section(&["Install", "macOS"], "Use the image."),
        section(&["Upgrade"], "Back up first."),
    ];
    let md = render(ExportFormat::Markdown, &doc(), &sections, true, None);
    assert!(md.starts_with("# Guide\n\n- source: /d/guide.md\n"), "{md}");
    assert!(md.contains("- metadata: {\"team\":\"docs\"}\n"), "{md}");
    let body = &md[md.find("## Install").unwrap()..];
    assert_eq!(
        body,
        "## Install\n\nRun the installer.\n\n### Linux\n\nUse the package.\n\n### macOS\n\nUse the image.\n\n## Upgrade\n\nBack up first.\n\n"
    );
    let bare = render(ExportFormat::Markdown, &doc(), &sections, false, None);
    assert!(bare.starts_with("# Guide\n\n## Install"), "{bare}");
}

#[test]
fn text_and_json_keep_the_sections_and_json_the_metadata_only_when_asked() {
    let sections = [section(&["A", "B"], "Body.")];
    let txt = render(ExportFormat::Txt, &doc(), &sections, false, Some((2, 3)));
    assert_eq!(
        txt,
        "Guide (part 2 of 3)\n===================\n\nA › B\n-----\n\nBody.\n\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(ExportFormat::Json, &doc(), &sections, false, None)).unwrap();
    assert_eq!(json["sections"][0]["path"], serde_json::json!(["A", "B"]));
    assert!(json.get("source").is_none() && json.get("metadata").is_none());
    let json: serde_json::Value =
        serde_json::from_str(&render(ExportFormat::Json, &doc(), &sections, true, None)).unwrap();
    assert_eq!(json["metadata"]["team"], "docs");
}

#[test]
fn a_split_cuts_at_paragraph_boundaries_keeps_every_paragraph_once_and_each_part_under_the_limit() {
    let paras: Vec<String> = (0..40)
        .map(|i| format!("Paragraph {i} says something."))
        .collect();
    let sections = [
        section(&["One"], &paras[..20].join("\n\n")),
        section(&["Two"], &paras[20..].join("\n\n")),
    ];
    for format in [
        ExportFormat::Markdown,
        ExportFormat::Txt,
        ExportFormat::Json,
    ] {
        let whole = render(format, &doc(), &sections, true, None);
        let max = whole.len() / 3;
        let parts = render_parts(format, &doc(), &sections, true, Some(max));
        assert!(parts.len() >= 3, "{format:?}: {} parts", parts.len());
        let mut seen = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            assert!(p.len() <= max, "{format:?} part {i}: {} > {max}", p.len());
            assert!(
                p.contains(&format!("part {} of {}", i + 1, parts.len()))
                    || format == ExportFormat::Json
            );
            for (n, para) in paras.iter().enumerate() {
                if p.contains(para.as_str()) {
                    seen.push(n);
                }
            }
        }
        assert_eq!(seen, (0..40).collect::<Vec<_>>(), "{format:?}");
        // no limit, or a limit above the size: one file
        assert_eq!(
            render_parts(format, &doc(), &sections, true, None),
            vec![whole.clone()]
        );
        assert_eq!(
            render_parts(format, &doc(), &sections, true, Some(whole.len())),
            vec![whole]
        );
    }
}

#[test]
fn a_paragraph_larger_than_the_limit_is_a_part_of_its_own() {
    let big = "x".repeat(500);
    let sections = [section(&[], &format!("small\n\n{big}\n\ntail"))];
    let parts = render_parts(ExportFormat::Txt, &doc(), &sections, false, Some(200));
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(parts[1].contains(&big));
}

#[test]
fn file_names_come_from_titles_and_are_plain() {
    assert_eq!(slug("Q3 Report: Sales / EMEA"), "q3-report-sales-emea");
    assert_eq!(slug("../../etc"), "etc");
    assert_eq!(slug("???"), "document");
    assert!(slug(&"long ".repeat(40)).chars().count() <= 60);
}
