//! Plain text: paragraphs separated by blank lines; numbered headings ("1.", "1.2 Title",
//! "Chapter 3") start sections.

use std::sync::LazyLock;

use regex::Regex;

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// Plain text (`.txt`, `.text`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TextParser;

static NUMBERED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(\d{1,3}(?:\.\d{1,3})*)\.?(?:\s+(\S.*))?$").ok());
static CHAPTER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(chapter|part|section|appendix)\s+([0-9]+|[ivxlc]+|[a-z])\b[.:]?(?:\s+(.*))?$",
    )
    .ok()
});
static LIST_START: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\s*(?:[-*•+]\s|\d{1,3}[.)]\s|[a-z][.)]\s)").ok());

/// If `line` looks like a numbered heading, its level (1 = top).
pub(crate) fn numbered_heading_level(line: &str) -> Option<usize> {
    let line = line.trim();
    if line.is_empty() || line.chars().count() > 90 {
        return None;
    }
    if let Some(c) = CHAPTER.as_ref().and_then(|re| re.captures(line)) {
        let rest = c.get(3).map_or("", |m| m.as_str());
        if rest.ends_with(['.', ',', ';']) || rest.split_whitespace().count() > 12 {
            return None;
        }
        return Some(1);
    }
    let c = NUMBERED.as_ref()?.captures(line)?;
    let num = c.get(1)?.as_str();
    let rest = c.get(2).map_or("", |m| m.as_str()).trim();
    let level = num.split('.').count();
    if rest.is_empty() {
        // "1." alone (or "2.3") is a heading; a bare number is not.
        return (line.ends_with('.') || level > 1).then_some(level);
    }
    // A heading is short, starts with a capital letter or digit and does not end like a sentence.
    let first = rest.chars().next()?;
    if !(first.is_uppercase() || first.is_ascii_digit())
        || rest.ends_with(['.', ',', ';', ':', '!', '?'])
        || rest.split_whitespace().count() > 10
    {
        return None;
    }
    Some(level)
}

fn is_list_line(line: &str) -> bool {
    LIST_START.as_ref().is_some_and(|re| re.is_match(line))
}

/// Split plain text into paragraphs and numbered headings.
pub(crate) fn text_blocks(text: &str, b: &mut DocBuilder) {
    for para in text.split("\n\n") {
        let para = para.trim_matches('\n');
        if para.trim().is_empty() {
            continue;
        }
        let lines: Vec<&str> = para.lines().collect();
        let first = lines.first().copied().unwrap_or_default();
        if let Some(level) = numbered_heading_level(first) {
            // "1. Buy milk\n2. Buy eggs" is a list, not a heading followed by text.
            let second_is_list = lines.get(1).is_some_and(|l| is_list_line(l));
            if !second_is_list {
                b.heading(level, first);
                let rest = lines.get(1..).map(|r| r.join("\n")).unwrap_or_default();
                push_paragraph(&rest, b);
                continue;
            }
        }
        push_paragraph(para, b);
    }
}

fn push_paragraph(para: &str, b: &mut DocBuilder) {
    let lines: Vec<&str> = para.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > 1 && lines.iter().all(|l| is_list_line(l)) {
        for l in lines {
            b.push(BlockKind::ListItem, l);
        }
    } else {
        b.push(BlockKind::Paragraph, para);
    }
}

impl Parser for TextParser {
    fn name(&self) -> &'static str {
        "text"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["txt", "text"]
    }
    fn mime(&self) -> &'static str {
        "text/plain"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let mut b = DocBuilder::new();
        text_blocks(&text, &mut b);
        let mut meta = serde_json::Map::new();
        // An email-like header block gives a subject title and header metadata.
        let mut title = None;
        for line in text.lines().take(40) {
            let l = line.trim();
            for (key, name) in [("subject:", "subject"), ("from:", "from"), ("to:", "to")] {
                let head = l.get(..key.len()).unwrap_or_default();
                if head.eq_ignore_ascii_case(key) {
                    let v = l.get(key.len()..).unwrap_or_default().trim().to_string();
                    if name == "subject" && title.is_none() {
                        title = Some(v.clone());
                    }
                    meta.entry(name.to_string())
                        .or_insert(serde_json::Value::String(v));
                }
            }
        }
        if title.is_none() {
            // A short first paragraph of one line is the title; else the top heading.
            let first_para = text
                .trim_start()
                .split("\n\n")
                .next()
                .unwrap_or_default()
                .trim();
            if !first_para.is_empty()
                && !first_para.contains('\n')
                && first_para.chars().count() <= 120
            {
                title = Some(first_para.to_string());
            }
        }
        Ok(b.finish(title, meta))
    }
}
