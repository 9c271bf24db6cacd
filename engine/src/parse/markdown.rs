//! Markdown (CommonMark + tables): headings give section paths, YAML front matter becomes
//! metadata, code blocks are kept verbatim.

use pulldown_cmark::{Event, HeadingLevel, Options, Tag, TagEnd};

use super::structured::yaml_to_json;
use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// Markdown (`.md`, `.markdown`).
#[derive(Debug, Default, Clone, Copy)]
pub struct MarkdownParser;

/// Split off a leading `---` YAML front matter block. Returns (front matter, body). Front
/// matter that is not a valid YAML mapping is left in the body as ordinary text.
pub(crate) fn split_front_matter(
    text: &str,
) -> (Option<serde_json::Map<String, serde_json::Value>>, &str) {
    let Some(rest) = text.strip_prefix("---\n") else {
        return (None, text);
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let l = line.trim_end();
        if l == "---" || l == "..." {
            let yaml = &rest[..offset];
            let body = &rest[offset + line.len()..];
            return match serde_norway::from_str::<serde_norway::Value>(yaml) {
                Ok(v) => match yaml_to_json(v) {
                    serde_json::Value::Object(m) => (Some(m), body),
                    serde_json::Value::Null => (Some(serde_json::Map::new()), body),
                    _ => (None, text),
                },
                Err(_) => (None, text),
            };
        }
        offset += line.len();
    }
    (None, text)
}

/// The text of an HTML fragment: tags removed, comments and script/style blocks dropped.
fn strip_tags(html: &str) -> String {
    static SKIP: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?is)<!--.*?(-->|$)|<script\b.*?(</script>|$)|<style\b.*?(</style>|$)")
            .ok()
    });
    static TAG: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"<[^>]*>?").ok());
    let (Some(skip), Some(tag)) = (SKIP.as_ref(), TAG.as_ref()) else {
        return String::new();
    };
    let s = skip.replace_all(html, " ");
    super::collapse_ws(&tag.replace_all(&s, " "))
}

fn level_num(l: HeadingLevel) -> usize {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[derive(Default)]
struct State {
    b: DocBuilder,
    buf: String,
    kind: Option<BlockKind>,
    heading: Option<usize>,
    quote_depth: usize,
    item_depth: usize,
    table_row: Vec<String>,
    table_rows: Vec<String>,
    in_table: bool,
    in_code: bool,
}

impl State {
    fn flush(&mut self) {
        if let Some(level) = self.heading.take() {
            let t = std::mem::take(&mut self.buf);
            self.b.heading(level, &t);
            return;
        }
        let kind = self.kind.unwrap_or(BlockKind::Paragraph);
        let t = std::mem::take(&mut self.buf);
        self.b.push(kind, &t);
    }

    fn container_kind(&self) -> BlockKind {
        if self.item_depth > 0 {
            BlockKind::ListItem
        } else if self.quote_depth > 0 {
            BlockKind::Quote
        } else {
            BlockKind::Paragraph
        }
    }

    fn text(&mut self, s: &str) {
        if self.in_table {
            if let Some(cell) = self.table_row.last_mut() {
                cell.push_str(s);
            }
        } else {
            self.buf.push_str(s);
        }
    }

    fn sep(&mut self) {
        if !self.buf.is_empty() && !self.buf.ends_with(['\n', ' ']) {
            self.buf.push('\n');
        }
    }
}

impl Parser for MarkdownParser {
    fn name(&self) -> &'static str {
        "markdown"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["md", "markdown"]
    }
    fn mime(&self) -> &'static str {
        "text/markdown"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let (front, body) = split_front_matter(&text);
        let opts = Options::ENABLE_TABLES
            | Options::ENABLE_STRIKETHROUGH
            | Options::ENABLE_TASKLISTS
            | Options::ENABLE_FOOTNOTES;
        let mut st = State::default();
        for ev in pulldown_cmark::Parser::new_ext(body, opts) {
            match ev {
                Event::Start(tag) => match tag {
                    Tag::Heading { level, .. } => {
                        st.flush();
                        st.heading = Some(level_num(level));
                    }
                    Tag::Paragraph => {
                        if st.item_depth == 0 && st.quote_depth == 0 {
                            st.flush();
                            st.kind = Some(BlockKind::Paragraph);
                        } else {
                            st.sep();
                        }
                    }
                    Tag::BlockQuote(_) => {
                        if st.quote_depth == 0 && st.item_depth == 0 {
                            st.flush();
                        }
                        st.quote_depth += 1;
                        st.kind = Some(st.container_kind());
                    }
                    Tag::CodeBlock(_) => {
                        st.flush();
                        st.in_code = true;
                        st.kind = Some(BlockKind::Code);
                    }
                    Tag::Item => {
                        st.flush();
                        st.item_depth += 1;
                        st.kind = Some(BlockKind::ListItem);
                    }
                    Tag::Table(_) => {
                        st.flush();
                        st.in_table = true;
                        st.table_rows.clear();
                    }
                    Tag::TableHead | Tag::TableRow => st.table_row.clear(),
                    Tag::TableCell => st.table_row.push(String::new()),
                    Tag::Image { .. } | Tag::Link { .. } => {}
                    _ => {}
                },
                Event::End(end) => match end {
                    TagEnd::Heading(_) => {
                        st.flush();
                        st.kind = Some(st.container_kind());
                    }
                    TagEnd::Paragraph if st.item_depth == 0 && st.quote_depth == 0 => {
                        st.flush();
                    }
                    TagEnd::BlockQuote(_) => {
                        st.quote_depth = st.quote_depth.saturating_sub(1);
                        if st.quote_depth == 0 && st.item_depth == 0 {
                            st.flush();
                        }
                        st.kind = Some(st.container_kind());
                    }
                    TagEnd::CodeBlock => {
                        st.in_code = false;
                        st.flush();
                        st.kind = Some(st.container_kind());
                    }
                    TagEnd::Item => {
                        st.flush();
                        st.item_depth = st.item_depth.saturating_sub(1);
                        st.kind = Some(st.container_kind());
                    }
                    TagEnd::TableHead | TagEnd::TableRow => {
                        let row = st
                            .table_row
                            .iter()
                            .map(|c| c.trim())
                            .collect::<Vec<_>>()
                            .join(" | ");
                        st.table_rows.push(row);
                        st.table_row.clear();
                    }
                    TagEnd::Table => {
                        st.in_table = false;
                        let t = st.table_rows.join("\n");
                        st.table_rows.clear();
                        st.b.push(BlockKind::Table, &t);
                    }
                    _ => {}
                },
                Event::Text(t) => st.text(&t),
                Event::Code(t) => st.text(&t),
                Event::InlineMath(t) | Event::DisplayMath(t) => st.text(&t),
                Event::SoftBreak => {
                    if st.in_code {
                        st.text("\n");
                    } else {
                        st.text(" ");
                    }
                }
                Event::HardBreak => st.text("\n"),
                Event::TaskListMarker(done) => st.text(if done { "[x] " } else { "[ ] " }),
                Event::FootnoteReference(r) => st.text(&format!("[{r}]")),
                Event::Rule => st.flush(),
                // Raw HTML: keep the text between tags (comments and script/style dropped).
                Event::Html(h) => {
                    let t = strip_tags(&h);
                    if !t.trim().is_empty() {
                        st.sep();
                        st.text(t.trim());
                    }
                }
                Event::InlineHtml(_) => {}
            }
        }
        st.flush();
        let meta = front.unwrap_or_default();
        let title = meta
            .get("title")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Ok(st.b.finish(title, meta))
    }
}
