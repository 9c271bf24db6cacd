//! Jupyter notebooks (`.ipynb`): markdown cells as markdown (their headings are the sections),
//! code cells as code blocks in the notebook's language; cell outputs (stream text and plain-text
//! results) only when `ingest.notebook_outputs` is on, since they are often long and noisy.
//!
//! The cells are laid out as one markdown document and handed to the markdown parser, so a
//! heading in one cell is the section of the code cells after it, as a reader sees it.

use serde_json::Value;

use super::{MarkdownParser, ParseError, ParsedDocument, Parser, decode};

/// Jupyter notebook (`.ipynb`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NotebookParser {
    /// Include code cell outputs.
    pub outputs: bool,
}

const FORMAT: &str = "notebook";

/// A cell's `source` (or an output's `text`): a string or a list of lines.
fn joined(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(lines)) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// A fence longer than any backtick run in `code`, so the code cannot close it.
fn fence(code: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in code.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn code_block(out: &mut String, lang: &str, code: &str) {
    let f = fence(code);
    out.push_str(&format!("{f}{lang}\n{}\n{f}\n\n", code.trim_end()));
}

impl Parser for NotebookParser {
    fn name(&self) -> &'static str {
        "notebook"
    }
    fn extensions(&self) -> &'static [&'static str] {
        &["ipynb"]
    }
    fn mime(&self) -> &'static str {
        "application/x-ipynb+json"
    }
    fn parse(&self, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
        let text = decode(bytes);
        let nb: Value = serde_json::from_str(&text).map_err(|e| ParseError::Syntax {
            format: FORMAT,
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        let cells =
            nb.get("cells")
                .and_then(Value::as_array)
                .ok_or_else(|| ParseError::Invalid {
                    format: FORMAT,
                    message: "no `cells` list: not a Jupyter notebook (nbformat 4)".into(),
                })?;
        let lang = nb
            .pointer("/metadata/language_info/name")
            .or_else(|| nb.pointer("/metadata/kernelspec/language"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut md = String::new();
        let (mut code_cells, mut markdown_cells) = (0usize, 0usize);
        for cell in cells {
            let source = joined(cell.get("source"));
            match cell.get("cell_type").and_then(Value::as_str) {
                Some("markdown") => {
                    markdown_cells += 1;
                    md.push_str(source.trim_end());
                    md.push_str("\n\n");
                }
                Some("code") => {
                    code_cells += 1;
                    if !source.trim().is_empty() {
                        code_block(&mut md, &lang, &source);
                    }
                    if self.outputs {
                        for o in cell
                            .get("outputs")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let out = match o.get("output_type").and_then(Value::as_str) {
                                Some("stream") => joined(o.get("text")),
                                Some("execute_result" | "display_data") => {
                                    joined(o.pointer("/data/text~1plain"))
                                }
                                Some("error") => format!(
                                    "{}: {}",
                                    o.get("ename").and_then(Value::as_str).unwrap_or("error"),
                                    o.get("evalue").and_then(Value::as_str).unwrap_or("")
                                ),
                                _ => String::new(),
                            };
                            if !out.trim().is_empty() {
                                code_block(&mut md, "output", &out);
                            }
                        }
                    }
                }
                // Raw cells are for conversion tools (LaTeX, reST snippets): text as it is.
                Some("raw") => {
                    md.push_str(source.trim_end());
                    md.push_str("\n\n");
                }
                _ => {}
            }
        }
        let mut doc = MarkdownParser.parse(md.as_bytes())?;
        doc.metadata.insert("code_cells".into(), code_cells.into());
        doc.metadata
            .insert("markdown_cells".into(), markdown_cells.into());
        if !lang.is_empty() {
            doc.metadata.insert("language".into(), lang.into());
        }
        Ok(doc)
    }
}
