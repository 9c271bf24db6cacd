//! `instant-db bench --suite quality`: retrieval quality on questions nobody tuned the engine
//! to. The Rust standard library's item pages (structs, traits, enums, functions, macros of
//! std, core and alloc) each open with a one-line summary written by the library's authors.
//! That paragraph is cut out of its page, the pages are ingested, and each summary is asked in
//! every mode: the right answer is the page it came from, which no longer contains it, so
//! neither mode can win by matching the query verbatim.
//!
//! Scores are per document (a page split into many chunks counts once, at its best chunk):
//! recall@1, recall@10 and MRR@10 over the queries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use scraper::{ElementRef, Html, Selector};
use serde_json::{Value, json};

use super::{Ticker, fresh_engine, latency_stats, reopened, round};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::SourceDoc;
use crate::search::{Mode, SearchRequest};

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
/// Shorter summaries ("A draining iterator.") name the item rather than describe it.
const MIN_SUMMARY_WORDS: usize = 4;
/// rustdoc writes a redirect stub of about 500 bytes for each item's path through a private
/// module and for the old `macro.name!.html` names; the smallest real item page is over 3 KB.
/// Stubs are left out before duplicates are resolved, so one cannot stand in for its item.
const MIN_PAGE_BYTES: u64 = 1024;
const TOP_K: usize = 10;

/// One item page of the Rust documentation.
#[derive(Debug, Clone)]
pub(super) struct ItemPage {
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
pub(super) fn item_pages(docs: &Path) -> Vec<ItemPage> {
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
pub(super) fn windows(len: usize, n: usize) -> Vec<Range<usize>> {
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
pub(super) struct Stripped {
    /// The first paragraph of the item's docblock, whitespace collapsed.
    pub summary: String,
    /// The page without that paragraph (nor the `<meta name="description">` rustdoc copies it
    /// into, which the HTML parser keeps as metadata).
    pub html: String,
    /// Words left in the page's main content.
    pub remaining_words: usize,
}

/// The CSS selectors of [`strip_summary`], parsed once.
pub(super) struct Selectors {
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
pub(super) fn strip_summary(html: &str, sel: &Selectors) -> Option<Stripped> {
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

/// Rank (1-based) of document `want` in `hit_docs`, the documents of a ranked list of chunk
/// hits, each document counted once at its first (best) hit; `None` when it is not among the
/// first `k` documents.
pub(super) fn document_rank<'a>(
    hit_docs: impl IntoIterator<Item = &'a str>,
    want: &str,
    k: usize,
) -> Option<usize> {
    let mut seen = HashSet::new();
    hit_docs
        .into_iter()
        .filter(|d| seen.insert(*d))
        .take(k)
        .position(|d| d == want)
        .map(|i| i + 1)
}

/// recall@1, recall@10 and MRR@10 of a query set, from each query's rank of its document.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Scores {
    pub recall_at_1: f64,
    pub recall_at_10: f64,
    pub mrr_at_10: f64,
}

pub(super) fn scores(ranks: &[Option<usize>]) -> Scores {
    if ranks.is_empty() {
        return Scores::default();
    }
    let n = ranks.len() as f64;
    let within = |k: usize| ranks.iter().filter(|r| r.is_some_and(|r| r <= k)).count() as f64;
    Scores {
        recall_at_1: within(1) / n,
        recall_at_10: within(10) / n,
        mrr_at_10: ranks
            .iter()
            .filter_map(|r| r.filter(|&r| r <= 10))
            .map(|r| 1.0 / r as f64)
            .sum::<f64>()
            / n,
    }
}

/// Why examined pages were not used.
#[derive(Debug, Default)]
struct Skipped {
    no_summary: usize,
    short_summary: usize,
    empty_remaining: usize,
}

pub(super) fn run(config: &Config, docs: &Path, pages: usize) -> Result<Value> {
    let candidates = item_pages(docs);
    if candidates.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no std/core/alloc item pages under {}",
            docs.display()
        )));
    }
    eprintln!(
        "bench: quality: choosing {pages} of {} std/core/alloc item pages …",
        candidates.len()
    );
    let sel = Selectors::new()?;
    let mut skipped = Skipped::default();
    let mut chosen: Vec<(ItemPage, Stripped)> = vec![];
    for window in windows(candidates.len(), pages) {
        for page in &candidates[window] {
            let html = std::fs::read_to_string(&page.path)
                .map_err(|e| Error::io(format!("read {}", page.path.display()), e))?;
            match strip_summary(&html, &sel) {
                None => skipped.no_summary += 1,
                Some(s) if s.summary.split_whitespace().count() < MIN_SUMMARY_WORDS => {
                    skipped.short_summary += 1
                }
                Some(s) if s.remaining_words == 0 => skipped.empty_remaining += 1,
                Some(s) => {
                    chosen.push((page.clone(), s));
                    break;
                }
            }
        }
    }
    // A summary shared by two pages ("An iterator over the entries of a map.") has no single
    // right answer: both pages stay in the corpus, neither is asked.
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (_, s) in &chosen {
        *uses.entry(s.summary.to_lowercase()).or_default() += 1;
    }
    let queries: Vec<(String, String)> = chosen
        .iter()
        .filter(|(_, s)| uses.get(&s.summary.to_lowercase()) == Some(&1))
        .map(|(p, s)| (s.summary.clone(), p.rel.clone()))
        .collect();
    let duplicate_summaries = chosen.len() - queries.len();
    let examples: Vec<Value> = queries
        .iter()
        .step_by((queries.len() / 3).max(1))
        .take(3)
        .map(|(q, d)| json!({"query": q, "document": d}))
        .collect();

    let tmp = tempfile::tempdir().map_err(|e| Error::io("temp dir", e))?;
    let engine = fresh_engine(config, tmp.path())?;
    let sources: Vec<SourceDoc> = chosen
        .into_iter()
        .map(|(p, s)| SourceDoc {
            name: p.rel.clone(),
            source: p.rel,
            bytes: s.html.into_bytes(),
            modified_at: None,
            metadata: None,
        })
        .collect();
    let ingested_pages = sources.len();
    eprintln!("bench: quality: ingesting {ingested_pages} pages without their summaries …");
    let ticker = Ticker::new("quality: ingested", ingested_pages);
    let report = crate::ingest::ingest_sources(&engine, sources, &ticker)?;
    if report.failed + report.skipped > 0 {
        eprintln!(
            "bench: quality: {} pages failed or were skipped: {:?}",
            report.failed + report.skipped,
            report
                .problems
                .iter()
                .map(|p| &p.source)
                .collect::<Vec<_>>()
        );
    }
    eprintln!(
        "bench: quality: {} queries ({} pages skipped: {} without a summary paragraph, {} with \
         a summary under {MIN_SUMMARY_WORDS} words, {} empty without it; {} summaries shared by \
         two pages not asked)",
        queries.len(),
        skipped.no_summary + skipped.short_summary + skipped.empty_remaining,
        skipped.no_summary,
        skipped.short_summary,
        skipped.empty_remaining,
        duplicate_summaries,
    );

    let mut out = serde_json::Map::new();
    out.insert("build".into(), json!(super::build_profile()));
    out.insert("item_pages_available".into(), json!(candidates.len()));
    out.insert("pages_requested".into(), json!(pages));
    out.insert(
        "pages_ingested".into(),
        json!(report.added + report.updated),
    );
    out.insert("chunks".into(), json!(report.chunks));
    out.insert("ingest_seconds".into(), json!(round(report.seconds, 1)));
    out.insert("queries".into(), json!(queries.len()));
    out.insert(
        "pages_skipped".into(),
        json!({
            "no_summary_paragraph": skipped.no_summary,
            "summary_under_4_words": skipped.short_summary,
            "empty_without_summary": skipped.empty_remaining,
        }),
    );
    out.insert(
        "summaries_shared_by_pages_not_asked".into(),
        json!(duplicate_summaries),
    );
    out.insert("query_examples".into(), Value::Array(examples));
    for (mode, row) in ask(
        &engine,
        &queries,
        &[Mode::Keyword, Mode::Vector, Mode::Hybrid],
    )? {
        out.insert(mode.as_str().into(), row);
    }
    // Again with every vector search an exact scan, on the same database: the graph's own
    // misses vary from one build to the next (it is built in parallel), which moves the rows
    // above by about 0.01 between runs; these rows compare models and recipes without them.
    eprintln!("bench: quality: the same queries with exact vector search …");
    let mut exact = config.clone();
    exact.search.exact_search_below = usize::MAX;
    let engine = reopened(engine, &exact, tmp.path())?;
    let mut rows = serde_json::Map::new();
    for (mode, row) in ask(&engine, &queries, &[Mode::Vector, Mode::Hybrid])? {
        rows.insert(mode.as_str().into(), row);
    }
    out.insert("exact_vector_search".into(), Value::Object(rows));
    Ok(Value::Object(out))
}

/// Asks every query in each of `modes`: recall@1, recall@10, MRR@10 and latency per mode.
fn ask(
    engine: &Engine,
    queries: &[(String, String)],
    modes: &[Mode],
) -> Result<Vec<(Mode, Value)>> {
    let mut rows = vec![];
    for &mode in modes {
        let mut ranks = Vec::with_capacity(queries.len());
        let mut ms = Vec::with_capacity(queries.len());
        for (i, (query, want)) in queries.iter().enumerate() {
            let req = SearchRequest {
                query: query.clone(),
                mode,
                top_k: Some(TOP_K),
                ..Default::default()
            };
            let t = Instant::now();
            let resp = engine.search(&req)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let docs = resp.hits.iter().map(|h| h.document.source.as_str());
            ranks.push(document_rank(docs, want, TOP_K));
            if (i + 1) % 50 == 0 || i + 1 == queries.len() {
                eprintln!(
                    "bench: quality: {} {}/{}",
                    mode.as_str(),
                    i + 1,
                    queries.len()
                );
            }
        }
        let s = scores(&ranks);
        let mut row = json!({
            "recall_at_1": round(s.recall_at_1, 3),
            "recall_at_10": round(s.recall_at_10, 3),
            "mrr_at_10": round(s.mrr_at_10, 3),
        });
        row["latency"] = latency_stats(ms);
        rows.push((mode, row));
    }
    Ok(rows)
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
    fn ranks_count_each_document_once_at_its_best_chunk() {
        let hits = ["a", "a", "b", "a", "c", "d"];
        assert_eq!(document_rank(hits, "a", 10), Some(1));
        assert_eq!(document_rank(hits, "b", 10), Some(2));
        assert_eq!(document_rank(hits, "c", 10), Some(3));
        assert_eq!(document_rank(hits, "d", 3), None, "fourth document, past k");
        assert_eq!(document_rank(hits, "z", 10), None);
    }

    #[test]
    fn recall_and_mrr_from_ranks() {
        let s = scores(&[Some(1), Some(2), None, Some(10), Some(11)]);
        assert_eq!(s.recall_at_1, 0.2);
        assert_eq!(s.recall_at_10, 0.6);
        assert!((s.mrr_at_10 - (1.0 + 0.5 + 0.1) / 5.0).abs() < 1e-12);
        assert_eq!(scores(&[]), Scores::default());
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
