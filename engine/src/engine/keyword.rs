//! The keyword half of a search: one FTS5 query, or on a large collection several over slices
//! of the chunk ids, each on its own thread and reader connection (`search::keyword`).

use super::Engine;
use crate::error::{Error, Result};
use crate::filter::Condition;
use crate::search;

impl Engine {
    /// The lowest and highest chunk id (`None` without chunks), which decide how keyword
    /// queries are split; a search reads it once.
    pub fn chunk_span(&self) -> Result<Option<(i64, i64)>> {
        self.store.read(search::chunk_id_span)
    }

    /// Whether a collection of `span` is large enough for its keyword queries to want more
    /// than one core (`search::slice_count`).
    pub(super) fn keyword_wants_cores(&self, span: Option<(i64, i64)>) -> bool {
        self.slice_count(span, crate::sysres::cores()) > 1
    }

    fn slice_count(&self, span: Option<(i64, i64)>, threads: usize) -> usize {
        let per_thread = self.config.search.keyword_chunks_per_thread;
        span.map_or(1, |(first, last)| {
            search::slice_count(first, last, per_thread, threads)
        })
    }

    /// Intra-op threads of the query session (0 without a model).
    pub(super) fn query_threads(&self) -> usize {
        self.embedder.as_ref().map_or(0, |e| e.query_threads())
    }

    /// The best `depth` keyword hits, as one query over the whole collection ranks them, on up
    /// to `threads` threads (fewer on a small collection); `span` is [`Engine::chunk_span`]'s
    /// answer. Each slice reads its own snapshot:
    /// a write committed between two of them can only move the collection-wide BM25
    /// statistics by that write, and a hit deleted meanwhile is skipped when hits are loaded.
    pub fn keyword_hits(
        &self,
        terms: &[String],
        conds: &[Condition],
        depth: usize,
        span: Option<(i64, i64)>,
        threads: usize,
    ) -> Result<Vec<(i64, f32)>> {
        let Some((first, last)) = span else {
            return Ok(vec![]);
        };
        if search::fts_query(terms).is_none() {
            return Ok(vec![]);
        }
        let slices = search::rowid_slices(first, last, self.slice_count(span, threads));
        let slice = |s: search::KeywordSlice| {
            self.store
                .read(|c| search::keyword_slice(c, terms, conds, depth, s))
        };
        let Some((own, others)) = slices.split_first() else {
            return Ok(vec![]);
        };
        let lists = std::thread::scope(|scope| {
            let spawned: Vec<_> = others
                .iter()
                .map(|&s| scope.spawn(move || slice(s)))
                .collect();
            let mut lists = vec![slice(*own)?];
            for handle in spawned {
                lists.push(super::joined(handle)??);
            }
            Ok::<_, Error>(lists)
        })?;
        Ok(search::merge_slices(lists, depth))
    }
}
