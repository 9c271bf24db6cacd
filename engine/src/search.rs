//! Search: vector (embedding similarity), keyword (FTS5 BM25) and hybrid (reciprocal-rank
//! fusion of both, the default). Filters restrict candidates inside each retriever.

use std::collections::{HashMap, HashSet};

use rusqlite::params_from_iter;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::{self, Condition, FilterInput};

mod keyword;
pub use keyword::{
    KeywordSlice, chunk_id_span, fts_query, keyword_candidates, keyword_slice, merge_slices,
    query_terms, rowid_slices, slice_count,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Hybrid,
    Vector,
    Keyword,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "vector" => Ok(Mode::Vector),
            "keyword" => Ok(Mode::Keyword),
            other => Err(Error::InvalidInput(format!(
                "unknown search mode `{other}`; use hybrid, vector or keyword"
            ))),
        }
    }
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Vector => "vector",
            Mode::Keyword => "keyword",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The question or keywords.
    pub query: String,
    #[serde(default)]
    pub mode: Mode,
    /// Hits to return (default from config, at most `search.max_top_k`).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Hits to skip, for pagination.
    #[serde(default)]
    pub offset: usize,
    /// Drop hits scoring below this (cosine for vector, BM25 for keyword, RRF for hybrid).
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Metadata filter: short syntax, a list of conditions, or a shorthand object.
    #[serde(default)]
    pub filter: Option<FilterInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HitDocument {
    pub id: String,
    pub source: String,
    pub title: Option<String>,
    pub doc_type: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HitChunk {
    pub id: i64,
    pub index: i64,
    pub section_path: Vec<String>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub rank: usize,
    /// The mode's score: cosine similarity, BM25 (higher is better) or RRF.
    pub score: f32,
    pub vector_score: Option<f32>,
    pub keyword_score: Option<f32>,
    pub document: HitDocument,
    pub chunk: HitChunk,
    /// Passages of the chunk with query terms wrapped in `<mark>`…`</mark>`.
    pub highlights: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub query: String,
    pub mode: Mode,
    pub hits: Vec<SearchHit>,
    pub took_ms: f64,
    /// Set when the requested mode could not be fully served (e.g. the model is down and hybrid
    /// fell back to keyword search).
    pub degraded: Option<String>,
}

/// Validated request parameters.
#[derive(Debug)]
pub struct Plan {
    pub query: String,
    pub mode: Mode,
    pub top_k: usize,
    pub offset: usize,
    pub threshold: Option<f32>,
    pub conditions: Vec<Condition>,
}

pub fn plan(req: &SearchRequest, cfg: &crate::config::SearchConfig) -> Result<Plan> {
    let query = req.query.trim().to_string();
    if query.is_empty() {
        return Err(Error::InvalidInput(
            "the query is empty; send some words to search for".into(),
        ));
    }
    let chars = query.chars().count();
    if chars > cfg.max_query_chars {
        return Err(Error::InvalidInput(format!(
            "the query has {chars} characters, more than the limit of {}",
            cfg.max_query_chars
        )));
    }
    let top_k = req.top_k.unwrap_or(cfg.default_top_k);
    if top_k == 0 || top_k > cfg.max_top_k {
        return Err(Error::InvalidInput(format!(
            "top_k must be between 1 and {}",
            cfg.max_top_k
        )));
    }
    if req.offset > 10 * cfg.max_top_k {
        return Err(Error::InvalidInput(format!(
            "offset must be at most {}",
            10 * cfg.max_top_k
        )));
    }
    if let Some(t) = req.score_threshold
        && !t.is_finite()
    {
        return Err(Error::InvalidInput(
            "score_threshold must be a finite number".into(),
        ));
    }
    let conditions = match &req.filter {
        Some(f) => f.conditions()?,
        None => vec![],
    };
    Ok(Plan {
        query,
        mode: req.mode,
        top_k,
        offset: req.offset,
        threshold: req.score_threshold,
        conditions,
    })
}

/// Chunk ids that pass the filter (`None` when there is no filter: everything passes).
pub fn allowed_chunks(
    conn: &rusqlite::Connection,
    conds: &[Condition],
) -> Result<Option<HashSet<i64>>> {
    if conds.is_empty() {
        return Ok(None);
    }
    let (where_sql, params) = filter::to_sql(conds);
    let sql = format!(
        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE {where_sql}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let ids = stmt.query_map(params_from_iter(params), |r| r.get::<_, i64>(0))?;
    Ok(Some(ids.collect::<rusqlite::Result<_>>()?))
}

/// Reciprocal-rank fusion: each list contributes 1/(k + rank) for every id it ranks.
pub fn rrf(lists: &[&[(i64, f32)]], k: f32) -> Vec<(i64, f32)> {
    let mut scores: HashMap<i64, f32> = HashMap::new();
    for list in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

/// Loads the hits' chunks and documents, in the given order.
pub fn load_hits(
    conn: &rusqlite::Connection,
    ranked: &[(i64, f32)],
    terms: &[String],
) -> Result<Vec<(HitDocument, HitChunk, Vec<String>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.chunk_index, c.section_path, c.text, d.id, d.source, d.title, d.doc_type, d.metadata
         FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?1",
    )?;
    let mut out = Vec::with_capacity(ranked.len());
    for (id, _) in ranked {
        let row = stmt.query_row([id], |r| {
            let section: String = r.get(2)?;
            let meta: String = r.get(8)?;
            Ok((
                HitDocument {
                    id: r.get(4)?,
                    source: r.get(5)?,
                    title: r.get(6)?,
                    doc_type: r.get(7)?,
                    metadata: serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null),
                },
                HitChunk {
                    id: r.get(0)?,
                    index: r.get(1)?,
                    section_path: serde_json::from_str(&section).unwrap_or_default(),
                    text: r.get(3)?,
                },
            ))
        });
        match row {
            Ok((doc, chunk)) => {
                let highlights = highlight(&chunk.text, terms, 240);
                out.push((doc, chunk, highlights));
            }
            // Deleted between retrieval and load: skip it rather than fail the search.
            Err(rusqlite::Error::QueryReturnedNoRows) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Up to three passages around query terms, terms wrapped in `<mark>`; the chunk's opening
/// when no term occurs (a purely semantic match).
pub fn highlight(text: &str, terms: &[String], width: usize) -> Vec<String> {
    let lower = text.to_lowercase();
    // Lowercasing can change byte lengths for some scripts; then positions are unreliable and
    // the plain opening is returned.
    let aligned = lower.len() == text.len();
    let mut spans: Vec<(usize, usize)> = vec![];
    if aligned {
        for t in terms.iter().filter(|t| t.chars().count() >= 2) {
            let mut from = 0;
            while let Some(pos) = lower[from..].find(t.as_str()) {
                let start = from + pos;
                let end = start + t.len();
                let word_start = start == 0
                    || !lower[..start]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_alphanumeric);
                if word_start {
                    spans.push((start, end));
                }
                from = end;
            }
        }
    }
    spans.sort();
    let opening = || {
        let mut end = width.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut s = text[..end].trim().to_string();
        if end < text.len() {
            s.push('…');
        }
        vec![s]
    };
    if spans.is_empty() {
        return opening();
    }
    let mut out = vec![];
    let mut covered_until = 0;
    for &(s, _) in &spans {
        if s < covered_until || out.len() == 3 {
            continue;
        }
        let mut a = s.saturating_sub(width / 3);
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        let mut b = (a + width).min(text.len());
        while !text.is_char_boundary(b) {
            b -= 1;
        }
        let mut snippet = String::new();
        if a > 0 {
            snippet.push('…');
        }
        let mut cursor = a;
        for &(ms, me) in spans.iter().filter(|(ms, me)| *ms >= a && *me <= b) {
            if ms < cursor {
                continue;
            }
            snippet.push_str(&text[cursor..ms]);
            snippet.push_str("<mark>");
            snippet.push_str(&text[ms..me]);
            snippet.push_str("</mark>");
            cursor = me;
        }
        snippet.push_str(&text[cursor..b]);
        if b < text.len() {
            snippet.push('…');
        }
        out.push(snippet.replace('\n', " "));
        covered_until = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement_between_lists() {
        let a = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let b = [(3, 9.0), (1, 8.0), (4, 7.0)];
        let fused = rrf(&[&a, &b], 60.0);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 3);
        assert_eq!(fused.len(), 4);
    }

    #[test]
    fn highlight_marks_whole_word_starts() {
        let h = highlight(
            "Reset your password from the login page. Passwords expire.",
            &["password".into()],
            200,
        );
        assert_eq!(h.len(), 1);
        assert!(h[0].contains("<mark>password</mark> from"), "{h:?}");
        assert!(h[0].contains("<mark>Password</mark>s expire"), "{h:?}");
    }

    #[test]
    fn highlight_falls_back_to_the_opening() {
        let h = highlight("Nothing matches here", &["zebra".into()], 7);
        assert_eq!(h, vec!["Nothing…".to_string()]);
    }

    #[test]
    fn plan_rejects_bad_requests_with_clear_messages() {
        let cfg = crate::config::SearchConfig::default();
        let req = |q: &str| SearchRequest {
            query: q.into(),
            ..Default::default()
        };
        assert!(
            plan(&req("  "), &cfg)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let long = "x".repeat(cfg.max_query_chars + 1);
        assert!(
            plan(&req(&long), &cfg)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        let mut r = req("ok");
        r.top_k = Some(0);
        assert!(plan(&r, &cfg).unwrap_err().to_string().contains("top_k"));
        assert!("fuzzy".parse::<Mode>().is_err());
    }
}
