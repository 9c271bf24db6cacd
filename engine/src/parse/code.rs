//! Source code by extension. Where a top-level definition can be told by its first line (a
//! line at column 0 that starts a function, type, class, ... in that language), the file is split
//! at those lines: each definition, with the comments and attributes just above it, is one Code
//! block whose section is the definition's signature; what comes before the first definition
//! (imports, module docs) is a block of its own. Other files are split into blank-line blocks.
//!
//! A pattern per language, not a grammar: a real parser (tree-sitter) would mean a C grammar
//! per language to build; the column-0 rule is right for conventionally formatted code, and a
//! miss only makes a block larger (the chunker still splits it by size).

use std::sync::LazyLock;

use regex::Regex;

use super::{BlockKind, DocBuilder, ParseError, ParsedDocument, Parser, decode};

/// Source code of one language (`.rs`, `.py`, `.js`, `.ts`, `.go`, `.java`, `.c`, `.h`, `.cpp`,
/// `.rb`, `.sh`, ...): [`CodeParser::all`] gives one per language.
#[derive(Debug, Default, Clone, Copy)]
pub struct CodeParser {
    /// Index into `LANGS`.
    lang: usize,
}

/// (language, extensions, top-level definition pattern, line-comment prefixes).
type Lang = (
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    &'static [&'static str],
);

const C_COMMENTS: &[&str] = &["//", "/*", "*", "*/"];
const HASH_COMMENTS: &[&str] = &["#"];

const LANGS: &[Lang] = &[
    (
        "rust",
        &["rs"],
        Some(
            r#"^(?:pub(?:\([^)]*\))?\s+)?(?:(?:async|const|unsafe|default|extern(?:\s+"[^"]*")?)\s+)*(?:fn|struct|enum|trait|impl|mod|type|union|static|const|macro_rules!)\b"#,
        ),
        &["//", "#[", "#!["],
    ),
    (
        "python",
        &["py", "pyi"],
        Some(r"^(?:async\s+def|def|class)\s"),
        &["#", "@"],
    ),
    (
        "javascript",
        &["js", "mjs", "cjs", "jsx"],
        Some(
            r"^(?:export\s+(?:default\s+)?)?(?:async\s+)?(?:function\b|class\b|const\s+\w+\s*=|let\s+\w+\s*=)",
        ),
        C_COMMENTS,
    ),
    (
        "typescript",
        &["ts", "tsx", "mts", "cts"],
        Some(
            r"^(?:export\s+(?:default\s+)?)?(?:declare\s+)?(?:async\s+|abstract\s+)?(?:function\b|class\b|interface\b|enum\b|namespace\b|type\s+\w+|const\s+\w+\s*[=:]|let\s+\w+\s*[=:])",
        ),
        &["//", "/*", "*", "*/", "@"],
    ),
    ("go", &["go"], Some(r"^(?:func|type)\b"), &["//"]),
    (
        "java",
        &["java"],
        Some(
            r"^(?:(?:public|private|protected|abstract|final|static|sealed|non-sealed|strictfp)\s+)*(?:class|interface|enum|record|@interface)\b",
        ),
        &["//", "/*", "*", "*/", "@"],
    ),
    (
        "kotlin",
        &["kt", "kts"],
        Some(
            r"^(?:(?:public|private|internal|protected|abstract|final|open|data|sealed|enum|inline|value|suspend|override)\s+)*(?:class|interface|object|fun|typealias)\b",
        ),
        &["//", "/*", "*", "*/", "@"],
    ),
    (
        "scala",
        &["scala"],
        Some(
            r"^(?:(?:final|sealed|abstract|case|private|implicit)\s+)*(?:class|trait|object|def|enum)\b",
        ),
        &["//", "/*", "*", "*/", "@"],
    ),
    (
        "swift",
        &["swift"],
        Some(
            r"^(?:(?:public|private|internal|fileprivate|open|final)\s+)*(?:class|struct|enum|protocol|extension|func|actor)\b",
        ),
        &["//", "/*", "*", "*/", "@"],
    ),
    (
        "csharp",
        &["cs"],
        Some(
            r"^(?:(?:public|private|internal|protected|abstract|sealed|static|partial|readonly)\s+)*(?:class|interface|struct|enum|record|namespace)\b",
        ),
        &["//", "/*", "*", "*/", "["],
    ),
    (
        "c",
        &["c", "h"],
        // A type and a name followed by `(` and no `;` at column 0 (a function definition), or
        // a struct/enum/union/typedef.
        Some(
            r"^(?:(?:struct|enum|union|typedef)\b|[A-Za-z_][\w\s\*]*[\s\*]\**[A-Za-z_]\w*\s*\([^;]*$)",
        ),
        C_COMMENTS,
    ),
    (
        "cpp",
        &["cpp", "cc", "cxx", "hpp", "hh", "hxx"],
        Some(
            r"^(?:(?:template\s*<.*>\s*)?(?:class|struct|enum|union|namespace|typedef)\b|template\s*<|[A-Za-z_][\w\s\*&:<>,]*[\s\*&]\**[A-Za-z_~][\w:~]*\s*\([^;]*$)",
        ),
        C_COMMENTS,
    ),
    (
        "ruby",
        &["rb"],
        Some(r"^(?:def|class|module)\s"),
        HASH_COMMENTS,
    ),
    (
        "php",
        &["php"],
        Some(r"^(?:(?:abstract|final)\s+)?(?:function|class|interface|trait|enum)\s"),
        &["//", "/*", "*", "*/", "#"],
    ),
    (
        "shell",
        &["sh", "bash", "zsh"],
        Some(r"^(?:function\s+[\w:-]+|[\w:-]+\s*\(\s*\))"),
        HASH_COMMENTS,
    ),
    ("lua", &["lua"], Some(r"^(?:local\s+)?function\s"), &["--"]),
    ("perl", &["pl", "pm"], Some(r"^sub\s"), HASH_COMMENTS),
    (
        "sql",
        &["sql"],
        Some(r"(?i)^(?:create|alter|drop|insert|update|delete|select|with)\b"),
        &["--", "/*", "*"],
    ),
    (
        "r",
        &["r"],
        Some(r"^[\w.]+\s*(?:<-|=)\s*function\b"),
        HASH_COMMENTS,
    ),
];

static PATTERNS: LazyLock<Vec<Option<Regex>>> = LazyLock::new(|| {
    LANGS
        .iter()
        .map(|(_, _, p, _)| p.and_then(|p| Regex::new(p).ok()))
        .collect()
});

/// The section name of a definition: its first line up to the body, shortened.
fn signature(line: &str) -> String {
    let s = line
        .split(['{'])
        .next()
        .unwrap_or(line)
        .trim()
        .trim_end_matches([':', '=', ' '])
        .trim();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    }
}

/// Splits `text` into `(section, code)` blocks: at top-level definitions when `def` is given
/// and matches, otherwise at blank lines.
pub(crate) fn split(
    text: &str,
    def: Option<&Regex>,
    comments: &[&str],
) -> Vec<(Option<String>, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = match def {
        Some(re) => (0..lines.len())
            .filter(|&i| {
                let l = lines[i];
                !l.starts_with([' ', '\t']) && re.is_match(l)
            })
            .collect(),
        None => Vec::new(),
    };
    if starts.is_empty() {
        return text
            .split("\n\n")
            .map(|b| b.trim_matches('\n'))
            .filter(|b| !b.trim().is_empty())
            .map(|b| (None, b.to_string()))
            .collect();
    }
    // Pull each start up over the comments and attributes directly above it.
    let mut begins = Vec::with_capacity(starts.len());
    let mut floor = 0;
    for &s in &starts {
        let mut b = s;
        while b > floor {
            let prev = lines[b - 1].trim_start();
            if !prev.is_empty() && comments.iter().any(|c| prev.starts_with(c)) {
                b -= 1;
            } else {
                break;
            }
        }
        begins.push(b);
        floor = s + 1;
    }
    let mut out = Vec::new();
    let preamble = lines[..begins[0]].join("\n");
    if !preamble.trim().is_empty() {
        out.push((None, preamble));
    }
    for (k, (&b, &s)) in begins.iter().zip(&starts).enumerate() {
        let end = begins.get(k + 1).copied().unwrap_or(lines.len());
        out.push((Some(signature(lines[s])), lines[b..end].join("\n")));
    }
    out
}

/// Parses source text of language `lang` (an index into `LANGS`).
fn parse_code(lang: usize, bytes: &[u8]) -> ParsedDocument {
    let text = decode(bytes);
    let (name, comments) = LANGS.get(lang).map_or(("text", &[][..]), |l| (l.0, l.3));
    let def = PATTERNS.get(lang).and_then(Option::as_ref);
    let mut b = DocBuilder::new();
    let mut definitions = 0usize;
    for (section, code) in split(&text, def, comments) {
        let path = match section {
            Some(s) => {
                definitions += 1;
                vec![s]
            }
            None => Vec::new(),
        };
        b.push_with_path(path, BlockKind::Code, &code);
    }
    let mut meta = serde_json::Map::new();
    meta.insert("language".into(), name.into());
    meta.insert("definitions".into(), definitions.into());
    let mut doc = b.finish(None, meta);
    // A definition's signature is no title for the file; its name is.
    doc.title = None;
    doc
}

impl CodeParser {
    /// One parser per language, each claiming that language's extensions.
    pub fn all() -> impl Iterator<Item = CodeParser> {
        (0..LANGS.len()).map(|lang| CodeParser { lang })
    }
}

impl Parser for CodeParser {
    fn name(&self) -> &'static str {
        LANGS.get(self.lang).map_or("code", |l| l.0)
    }
    fn extensions(&self) -> &'static [&'static str] {
        LANGS.get(self.lang).map_or(&[], |l| l.1)
    }
    fn mime(&self) -> &'static str {
        "text/x-source"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        Ok(parse_code(self.lang, bytes))
    }
}
