//! reStructuredText: underlined (and over/underlined) section titles, paragraphs, bullet
//! items, literal blocks (`::` and `.. code-block::`).

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// reStructuredText (`.rst`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RstParser;

const ADORN: &[char] = &[
    '=', '-', '~', '^', '"', '\'', '`', '#', '*', '+', ':', '.', '_', '<', '>',
];

fn adornment(line: &str) -> Option<char> {
    let l = line.trim_end();
    let c = l.chars().next()?;
    (ADORN.contains(&c) && l.chars().count() >= 3 && l.chars().all(|x| x == c)).then_some(c)
}

impl Parser for RstParser {
    fn name(&self) -> &'static str {
        "rst"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["rst"]
    }
    fn mime(&self) -> &'static str {
        "text/x-rst"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let lines: Vec<&str> = text.lines().collect();
        let mut b = DocBuilder::new();
        let mut styles: Vec<(char, bool)> = Vec::new();
        let mut para: Vec<&str> = Vec::new();
        let mut para_kind = BlockKind::Paragraph;
        let mut literal_next = false;
        let mut i = 0;
        let flush = |b: &mut DocBuilder, para: &mut Vec<&str>, kind: BlockKind| {
            if !para.is_empty() {
                b.push(kind, &para.join("\n"));
                para.clear();
            }
        };
        while i < lines.len() {
            let line = lines[i];
            let next = lines.get(i + 1).copied();
            // Over- and underlined title.
            if let (Some(c), Some(title), Some(under)) =
                (adornment(line), next, lines.get(i + 2).copied())
                && !title.trim().is_empty()
                && adornment(under) == Some(c)
                && adornment(title).is_none()
            {
                flush(&mut b, &mut para, para_kind);
                let style = (c, true);
                let level = level_of(&mut styles, style);
                b.heading(level, title.trim());
                i += 3;
                continue;
            }
            // Underlined title.
            if !line.trim().is_empty()
                && para.is_empty()
                && !line.starts_with([' ', '\t'])
                && adornment(line).is_none()
                && let Some(c) = next.and_then(adornment)
                && next.is_some_and(|n| {
                    n.trim_end().chars().count() >= line.trim().chars().count().min(3)
                })
            {
                let level = level_of(&mut styles, (c, false));
                b.heading(level, line.trim());
                i += 2;
                continue;
            }
            if line.trim().is_empty() {
                flush(&mut b, &mut para, para_kind);
                i += 1;
                continue;
            }
            // Literal block: indented lines after a paragraph ending with "::" or a code directive.
            let is_directive = line.trim_start().starts_with(".. ");
            if is_directive {
                flush(&mut b, &mut para, para_kind);
                let d = line.trim_start();
                literal_next = d.contains("code") || d.contains("sourcecode");
                if !literal_next && !d.starts_with(".. _") && !d.starts_with(".. |") {
                    // Other directives (note, warning, ...): keep their argument as text.
                    if let Some((_, arg)) = d.split_once("::") {
                        b.push(BlockKind::Paragraph, arg);
                    }
                }
                i += 1;
                // Skip directive options.
                while i < lines.len() && lines[i].trim_start().starts_with(':') {
                    i += 1;
                }
                continue;
            }
            if literal_next && line.starts_with([' ', '\t']) {
                let start = i;
                while i < lines.len()
                    && (lines[i].trim().is_empty() || lines[i].starts_with([' ', '\t']))
                {
                    i += 1;
                }
                let code = lines[start..i].join("\n");
                b.push(BlockKind::Code, &dedent(&code));
                literal_next = false;
                continue;
            }
            literal_next = false;
            let t = line.trim_start();
            let is_item = t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ");
            if is_item {
                flush(&mut b, &mut para, para_kind);
                para_kind = BlockKind::ListItem;
                para.push(t.get(2..).unwrap_or_default());
            } else {
                if para.is_empty() {
                    para_kind = BlockKind::Paragraph;
                }
                para.push(line.trim());
            }
            if line.trim_end().ends_with("::") {
                let last = para.len() - 1;
                let l = para[last].trim_end();
                para[last] = l.strip_suffix(':').unwrap_or(l);
                literal_next = true;
                flush(&mut b, &mut para, para_kind);
            }
            i += 1;
        }
        flush(&mut b, &mut para, para_kind);
        Ok(b.finish(None, serde_json::Map::new()))
    }
}

fn level_of(styles: &mut Vec<(char, bool)>, style: (char, bool)) -> usize {
    if let Some(p) = styles.iter().position(|s| *s == style) {
        p + 1
    } else {
        styles.push(style);
        styles.len()
    }
}

fn dedent(code: &str) -> String {
    let indent = code
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    code.lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
}
