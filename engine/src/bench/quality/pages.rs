//! The question set's raw material: the Rust standard library's item pages, and each page with
//! its one-line summary cut out.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use scraper::{ElementRef, Html, Selector};

use crate::error::{Error, Result};

/// The crates whose items are asked about, in the order that wins when one item is documented
/// under several (std re-exports most of core and alloc: the same page twice would make the
/// "right" document ambiguous).
const CRATES: [&str; 3] = ["std", "alloc", "core"];
/// rustdoc's file name prefixes of the item kinds used.
const KINDS: [&str; 5] = ["struct.", "trait.", "enum.", "fn.", "macro."];
/// Modules of generated items (CPU intrinsics, SIMD lanes): tens of thousands of pages with
/// near-identical text that would fill any even spread over the sorted paths and measure only
/// how the engine tells `_mm256_add_epi8` from `_mm256_add_epi16`.
const GENERATED_MODULES: [&str; 5] = ["arch", "core_arch", "simd", "core_simd", "intrinsics"];
/// rustdoc writes a redirect stub of about 500 bytes for each item's path through a private
/// module and for the old `macro.name!.html` names; the smallest real item page is over 3 KB.
/// Stubs are left out before duplicates are resolved, so one cannot stand in for its item.
const MIN_PAGE_BYTES: u64 = 1024;

/// One item page of the Rust documentation.
#[derive(Debug, Clone)]
pub(in crate::bench) struct ItemPage {
    /// Path under the documentation root, `std/vec/struct.Vec.html`: the document's source.
    pub rel: String,
    pub path: PathBuf,
}

impl ItemPage {
    /// The item's name and module path, `("Vec", "std::vec")`.
    pub fn name_and_module(&self) -> (String, String) {
        let mut parts: Vec<&str> = self.rel.trim_end_matches(".html").split('/').collect();
        let file = parts.pop().unwrap_or_default();
        let name = file.split_once('.').map_or(file, |(_, n)| n);
        (name.trim_end_matches('!').to_string(), parts.join("::"))
    }
}

/// Item pages of std, core and alloc, one per item, sorted by their path inside the crate so
/// an even stride crosses all modules rather than one crate after another.
pub(in crate::bench) fn item_pages(docs: &Path) -> Vec<ItemPage> {
    let mut by_item: BTreeMap<String, ItemPage> = BTreeMap::new();
    for krate in CRATES {
        let root = docs.join(krate);
        for entry in walkdir::WalkDir::new(&root)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
        {
            let Ok(inside) = entry.path().strip_prefix(&root) else {
                continue;
            };
            let file = entry.file_name().to_string_lossy();
            let generated = inside
                .parent()
                .into_iter()
                .flat_map(Path::components)
                .any(|c| GENERATED_MODULES.contains(&c.as_os_str().to_string_lossy().as_ref()));
            if generated || !file.ends_with(".html") || !KINDS.iter().any(|k| file.starts_with(k)) {
                continue;
            }
            if entry.metadata().map_or(true, |m| m.len() < MIN_PAGE_BYTES) {
                continue;
            }
            let key = inside.to_string_lossy().into_owned();
            by_item.entry(key.clone()).or_insert_with(|| ItemPage {
                rel: format!("{krate}/{key}"),
                path: entry.path().to_path_buf(),
            });
        }
    }
    by_item.into_values().collect()
}

/// `n` consecutive windows of equal width over `len` items (fewer when `len < n`): each
/// window gives one page, the first usable one in it, so pages that must be skipped do not
/// shrink the set or pull it towards one module.
pub(in crate::bench) fn windows(len: usize, n: usize) -> Vec<Range<usize>> {
    let n = n.min(len);
    if n == 0 {
        return vec![];
    }
    let width = len / n;
    (0..n)
        .map(|k| {
            let end = if k + 1 == n { len } else { (k + 1) * width };
            k * width..end
        })
        .collect()
}

/// A page with its summary cut out.
#[derive(Debug, PartialEq)]
pub(in crate::bench) struct Stripped {
    /// The first paragraph of the item's docblock, whitespace collapsed.
    pub summary: String,
    /// The page without that paragraph (nor the `<meta name="description">` rustdoc copies it
    /// into, which the HTML parser keeps as metadata).
    pub html: String,
    /// Words left in the page's main content.
    pub remaining_words: usize,
}

/// The CSS selectors of [`strip_summary`], parsed once.
pub(in crate::bench) struct Selectors {
    docblock: Selector,
    meta_description: Selector,
    main: Selector,
}

impl Selectors {
    pub fn new() -> Result<Selectors> {
        let parse =
            |s: &str| Selector::parse(s).map_err(|e| Error::Internal(format!("selector {s}: {e}")));
        Ok(Selectors {
            // The main item's docblock: the item's fields, variants and methods have docblocks
            // of their own, outside the top-level `details.top-doc`.
            docblock: parse("details.top-doc > div.docblock")?,
            meta_description: parse(r#"meta[name="description"]"#)?,
            main: parse("#main-content")?,
        })
    }
}

/// The item's summary and the page without it; `None` when the main docblock does not open
/// with a paragraph (undocumented items, redirect pages).
pub(in crate::bench) fn strip_summary(html: &str, sel: &Selectors) -> Option<Stripped> {
    let mut doc = Html::parse_document(html);
    let (summary, cut) = {
        let block = doc.select(&sel.docblock).next()?;
        let first = block.children().find_map(ElementRef::wrap)?;
        if first.value().name() != "p" {
            return None;
        }
        let summary = collapse(first.text());
        let mut cut = vec![first.id()];
        cut.extend(doc.select(&sel.meta_description).map(|m| m.id()));
        (summary, cut)
    };
    for id in cut {
        if let Some(mut node) = doc.tree.get_mut(id) {
            node.detach();
        }
    }
    let remaining_words = match doc.select(&sel.main).next() {
        Some(main) => collapse(main.text()).split_whitespace().count(),
        None => collapse(doc.root_element().text())
            .split_whitespace()
            .count(),
    };
    Some(Stripped {
        summary,
        html: doc.html(),
        remaining_words,
    })
}

fn collapse<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html><html><head><meta name="description" content="A growable list of things."><title>Things in std::things - Rust</title></head>
<body><section id="main-content" class="content"><h1>Struct <span>Things</span></h1>
<pre class="rust item-decl"><code>pub struct Things { /* private fields */ }</code></pre>
<details class="toggle top-doc" open><summary class="hideme"><span>Expand description</span></summary>
<div class="docblock"><p>A growable   list of <code>Things&lt;T&gt;</code>,
kept in order.</p>
<h2 id="examples">Examples</h2><p>Push a thing, then pop it.</p></div></details>
<details class="toggle method-toggle"><div class="docblock"><p>Adds one thing at the end.</p></div></details>
</section></body></html>"#;

    #[test]
    fn the_summary_is_the_first_paragraph_of_the_main_docblock_and_is_cut_out() {
        let s = strip_summary(PAGE, &Selectors::new().unwrap()).unwrap();
        assert_eq!(s.summary, "A growable list of Things<T>, kept in order.");
        assert!(!s.html.contains("kept in order"), "{}", s.html);
        assert!(
            !s.html.contains("A growable"),
            "meta description left: {}",
            s.html
        );
        // the rest of the docblock, the method's docs and the title stay
        assert!(s.html.contains("Push a thing, then pop it."));
        assert!(s.html.contains("Adds one thing at the end."));
        assert!(
            s.html
                .contains("<title>Things in std::things - Rust</title>")
        );
        assert!(s.remaining_words > 10, "{}", s.remaining_words);
    }

    #[test]
    fn a_page_without_a_leading_summary_paragraph_gives_none() {
        let sel = Selectors::new().unwrap();
        let redirect = r#"<html><head><meta http-equiv="refresh" content="0;URL=macro.x.html"></head><body><p>Redirecting to <a href="macro.x.html">macro.x.html</a>...</p></body></html>"#;
        assert_eq!(strip_summary(redirect, &sel), None);
        // a method's docblock is not the item's
        let undocumented = r#"<html><body><section id="main-content"><details class="toggle method-toggle"><div class="docblock"><p>Method docs here.</p></div></details></section></body></html>"#;
        assert_eq!(strip_summary(undocumented, &sel), None);
        let opens_with_code = r#"<html><body><details class="toggle top-doc"><div class="docblock"><pre>code</pre><p>Later text.</p></div></details></body></html>"#;
        assert_eq!(strip_summary(opens_with_code, &sel), None);
    }

    #[test]
    fn windows_cover_the_list_evenly() {
        assert_eq!(windows(10, 3), vec![0..3, 3..6, 6..10]);
        assert_eq!(windows(2, 5), vec![0..1, 1..2]);
        assert!(windows(0, 5).is_empty());
        assert!(windows(5, 0).is_empty());
    }

    #[test]
    fn item_name_and_module_from_the_path() {
        let p = |rel: &str| ItemPage {
            rel: rel.into(),
            path: PathBuf::new(),
        };
        assert_eq!(
            p("std/vec/struct.Vec.html").name_and_module(),
            ("Vec".into(), "std::vec".into())
        );
        assert_eq!(
            p("core/macro.assert_eq!.html").name_and_module(),
            ("assert_eq".into(), "core".into())
        );
    }
}
