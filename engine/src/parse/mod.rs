//! Parser registry: turns the bytes of a file into a [`ParsedDocument`] — an optional title, a
//! list of structural [`Block`]s in document order (each with its section path) and
//! format-derived metadata.
//!
//! Adding a format is one new module implementing [`Parser`] plus one `register` line in
//! [`ParserRegistry::default`].
//!
//! All parsers decode invalid UTF-8 lossily and never panic. Structured formats (JSON, JSONL,
//! YAML, CSV/TSV, XML) return a [`ParseError::Syntax`] naming the line and column of the first
//! problem.

use std::collections::HashMap;
use std::path::Path;

mod code;
mod csv;
mod docx;
mod epub;
mod html;
mod json;
mod log;
mod mail;
mod markdown;
mod notebook;
mod odf;
mod package;
mod pdf;
mod pptx;
mod rst;
mod rtf;
mod spreadsheet;
mod structured;
mod txt;
mod xml;
mod xmltree;
mod yaml;

pub use self::code::CodeParser;
pub use self::csv::{CsvParser, TsvParser};
pub use self::docx::DocxParser;
pub use self::epub::EpubParser;
pub use self::html::HtmlParser;
pub use self::json::{JsonParser, JsonlParser};
pub use self::log::LogParser;
pub use self::mail::{EmlParser, MboxParser};
pub use self::markdown::MarkdownParser;
pub use self::notebook::NotebookParser;
pub use self::odf::{OdpParser, OdtParser};
pub use self::pdf::PdfParser;
pub use self::pptx::PptxParser;
pub use self::rst::RstParser;
pub use self::rtf::RtfParser;
pub use self::spreadsheet::SpreadsheetParser;
pub use self::txt::TextParser;
pub use self::xml::XmlParser;
pub use self::yaml::YamlParser;

/// Errors produced while parsing a document.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The input is syntactically broken. `line` and `column` are 1-based.
    #[error("invalid {format} at line {line}, column {column}: {message}")]
    Syntax {
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    /// The input is well-formed but cannot be turned into a document.
    #[error("invalid {format}: {message}")]
    Invalid {
        format: &'static str,
        message: String,
    },
    /// No parser is registered for this extension.
    #[error("unsupported file type: {0:?}")]
    Unsupported(String),
    /// The file is encrypted or password-protected: its text cannot be read without the key.
    #[error("{format} is encrypted ({message}); save a copy without the password and ingest that")]
    Encrypted {
        format: &'static str,
        message: String,
    },
    /// The file is damaged: its container or internal structure cannot be read.
    #[error(
        "corrupt {format}: {message}; open and re-save it in the application that made it, or export it again"
    )]
    Corrupt {
        format: &'static str,
        message: String,
    },
}

/// The kind of a structural block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    Heading,
    Paragraph,
    ListItem,
    Code,
    Table,
    Record,
    Quote,
}

/// One structural block of a document. For a heading, `section_path` includes the heading
/// itself; other blocks carry the path of the headings above them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    pub section_path: Vec<String>,
    pub kind: BlockKind,
    pub text: String,
}

/// The result of parsing one file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParsedDocument {
    pub title: Option<String>,
    /// Blocks in document order.
    pub blocks: Vec<Block>,
    /// Format-derived metadata (front matter, CSV columns, HTML meta, ...).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Files embedded in this one (mail attachments) that ingest may take as documents of their
    /// own. The parser lists them in the text and metadata too, so nothing depends on that.
    #[serde(skip)]
    pub attachments: Vec<Attachment>,
}

/// A file carried inside another (a mail attachment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// The attachment's file name; its extension picks the parser.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Options that change what some parsers produce (from the `ingest` configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Include the outputs of Jupyter notebook code cells (`ingest.notebook_outputs`).
    pub notebook_outputs: bool,
}

/// Separator placed between blocks in [`ParsedDocument::full_text`].
pub const BLOCK_SEPARATOR: &str = "\n\n";

impl ParsedDocument {
    /// The blocks' text joined by `"\n\n"`. Chunk offsets (`doc_start`/`doc_end`) refer to this.
    pub fn full_text(&self) -> String {
        let len = self.blocks.iter().map(|b| b.text.len() + 2).sum::<usize>();
        let mut out = String::with_capacity(len);
        for (i, b) in self.blocks.iter().enumerate() {
            if i > 0 {
                out.push_str(BLOCK_SEPARATOR);
            }
            out.push_str(&b.text);
        }
        out
    }
}

/// A parser for one file format.
pub trait Parser: Send + Sync {
    /// Short stable name, e.g. `"markdown"`.
    fn name(&self) -> &'static str;
    /// Lower-case extensions without the dot, e.g. `["md", "markdown"]`.
    fn extensions(&self) -> &'static [&'static str];
    /// The mime type of the format.
    fn mime(&self) -> &'static str;
    /// Parse the raw bytes of a file.
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError>;
}

/// Maps file extensions to parsers. `Default` registers every built-in parser.
pub struct ParserRegistry {
    parsers: Vec<Box<dyn Parser>>,
    by_ext: HashMap<&'static str, usize>,
}

impl std::fmt::Debug for ParserRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParserRegistry")
            .field("extensions", &self.extensions())
            .finish()
    }
}

impl Default for ParserRegistry {
    fn default() -> Self {
        Self::with_options(ParseOptions::default())
    }
}

impl ParserRegistry {
    /// Every built-in parser, configured by `opts`.
    pub fn with_options(opts: ParseOptions) -> Self {
        let mut r = Self::empty();
        r.register(Box::new(TextParser));
        r.register(Box::new(MarkdownParser));
        r.register(Box::new(RstParser));
        r.register(Box::new(LogParser));
        r.register(Box::new(HtmlParser));
        r.register(Box::new(XmlParser));
        r.register(Box::new(JsonParser));
        r.register(Box::new(JsonlParser));
        r.register(Box::new(YamlParser));
        r.register(Box::new(CsvParser));
        r.register(Box::new(TsvParser));
        r.register(Box::new(PdfParser));
        r.register(Box::new(DocxParser));
        r.register(Box::new(PptxParser));
        r.register(Box::new(SpreadsheetParser));
        r.register(Box::new(OdtParser));
        r.register(Box::new(OdpParser));
        r.register(Box::new(RtfParser));
        r.register(Box::new(EpubParser));
        r.register(Box::new(EmlParser));
        r.register(Box::new(MboxParser));
        r.register(Box::new(NotebookParser {
            outputs: opts.notebook_outputs,
        }));
        for p in CodeParser::all() {
            r.register(Box::new(p));
        }
        r
    }

    /// A registry with no parsers.
    pub fn empty() -> Self {
        Self {
            parsers: Vec::new(),
            by_ext: HashMap::new(),
        }
    }

    /// Register a parser; a later registration wins for an extension both claim.
    pub fn register(&mut self, p: Box<dyn Parser>) {
        let idx = self.parsers.len();
        for ext in p.extensions() {
            self.by_ext.insert(ext, idx);
        }
        self.parsers.push(p);
    }

    /// The parser for a file, chosen by its extension (case-insensitive).
    pub fn for_path(&self, path: &Path) -> Option<&dyn Parser> {
        let ext = path.extension()?.to_str()?;
        self.for_extension(ext)
    }

    /// The parser for an extension (with or without a leading dot, case-insensitive).
    pub fn for_extension(&self, ext: &str) -> Option<&dyn Parser> {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        let idx = *self.by_ext.get(ext.as_str())?;
        self.parsers.get(idx).map(|p| p.as_ref())
    }

    /// Every supported extension, sorted.
    pub fn extensions(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.by_ext.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Parse a file's bytes with the parser for its path.
    pub fn parse_path(&self, path: &Path, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        match self.for_path(path) {
            Some(p) => p.parse(bytes),
            None => Err(ParseError::Unsupported(
                path.extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the parsers.

/// Decode bytes as UTF-8, replacing invalid sequences; strips a leading BOM and normalises
/// CRLF/CR line endings to LF.
pub(crate) fn decode(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.strip_prefix('\u{feff}').unwrap_or(&s);
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_string()
    }
}

/// Collapse runs of whitespace into single spaces and trim.
pub(crate) fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// 1-based line and column of a byte offset in `s`.
pub(crate) fn line_col(s: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(s.len());
    let mut off = offset;
    while off > 0 && !s.is_char_boundary(off) {
        off -= 1;
    }
    let before = &s[..off];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, col)
}

/// Builds a [`ParsedDocument`], tracking the heading stack so every block gets its section path.
#[derive(Debug, Default)]
pub(crate) struct DocBuilder {
    blocks: Vec<Block>,
    headings: Vec<(usize, String)>,
    path: Vec<String>,
    first_heading: Option<(usize, String)>,
}

impl DocBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Add a heading of `level` (1 = top). Empty headings are ignored.
    pub(crate) fn heading(&mut self, level: usize, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let title = collapse_ws(text);
        while self.headings.last().is_some_and(|(l, _)| *l >= level) {
            self.headings.pop();
        }
        self.headings.push((level, title.clone()));
        self.path = self.headings.iter().map(|(_, t)| t.clone()).collect();
        match &self.first_heading {
            Some((l, _)) if *l <= level => {}
            _ => self.first_heading = Some((level, title)),
        }
        self.blocks.push(Block {
            section_path: self.path.clone(),
            kind: BlockKind::Heading,
            text: text.to_string(),
        });
    }

    /// Close every open section at `level` or deeper (following blocks belong to the parent).
    pub(crate) fn end_section(&mut self, level: usize) {
        while self.headings.last().is_some_and(|(l, _)| *l >= level) {
            self.headings.pop();
        }
        self.path = self.headings.iter().map(|(_, t)| t.clone()).collect();
    }

    /// Add a non-heading block under the current section. Blank text is ignored; the text is
    /// trimmed.
    pub(crate) fn push(&mut self, kind: BlockKind, text: &str) {
        let text = if kind == BlockKind::Code {
            text.trim_matches('\n').trim_end()
        } else {
            text.trim()
        };
        if text.is_empty() {
            return;
        }
        self.blocks.push(Block {
            section_path: self.path.clone(),
            kind,
            text: text.to_string(),
        });
    }

    /// Add a block with an explicit section path (for formats without headings).
    pub(crate) fn push_with_path(&mut self, path: Vec<String>, kind: BlockKind, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.blocks.push(Block {
            section_path: path,
            kind,
            text: text.to_string(),
        });
    }

    /// The highest-level heading seen first (a document title candidate).
    pub(crate) fn top_heading(&self) -> Option<String> {
        self.first_heading.as_ref().map(|(_, t)| t.clone())
    }

    pub(crate) fn finish(
        self,
        title: Option<String>,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> ParsedDocument {
        let title = title
            .map(|t| collapse_ws(&t))
            .filter(|t| !t.is_empty())
            .or_else(|| self.top_heading());
        ParsedDocument {
            title,
            blocks: self.blocks,
            metadata,
            attachments: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
