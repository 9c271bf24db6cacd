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
        // This thread takes one slice, a helper each of the others.
        let helpers = work.slices.len().saturating_sub(1);
        work.run_beside(helpers, || ()).1
    }

    /// A keyword query cut into as many slices as `threads` threads want (one on a small
    /// collection), for threads to take one at a time ([`KeywordWork::run_beside`]).
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
    /// Runs the slices on up to `helpers` threads started now (never more than there are
    /// slices) and on this thread once `first` has run on it: `first`'s answer beside the
    /// merged hits.
    pub(super) fn run_beside<T>(
        self,
        helpers: usize,
        first: impl FnOnce() -> T,
    ) -> (T, Result<Vec<(i64, f32)>>) {
        let (answer, run) = std::thread::scope(|scope| {
            let started: Vec<_> = (0..helpers.min(self.slices.len()))
                .map(|_| scope.spawn(|| self.help()))
                .collect();
            let answer = first();
            let own = self.help();
            (answer, joined_all(started).and(own))
        });
        (answer, run.and_then(|()| self.merged()))
    }

    /// Runs slices on this thread until none is left to take.
    fn help(&self) -> Result<()> {
        self.slices.help(|&slice| {
            self.engine
                .store
                .read(|c| search::keyword_slice(c, self.terms, self.conds, self.depth, slice))
        })
    }

    /// Every slice's hits merged into the one query's answer, once all slices have run.
    fn merged(self) -> Result<Vec<(i64, f32)>> {
        let lists = self
            .slices
            .results()
            .ok_or_else(|| Error::Internal("a keyword slice was left unrun".into()))?;
        Ok(search::merge_slices(lists, self.depth))
    }
}

/// Waits for the helper threads, up to the first that failed or panicked (the scope waits for
/// the rest).
fn joined_all(helpers: Vec<ScopedJoinHandle<'_, Result<()>>>) -> Result<()> {
    for helper in helpers {
        helper
            .join()
            .map_err(|_| Error::Internal("keyword search thread panicked".into()))??;
    }
    Ok(())
}
