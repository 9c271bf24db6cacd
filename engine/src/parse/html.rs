//! HTML: `<title>`, h1–h6 as sections, paragraphs, list items, tables, `<pre>` as code;
//! script, style, nav (and other non-content elements) skipped; meta description and keywords
//! become metadata.

use scraper::{ElementRef, Html, Node};

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, collapse_ws, decode};

/// HTML (`.html`, `.htm`).
#[derive(Debug, Default, Clone, Copy)]
pub struct HtmlParser;

const SKIP: &[&str] = &[
    "script", "style", "nav", "noscript", "template", "head", "svg", "iframe", "object", "button",
    "select", "canvas",
];
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "address",
    "details",
    "summary",
    "body",
    "html",
    "hr",
    "br",
    "center",
];

/// Generic so the tree's node type need not be named (ego_tree is not re-exported).
enum Step<N> {
    Visit(N),
    Close,
}

struct Walker {
    b: DocBuilder,
    buf: String,
    kinds: Vec<BlockKind>,
}

impl Walker {
    fn flush(&mut self) {
        let kind = self.kinds.last().copied().unwrap_or(BlockKind::Paragraph);
        let t = collapse_ws(&std::mem::take(&mut self.buf));
        self.b.push(kind, &t);
    }
}

/// Visible text of an element (skipping non-content children), whitespace collapsed.
fn element_text(el: ElementRef<'_>) -> String {
    let mut out = String::new();
    let mut stack = vec![*el];
    while let Some(node) = stack.pop() {
        match node.value() {
            Node::Text(t) => {
                out.push_str(t);
            }
            Node::Element(e) => {
                if SKIP.contains(&e.name()) {
                    continue;
                }
                if matches!(e.name(), "br" | "td" | "th" | "li" | "p" | "div") {
                    out.push(' ');
                }
                let children: Vec<_> = node.children().collect();
                stack.extend(children.into_iter().rev());
            }
            _ => {}
        }
    }
    collapse_ws(&out)
}

fn table_text(table: ElementRef<'_>) -> String {
    let mut rows = Vec::new();
    // Rows of this table only (not nested tables) are good enough via descendants.
    for node in table.descendants() {
        if let Some(el) = ElementRef::wrap(node)
            && el.value().name() == "tr"
        {
            let cells: Vec<String> = el
                .children()
                .filter_map(ElementRef::wrap)
                .filter(|c| matches!(c.value().name(), "td" | "th"))
                .map(element_text)
                .collect();
            if cells.iter().any(|c| !c.is_empty()) {
                rows.push(cells.join(" | "));
            }
        }
    }
    rows.join("\n")
}

fn pre_text(el: ElementRef<'_>) -> String {
    el.text().collect::<String>()
}

impl Parser for HtmlParser {
    fn name(&self) -> &'static str {
        "html"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["html", "htm", "xhtml"]
    }
    fn mime(&self) -> &'static str {
        "text/html"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let doc = Html::parse_document(&text);
        let root = doc.root_element();
        let mut meta = serde_json::Map::new();
        let mut title = None;
        if let Some(lang) = root.value().attr("lang") {
            meta.insert("lang".into(), lang.into());
        }
        for node in root.descendants() {
            let Some(el) = ElementRef::wrap(node) else {
                continue;
            };
            match el.value().name() {
                "title" if title.is_none() => {
                    let t = collapse_ws(&el.text().collect::<String>());
                    if !t.is_empty() {
                        title = Some(t);
                    }
                }
                "meta" => {
                    let name = el
                        .value()
                        .attr("name")
                        .or_else(|| el.value().attr("property"))
                        .map(str::to_ascii_lowercase);
                    let content = el.value().attr("content").map(str::trim);
                    if let (Some(name), Some(content)) = (name, content) {
                        match name.as_str() {
                            "description" | "og:description" => {
                                meta.entry("description").or_insert_with(|| content.into());
                            }
                            "keywords" => {
                                let kws: Vec<serde_json::Value> = content
                                    .split(',')
                                    .map(str::trim)
                                    .filter(|k| !k.is_empty())
                                    .map(serde_json::Value::from)
                                    .collect();
                                meta.insert("keywords".into(), kws.into());
                            }
                            "author" => {
                                meta.insert("author".into(), content.into());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }

        let mut w = Walker {
            b: DocBuilder::new(),
            buf: String::new(),
            kinds: vec![BlockKind::Paragraph],
        };
        let mut stack = vec![Step::Visit(*root)];
        while let Some(step) = stack.pop() {
            let node = match step {
                Step::Close => {
                    w.flush();
                    w.kinds.pop();
                    continue;
                }
                Step::Visit(n) => n,
            };
            match node.value() {
                Node::Text(t) => w.buf.push_str(t),
                Node::Element(e) => {
                    let name = e.name();
                    if SKIP.contains(&name) {
                        continue;
                    }
                    let Some(el) = ElementRef::wrap(node) else {
                        continue;
                    };
                    if let Some(level) = name
                        .strip_prefix('h')
                        .and_then(|d| d.parse::<usize>().ok())
                        .filter(|l| (1..=6).contains(l))
                    {
                        w.flush();
                        // Drop permalink markers (`§`, `¶`, `#`) that doc generators add.
                        let text = element_text(el);
                        let text = text
                            .trim_start_matches(['§', '¶', '#', ' '])
                            .trim_end_matches(['§', '¶', '#', ' ']);
                        w.b.heading(level, text);
                        continue;
                    }
                    match name {
                        "pre" => {
                            w.flush();
                            w.b.push(BlockKind::Code, &pre_text(el));
                            continue;
                        }
                        "table" => {
                            w.flush();
                            w.b.push(BlockKind::Table, &table_text(el));
                            continue;
                        }
                        _ => {}
                    }
                    let kind = match name {
                        "li" => Some(BlockKind::ListItem),
                        "blockquote" => Some(BlockKind::Quote),
                        n if BLOCK.contains(&n) => {
                            Some(w.kinds.last().copied().unwrap_or(BlockKind::Paragraph))
                        }
                        _ => None,
                    };
                    if let Some(kind) = kind {
                        w.flush();
                        w.kinds.push(kind);
                        stack.push(Step::Close);
                    }
                    let children: Vec<_> = node.children().collect();
                    stack.extend(children.into_iter().rev().map(Step::Visit));
                }
                _ => {}
            }
        }
        w.flush();
        Ok(w.b.finish(title, meta))
    }
}
