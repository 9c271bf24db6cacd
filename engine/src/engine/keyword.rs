//! The keyword half of a search: one FTS5 query, or on a large collection several over slices
//! of the chunk ids, shared by the threads that run them, each slice on its own reader
//! connection (`search::keyword`).

use std::thread::ScopedJoinHandle;

use super::Engine;
use crate::error::{Error, Result};
use crate::filter::Condition;
use crate::search;
use crate::shared_work::SharedWork;

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
    /// answer.
    pub fn keyword_hits(
        &self,
        terms: &[String],
        conds: &[Condition],
        depth: usize,
        span: Option<(i64, i64)>,
        threads: usize,
    ) -> Result<Vec<(i64, f32)>> {
        let work = self.keyword_work(terms, conds, depth, span, threads);
        std::thread::scope(|scope| {
            // This thread takes one slice, a helper each of the others.
            let helpers = work.spawn_helpers(scope, work.slices.len().saturating_sub(1));
            let own = work.help();
            KeywordWork::join(helpers)?;
            own
        })?;
        work.merged()
    }

    /// A keyword query cut into as many slices as `threads` threads want (one on a small
    /// collection), for threads to take one at a time ([`KeywordWork::help`]).
    pub(super) fn keyword_work<'a>(
        &'a self,
        terms: &'a [String],
        conds: &'a [Condition],
        depth: usize,
        span: Option<(i64, i64)>,
        threads: usize,
    ) -> KeywordWork<'a> {
        let slices = match span {
            Some((first, last)) if search::fts_query(terms).is_some() => {
                search::rowid_slices(first, last, self.slice_count(span, threads))
            }
            _ => vec![],
        };
        KeywordWork {
            engine: self,
            terms,
            conds,
            depth,
            slices: SharedWork::new(slices),
        }
    }
}

/// The slices of one keyword query, each taken by whichever thread asks first: the threads
/// started for it and, in a hybrid search, the searching thread once its vector half is done.
/// Each slice reads its own snapshot: a write committed between two of them can only move the
/// collection-wide BM25 statistics by that write, and a hit deleted meanwhile is skipped when
/// hits are loaded.
pub(super) struct KeywordWork<'a> {
    engine: &'a Engine,
    terms: &'a [String],
    conds: &'a [Condition],
    depth: usize,
    slices: SharedWork<search::KeywordSlice, Vec<(i64, f64)>>,
}

impl KeywordWork<'_> {
    /// Runs slices on this thread until none is left to take.
    pub(super) fn help(&self) -> Result<()> {
        self.slices.help(|&slice| {
            self.engine
                .store
                .read(|c| search::keyword_slice(c, self.terms, self.conds, self.depth, slice))
        })
    }

    /// Starts up to `threads` threads that help, never more than there are slices.
    pub(super) fn spawn_helpers<'scope, 'env>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        threads: usize,
    ) -> Vec<ScopedJoinHandle<'scope, Result<()>>> {
        (0..threads.min(self.slices.len()))
            .map(|_| scope.spawn(|| self.help()))
            .collect()
    }

    /// Waits for the helpers, up to the first that failed (the scope waits for the rest).
    pub(super) fn join(helpers: Vec<ScopedJoinHandle<'_, Result<()>>>) -> Result<()> {
        for helper in helpers {
            super::joined(helper)??;
        }
        Ok(())
    }

    /// Every slice's hits merged into the one query's answer, once all slices have run.
    pub(super) fn merged(self) -> Result<Vec<(i64, f32)>> {
        let lists = self
            .slices
            .results()
            .ok_or_else(|| Error::Internal("a keyword slice was left unrun".into()))?;
        Ok(search::merge_slices(lists, self.depth))
    }
}
