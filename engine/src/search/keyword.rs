//! Keyword retrieval: the query's words as an FTS5 OR query ranked by BM25. BM25 scores every
//! row that matches any word, so on a large collection one query is one core's worth of work
//! for milliseconds (6.5 ms at 100k chunks); it is split into slices of the rowid range that
//! are scored on separate threads and merged, which gives the same list: a row's BM25 score
//! depends only on the row and on collection-wide statistics, never on the other rows.

use std::collections::HashSet;

use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use crate::error::Result;
use crate::filter::{self, Condition};

/// English function words. Left in an OR query they match nearly every chunk, so BM25 has to
/// score the whole collection (74 ms instead of a few at 100k chunks) while adding nothing to
/// the ranking that the content words do not already give.
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did",
    "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it",
    "its", "me", "my", "of", "on", "or", "our", "should", "so", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "to", "us", "was", "we", "were", "what", "when",
    "where", "which", "who", "why", "will", "with", "would", "you", "your",
];

/// Words of the query, lowercased, for FTS and highlighting. Stop words are dropped unless the
/// query has nothing else ("who are you" still searches for its words).
pub fn query_terms(query: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| seen.insert(w.clone()))
        .collect();
    let content: Vec<String> = words
        .iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    if content.is_empty() { words } else { content }
}

/// An FTS5 query matching any of the terms; each term is quoted so user input can never be
/// read as FTS syntax.
pub fn fts_query(terms: &[String]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// A contiguous range of FTS rowids (which are chunk ids) that one keyword query scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeywordSlice {
    pub first: i64,
    pub last: i64,
}

impl KeywordSlice {
    pub const ALL: KeywordSlice = KeywordSlice {
        first: i64::MIN,
        last: i64::MAX,
    };
}

/// The lowest and highest chunk id (`None` when there are no chunks): two index lookups.
pub fn chunk_id_span(conn: &rusqlite::Connection) -> Result<Option<(i64, i64)>> {
    // Two subqueries: SQLite answers a lone min() or max() from the index, both together by
    // scanning the table.
    let span = conn.query_row(
        "SELECT (SELECT min(id) FROM chunks), (SELECT max(id) FROM chunks)",
        [],
        |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
    )?;
    Ok(span.0.zip(span.1))
}

/// How many slices a keyword query over chunk ids `first..=last` is split into: one per
/// `per_thread` chunks, at most one per thread it may use. (The default, 25,000 chunks, is where
/// a query takes a few milliseconds on one core; below it a thread's start and the merge cost
/// more than they save.)
pub fn slice_count(first: i64, last: i64, per_thread: usize, threads: usize) -> usize {
    let span = i128::from(last) - i128::from(first) + 1;
    let span = u64::try_from(span.max(0)).unwrap_or(u64::MAX);
    let wanted = span / (per_thread.max(1) as u64);
    usize::try_from(wanted)
        .unwrap_or(usize::MAX)
        .clamp(1, threads.max(1))
}

/// `parts` slices that together cover every rowid: `first..=last` cut into equal contiguous
/// ranges, the first open downwards and the last open upwards, so a chunk written after the
/// span was read is still searched.
pub fn rowid_slices(first: i64, last: i64, parts: usize) -> Vec<KeywordSlice> {
    let parts = parts.max(1);
    let span = i128::from(last) - i128::from(first) + 1;
    if parts == 1 || span < parts as i128 {
        return vec![KeywordSlice::ALL];
    }
    // Slice i starts at first + span·i/parts; i128 keeps the product from overflowing.
    let start = |i: usize| -> i64 {
        let offset = span * i as i128 / parts as i128;
        i64::try_from(i128::from(first) + offset).unwrap_or(i64::MAX)
    };
    (0..parts)
        .map(|i| KeywordSlice {
            first: if i == 0 { i64::MIN } else { start(i) },
            last: if i + 1 == parts {
                i64::MAX
            } else {
                start(i + 1) - 1
            },
        })
        .collect()
}

/// Keyword retrieval over the whole collection: (chunk id, BM25 score, higher is better),
/// filtered inside the query.
pub fn keyword_candidates(
    conn: &rusqlite::Connection,
    terms: &[String],
    conds: &[Condition],
    limit: usize,
) -> Result<Vec<(i64, f32)>> {
    let hits = keyword_slice(conn, terms, conds, limit, KeywordSlice::ALL)?;
    Ok(merge_slices(vec![hits], limit))
}

/// The best `limit` keyword hits among the rows of one slice, best first, ties by chunk id; the
/// scores are SQLite's own doubles, so merging slices orders exactly as one query would.
pub fn keyword_slice(
    conn: &rusqlite::Connection,
    terms: &[String],
    conds: &[Condition],
    limit: usize,
    slice: KeywordSlice,
) -> Result<Vec<(i64, f64)>> {
    let Some(q) = fts_query(terms) else {
        return Ok(vec![]);
    };
    let (where_sql, mut params) = filter::to_sql(conds);
    // Without a filter the joins only cost time: every match would be joined before the sort.
    // FTS5 applies the rowid range inside its doclists, so a slice reads only its own rows.
    let sql = if conds.is_empty() {
        "SELECT rowid, -bm25(chunks_fts, 1.0, 2.0, 1.5) AS score FROM chunks_fts
         WHERE chunks_fts MATCH ? AND rowid BETWEEN ? AND ?
         ORDER BY bm25(chunks_fts, 1.0, 2.0, 1.5), rowid LIMIT ?"
            .to_string()
    } else {
        format!(
            "SELECT c.id, -bm25(chunks_fts, 1.0, 2.0, 1.5) AS score
             FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
             WHERE chunks_fts MATCH ? AND chunks_fts.rowid BETWEEN ? AND ? AND {where_sql}
             ORDER BY bm25(chunks_fts, 1.0, 2.0, 1.5), chunks_fts.rowid LIMIT ?"
        )
    };
    let mut all = vec![
        SqlValue::Text(q),
        SqlValue::Integer(slice.first),
        SqlValue::Integer(slice.last),
    ];
    all.append(&mut params);
    all.push(SqlValue::Integer(limit as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(all), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The best `limit` hits of all slices, in the order one query over them all gives.
pub fn merge_slices(slices: Vec<Vec<(i64, f64)>>, limit: usize) -> Vec<(i64, f32)> {
    let mut hits: Vec<(i64, f64)> = slices.into_iter().flatten().collect();
    hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    hits.truncate(limit);
    hits.into_iter().map(|(id, s)| (id, s as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_quotes_terms_so_syntax_cannot_leak_in() {
        let terms = query_terms("NEAR(\"x\" b) AND -c*");
        assert_eq!(
            fts_query(&terms).unwrap(),
            "\"near\" OR \"x\" OR \"b\" OR \"c\""
        );
        assert!(fts_query(&query_terms("!!! ???")).is_none());
    }

    #[test]
    fn stop_words_are_dropped_unless_nothing_else_is_left() {
        assert_eq!(
            query_terms("How do I reset my Password?"),
            ["reset", "password"]
        );
        assert_eq!(query_terms("Who are you?"), ["who", "are", "you"]);
    }

    #[test]
    fn rowid_slices_cover_every_rowid_exactly_once() {
        for (first, last, parts) in [(1, 100_000, 2), (1, 100_000, 3), (7, 9, 2), (-5, 5, 4)] {
            let slices = rowid_slices(first, last, parts);
            assert_eq!(slices.len(), parts, "{first}..={last} in {parts}");
            assert_eq!(slices[0].first, i64::MIN);
            assert_eq!(slices[parts - 1].last, i64::MAX);
            for pair in slices.windows(2) {
                assert_eq!(pair[0].last + 1, pair[1].first, "{slices:?}");
                assert!(pair[1].first > first && pair[1].first <= last, "{slices:?}");
            }
        }
        let halves = rowid_slices(1, 100_000, 2);
        assert_eq!(halves[0].last, 50_000);
        // Fewer rowids than parts, or one part: one query over everything.
        assert_eq!(rowid_slices(1, 2, 3), [KeywordSlice::ALL]);
        assert_eq!(rowid_slices(1, 100_000, 1), [KeywordSlice::ALL]);
        assert_eq!(rowid_slices(i64::MIN, i64::MAX, 2).len(), 2);
    }

    #[test]
    fn only_large_collections_are_split_and_never_past_the_threads() {
        assert_eq!(slice_count(1, 8_000, 25_000, 2), 1);
        assert_eq!(slice_count(1, 50_000, 25_000, 2), 2);
        assert_eq!(slice_count(1, 1_000_000, 25_000, 2), 2);
        assert_eq!(slice_count(1, 1_000_000, 25_000, 1), 1);
        assert_eq!(slice_count(1, 1_000_000, 25_000, 0), 1);
        assert_eq!(slice_count(10, 1, 25_000, 4), 1);
        assert_eq!(slice_count(i64::MIN, i64::MAX, 1, 8), 8);
    }

    /// A database of `n` chunks over a small vocabulary, so that words match many rows and
    /// many scores tie, in two document types.
    fn corpus(n: i64) -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let words = [
            "backup", "restore", "password", "reset", "login", "outage", "sync", "plan",
        ];
        for d in 0..n / 10 {
            let doc_type = if d % 2 == 0 { "faq" } else { "report" };
            conn.execute(
                "INSERT INTO documents (id, source, title, doc_type, size_bytes, content_hash,
                 char_count, word_count, line_count, chunk_count, ingested_at, updated_at)
                 VALUES (?1, ?1, ?1, ?2, 0, '', 0, 0, 0, 10, '', '')",
                rusqlite::params![format!("doc-{d}"), doc_type],
            )
            .unwrap();
        }
        for id in 1..=n {
            let text: Vec<&str> = (0..(id % 5 + 2))
                .map(|k| words[((id * 7 + k * k * 3) % words.len() as i64) as usize])
                .collect();
            let text = text.join(" ");
            conn.execute(
                "INSERT INTO chunks (id, document_id, chunk_index, text, content_start,
                 doc_start, doc_end, token_count) VALUES (?1, ?2, ?3, ?4, 0, 0, 0, 0)",
                rusqlite::params![id, format!("doc-{}", (id - 1) / 10), (id - 1) % 10, text],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO chunks_fts (rowid, text, title, section) VALUES (?1, ?2, '', '')",
                rusqlite::params![id, text],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn a_query_split_into_slices_ranks_exactly_as_one_query() {
        let conn = corpus(2_000);
        let (first, last) = chunk_id_span(&conn).unwrap().unwrap();
        assert_eq!((first, last), (1, 2_000));
        let faq = crate::filter::FilterInput::Short("doc_type:faq".into())
            .conditions()
            .unwrap();
        for query in [
            "backup restore",
            "password reset login",
            "sync",
            "plan outage",
        ] {
            let terms = query_terms(query);
            for conds in [vec![], faq.clone()] {
                let whole = keyword_candidates(&conn, &terms, &conds, 50).unwrap();
                assert_eq!(whole.len(), 50, "{query}: too few matches to test a merge");
                for parts in [2, 3, 7] {
                    let slices: Vec<Vec<(i64, f64)>> = rowid_slices(first, last, parts)
                        .into_iter()
                        .map(|s| keyword_slice(&conn, &terms, &conds, 50, s).unwrap())
                        .collect();
                    assert_eq!(merge_slices(slices, 50), whole, "{query} in {parts} slices");
                }
            }
        }
    }

    #[test]
    fn ties_rank_by_chunk_id() {
        let merged = merge_slices(vec![vec![(9, 1.0), (4, 2.0)], vec![(3, 1.0), (5, 0.5)]], 3);
        assert_eq!(merged, [(4, 2.0), (3, 1.0), (9, 1.0)]);
    }
}
